package cluster

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemNetwork connects nodes inside one process, for tests that run
// several nodes in one process: Attach gives a node's Config a gossip
// transport and an actor transport of the network. Nothing touches a
// socket, so such tests need no ports, and Cut partitions two nodes.
//
// memberlist ships MockNetwork for gossip, but a packet to one of its
// nodes that has stopped blocks the sender for good, and nodes cannot be
// added while others run. protoactor's gRPC transport sets a
// process-global logger each time a node starts, which the race detector
// flags once two nodes run in one process. Here, as on a real network,
// what goes to a stopped node or across a Cut is lost (a stream is
// refused), nothing blocks, and actor messages are copied as if encoded.
type MemNetwork struct {
	mu     sync.Mutex // guards the fields below and the transports' stopped
	port   int
	gossip map[string]*memGossip // by address
	actors map[string]*memActors // by address
	cut    map[[2]string]bool    // node name pairs
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{gossip: make(map[string]*memGossip), actors: make(map[string]*memActors), cut: make(map[[2]string]bool)}
}

// Attach sets cfg's GossipTransport and ActorTransport to new ones of
// this network for the node cfg.Name. A node restarted under its name is
// attached again: it gets new addresses, as a restarted process would.
func (n *MemNetwork) Attach(cfg *Config) {
	cfg.GossipTransport = n.newGossip(cfg.Name)
	cfg.ActorTransport = &memActors{net: n, name: cfg.Name}
}

// Cut stops all traffic between two nodes, both ways, until Heal: a
// partition. Messages already delivered stay delivered.
func (n *MemNetwork) Cut(a, b string) {
	n.mu.Lock()
	n.cut[pairOf(a, b)] = true
	n.mu.Unlock()
}

// Heal ends a Cut.
func (n *MemNetwork) Heal(a, b string) {
	n.mu.Lock()
	delete(n.cut, pairOf(a, b))
	n.mu.Unlock()
}

func pairOf(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

// nextAddr returns a new address of the network. The caller holds n.mu.
func (n *MemNetwork) nextAddr() *net.UDPAddr {
	n.port++
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: n.port}
}

// memQueue bounds the packets and streams waiting for one node; past it
// they are lost, as a full socket buffer loses datagrams.
const memQueue = 1024

func (n *MemNetwork) newGossip(name string) *memGossip {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := &memGossip{net: n, name: name, addr: n.nextAddr(),
		packets: make(chan *memberlist.Packet, memQueue), streams: make(chan net.Conn, memQueue)}
	n.gossip[t.addr.String()] = t
	return t
}

// gossipPeer returns the running node at addr that from may reach, or
// nil. The caller holds n.mu.
func (n *MemNetwork) gossipPeer(from *memGossip, addr string) *memGossip {
	t := n.gossip[addr]
	if t == nil || t.stopped || from.stopped || n.cut[pairOf(from.name, t.name)] {
		return nil
	}
	return t
}

// memGossip is one node's memberlist transport on a MemNetwork.
type memGossip struct {
	net     *MemNetwork
	name    string
	addr    *net.UDPAddr
	packets chan *memberlist.Packet
	streams chan net.Conn
	stopped bool
}

func (t *memGossip) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.addr.IP, t.addr.Port, nil
}

func (t *memGossip) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress delivers a packet unless it is lost.
func (t *memGossip) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: t.addr, Timestamp: now}
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	if dest := t.net.gossipPeer(t, a.Addr); dest != nil {
		select {
		case dest.packets <- p:
		default: // lost
		}
	}
	return now, nil
}

func (t *memGossip) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *memGossip) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// errRefused is a dial to a node that is stopped, cut off, or swamped.
var errRefused = errors.New("connection refused")

// DialAddressTimeout opens a stream to a running node.
func (t *memGossip) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	dest := t.net.gossipPeer(t, a.Addr)
	if dest == nil {
		return nil, fmt.Errorf("dial %s: %w", a.Addr, errRefused)
	}
	mine, theirs := net.Pipe()
	select {
	case dest.streams <- &memConn{Conn: theirs, local: dest.addr, remote: t.addr}:
		return &memConn{Conn: mine, local: t.addr, remote: dest.addr}, nil
	default:
		mine.Close()
		theirs.Close()
		return nil, fmt.Errorf("dial %s: %w", a.Addr, errRefused)
	}
}

func (t *memGossip) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown stops the node: streams not yet accepted are closed (their
// dialers see the connection drop) and nothing reaches it any more.
func (t *memGossip) Shutdown() error {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	t.stopped = true
	for {
		select {
		case c := <-t.streams:
			c.Close()
		default:
			return nil
		}
	}
}

// memConn is a stream between two nodes, with their addresses.
type memConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *memConn) LocalAddr() net.Addr  { return c.local }
func (c *memConn) RemoteAddr() net.Addr { return c.remote }
