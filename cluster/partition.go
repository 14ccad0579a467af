package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Partition cuts a node off from chosen other nodes, for fault injection
// (serve --fault-injection, the chaos command's partition fault): what
// this node would send to a cut node's gossip, actor, raft or HTTP
// address is dropped or refused, the connections it has open to them are
// closed, and gossip packets from them are dropped. Told to both sides,
// it is a partition both ways, as a switch that loses the link would
// make; the clients of either side still reach their own gateway. It
// also slows chosen links instead of cutting them (SetLag, lag.go: the
// chaos command's lag fault).
//
// A node without a Partition (Config.Partition nil) dials as usual and
// pays nothing for it.
type Partition struct {
	mu    sync.Mutex
	cut   map[string]string // address → the cut node's name
	lags  map[string]lagged // address → its link's lag (lag.go)
	conns map[*faultConn]struct{}
	// packets counts the gossip packets held back by a lag.
	packets atomic.Int64
}

// NewPartition returns a Partition that cuts nothing yet.
func NewPartition() *Partition {
	return &Partition{cut: make(map[string]string), lags: make(map[string]lagged), conns: make(map[*faultConn]struct{})}
}

// errCut is a dial across a cut.
var errCut = errors.New("cut off by fault injection")

// set cuts node off at every address in addrs and closes the connections
// open to them.
func (p *Partition) set(node string, addrs []string) {
	p.mu.Lock()
	var closing []*faultConn
	for _, a := range addrs {
		if a != "" {
			p.cut[a] = node
		}
	}
	for c := range p.conns {
		if _, ok := p.cut[c.addr]; ok {
			closing = append(closing, c)
			delete(p.conns, c)
		}
	}
	p.mu.Unlock()
	for _, c := range closing {
		c.abort()
	}
}

// Heal ends every cut.
func (p *Partition) Heal() {
	p.mu.Lock()
	clear(p.cut)
	p.mu.Unlock()
}

// Nodes returns the names of the nodes cut off, sorted (empty, not nil, when none).
func (p *Partition) Nodes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []string{}
	for _, n := range p.cut {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func (p *Partition) isCut(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.cut[addr]
	return ok
}

// DialContext dials addr unless it is cut off; the connection is closed
// if a cut comes later.
func (p *Partition) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if p.isCut(addr) {
		return nil, fmt.Errorf("dial %s: %w", addr, errCut)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := &faultConn{Conn: conn, p: p, addr: addr}
	p.mu.Lock()
	_, cut := p.cut[addr]
	if !cut {
		p.conns[c] = struct{}{}
	}
	p.mu.Unlock()
	if cut { // cut while dialling
		conn.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, errCut)
	}
	return c, nil
}

// dialer is DialContext for gRPC's WithContextDialer.
func (p *Partition) dialer(ctx context.Context, addr string) (net.Conn, error) {
	return p.DialContext(ctx, "tcp", addr)
}

// faultConn is a connection DialContext made: a cut closes it, a lag
// delays what crosses it (lag.go), and it is forgotten when closed.
type faultConn struct {
	net.Conn
	p    *Partition
	addr string

	wmu sync.Mutex // Writes, one at a time: a direct one must not pass a queued one

	mu                   sync.Mutex
	closed               bool
	wline, rline         *delayLine // nil until the link lags
	rdeadline, wdeadline time.Time  // the caller's
}

// forget stops tracking c (it is closed).
func (p *Partition) forget(c *faultConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// Cut cuts this node (self) off from the named members of v, in addition
// to those already cut, at every address v knows for them. It fails,
// cutting nothing, when a name is not another member.
func (p *Partition) Cut(v *View, self string, names []string) error {
	addrs, err := memberAddrs(v, self, names)
	if err != nil {
		return err
	}
	for name, a := range addrs {
		p.set(name, a)
	}
	return nil
}

// memberAddrs returns every address v knows for each named member, or an
// error when a name is not a member other than self.
func memberAddrs(v *View, self string, names []string) (map[string][]string, error) {
	addrs := make(map[string][]string, len(names))
	for _, name := range names {
		m, ok := v.Member(name)
		if !ok || name == self {
			return nil, fmt.Errorf("%q is not another member", name)
		}
		addrs[name] = []string{m.Gossip, m.Meta.Remote, m.Meta.HTTP, m.Meta.Admin}
	}
	return addrs, nil
}

// partitionedGossip is memberlist's own transport with a Partition in
// front of it.
type partitionedGossip struct {
	*memberlist.NetTransport
	p       *Partition
	packets chan *memberlist.Packet
	closing chan struct{} // Shutdown began: what arrives is dropped
	closed  chan struct{} // the transport is shut down: filter ends
}

// gossipTransport starts memberlist's network transport at mc's bind
// address, as memberlist would (a port of 0 picks one, retrying as it
// does when the UDP port is taken), behind p; mc's bind and advertise
// ports are set to the port bound.
func (p *Partition) gossipTransport(mc *memberlist.Config) (*partitionedGossip, error) {
	tries := 1
	if mc.BindPort == 0 {
		tries = 10
	}
	var nt *memberlist.NetTransport
	var err error
	for range tries {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger})
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("gossip transport: %w", err)
	}
	if mc.BindPort == 0 {
		mc.BindPort = nt.GetAutoBindPort()
		mc.AdvertisePort = mc.BindPort
	}
	t := &partitionedGossip{NetTransport: nt, p: p, packets: make(chan *memberlist.Packet), closing: make(chan struct{}), closed: make(chan struct{})}
	go t.filter()
	return t, nil
}

// filter passes on the packets that do not come from a cut node. Once
// Shutdown begins it takes and drops what arrives: the transport's
// listeners block handing a packet over until someone takes it, and its
// Shutdown waits for them (memberlist may have stopped reading).
func (t *partitionedGossip) filter() {
	in := t.NetTransport.PacketCh()
	for {
		select {
		case pk := <-in:
			if t.p.isCut(pk.From.String()) {
				continue
			}
			select {
			case t.packets <- pk:
			case <-t.closing:
			}
		case <-t.closed:
			return
		}
	}
}

func (t *partitionedGossip) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *partitionedGossip) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// maxHeldPackets bounds the gossip packets a lag holds back; more are
// dropped.
const maxHeldPackets = 4096

// WriteToAddress sends a packet, or drops it if its node is cut off; to
// a lagged node it drops it (its loss) or sends it late.
func (t *partitionedGossip) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.p.isCut(a.Addr) {
		return time.Now(), nil
	}
	if lag, ok := t.p.lagOf(a.Addr); ok {
		if lag.lost() {
			return time.Now(), nil
		}
		if d := lag.late(); d > 0 {
			if t.p.packets.Add(1) > maxHeldPackets {
				t.p.packets.Add(-1)
				return time.Now(), nil
			}
			b = bytes.Clone(b)
			time.AfterFunc(d, func() {
				defer t.p.packets.Add(-1)
				select {
				case <-t.closing:
				default:
					t.NetTransport.WriteToAddress(b, a)
				}
			})
			return time.Now(), nil
		}
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *partitionedGossip) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream unless its node is cut off.
func (t *partitionedGossip) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.p.DialContext(ctx, "tcp", a.Addr)
}

// Shutdown stops the transport (see filter).
func (t *partitionedGossip) Shutdown() error {
	close(t.closing)
	err := t.NetTransport.Shutdown()
	close(t.closed)
	return err
}
