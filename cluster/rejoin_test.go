package cluster

import (
	"encoding/json"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// These tests run one Cluster on real sockets per process (protoactor's
// gRPC transport sets gRPC's global logger on start, which the race
// detector flags when two start in one process); the other side is a bare
// memberlist gossiping a host's metadata. Tests of several Clusters run
// them on a MemNetwork (memnet_test.go); cmd/switchboard's rejoin tests
// run real node processes.

// memRegistry is a RegistryStore that outlives the Cluster using it, as a
// node's store outlives a restart.
type memRegistry struct {
	mu sync.Mutex
	b  []byte
}

func (r *memRegistry) LoadRegistry() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b, nil
}

func (r *memRegistry) SaveRegistry(b []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.b = b
	return nil
}

// freeGossipAddr returns a loopback address whose port is free for both
// TCP and UDP (memberlist needs both) at the time of the call.
func freeGossipAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := tl.Addr().String()
		ul, err := net.ListenPacket("udp", addr)
		tl.Close()
		if err == nil {
			ul.Close()
			return addr
		}
	}
	t.Fatal("no free port for TCP and UDP")
	return ""
}

func startCluster(t *testing.T, reg RegistryStore, join ...string) *Cluster {
	t.Helper()
	c, err := New(Config{Name: "b", Join: join, Registry: reg, Detection: DetectionFast, ClusterName: "test-" + t.Name(), Cluster: "c", Shards: 8})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// peer is a bare memberlist member that gossips host metadata.
type peer struct {
	mu   sync.Mutex // guards meta
	meta Meta
}

func newPeer() *peer {
	return &peer{meta: Meta{Roles: []Role{RoleHost}, Remote: "127.0.0.1:1", Version: ProtocolVersion, Incarnation: 1, Cluster: "c", Shards: 8}}
}

func (p *peer) NodeMeta(int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.meta.encode()
}

func (p *peer) NotifyMsg([]byte)                {}
func (p *peer) GetBroadcasts(int, int) [][]byte { return nil }
func (p *peer) LocalState(bool) []byte          { return nil }
func (p *peer) MergeRemoteState([]byte, bool)   {}

// start runs the peer as name on addr (port 0 picks one).
func (p *peer) start(t *testing.T, name, addr string) *memberlist.Memberlist {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.Label, mc.Delegate, mc.LogOutput = name, "test-"+t.Name(), p, io.Discard
	mc.BindAddr, mc.AdvertiseAddr = host, host
	mc.BindPort, _ = strconv.Atoi(port)
	mc.AdvertisePort = mc.BindPort
	mc.ProbeInterval, mc.ProbeTimeout, mc.SuspicionMult, mc.GossipInterval = 200*time.Millisecond, 100*time.Millisecond, 2, 50*time.Millisecond
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatalf("start peer %s: %v", name, err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	return ml
}

// waitUntil polls cond until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func stateOf(c *Cluster, name string) State {
	m, _ := c.View().Member(name)
	return m.State
}

// TestJoinsASeedThatComesUpLater: a node started while its only seed is
// down reports it has not joined, keeps trying with backoff, and joins
// once the seed (a node that knows nobody) comes up.
func TestJoinsASeedThatComesUpLater(t *testing.T) {
	addrA := freeGossipAddr(t)
	c := startCluster(t, nil, addrA)
	if c.Joined() {
		t.Fatal("joined with its only seed down")
	}
	waitUntil(t, 10*time.Second, "three failed joins", func() bool { _, failed := c.JoinAttempts(); return failed >= 3 })
	if ok, _ := c.JoinAttempts(); ok != 0 || c.Joined() {
		t.Fatalf("%d joins succeeded with the seed down", ok)
	}
	newPeer().start(t, "a", addrA)
	waitUntil(t, 10*time.Second, "a successful join", func() bool { ok, _ := c.JoinAttempts(); return ok > 0 })
	waitUntil(t, 10*time.Second, "the seed to be an alive member", func() bool { return stateOf(c, "a") == StateAlive })
	if !c.Joined() {
		t.Fatal("not joined after a successful join")
	}
	if p := c.View().Placement(); !slices.Equal(p, []string{"a", "b"}) {
		t.Fatalf("placement %v", p)
	}
}

// TestRejoinsRegisteredHostsWithoutSeeds: a node restarted without seeds
// joins the hosts its saved registry knows, here one that is down when it
// starts and comes up later; without seeds the node counts as joined at
// once (it may be the first node up).
func TestRejoinsRegisteredHostsWithoutSeeds(t *testing.T) {
	addrA := freeGossipAddr(t)
	reg := &memRegistry{}
	b, _ := json.Marshal([]HostRecord{
		{Name: "a", Incarnation: 1, Gossip: addrA, Remote: "127.0.0.1:1", Roles: []Role{RoleHost}},
		// Left for good: never rejoined.
		{Name: "gone", Incarnation: 1, Left: true, Gossip: freeGossipAddr(t), Remote: "127.0.0.1:2", Roles: []Role{RoleHost}},
	})
	_ = reg.SaveRegistry(b)
	c := startCluster(t, reg)
	if !c.Joined() {
		t.Fatal("a node without seeds does not count as joined")
	}
	if got := c.joinTargets(); !slices.Equal(got, []string{addrA}) {
		t.Fatalf("join targets %v, want only %s", got, addrA)
	}
	if st := stateOf(c, "a"); st != StateDead {
		t.Fatalf("a is %s before it started", st)
	}
	newPeer().start(t, "a", addrA)
	waitUntil(t, 10*time.Second, "the registered host to be an alive member", func() bool { return stateOf(c, "a") == StateAlive })
	if got := c.joinTargets(); len(got) != 0 {
		t.Fatalf("join targets %v with every registered host a member", got)
	}
}

// TestIncompatibleVersionOwnsNothing: a member that gossips another
// cluster protocol version stays a known host but nothing is placed on
// it.
func TestIncompatibleVersionOwnsNothing(t *testing.T) {
	a := newPeer()
	a.meta.Version = ProtocolVersion + 1
	ml := a.start(t, "a", "127.0.0.1:0")
	c := startCluster(t, nil, ml.LocalNode().Address())
	waitUntil(t, 10*time.Second, "a to be an alive member", func() bool { return stateOf(c, "a") == StateAlive })
	v := c.View()
	if p := v.Placement(); !slices.Equal(p, []string{"b"}) {
		t.Fatalf("placement %v, want a left out", p)
	}
	if h := v.Hosts(); !slices.Equal(h, []string{"a", "b"}) {
		t.Fatalf("hosts %v, want a still a host", h)
	}
	if m, _ := v.Member("a"); m.Compatible() {
		t.Fatal("a counts as compatible")
	}
}

func TestBackoffIsBounded(t *testing.T) {
	c := &Cluster{}
	c.rejoinMin, c.rejoinMax = rejoinIntervals(DetectionLAN)
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 1000: 30 * time.Second} {
		for range 20 {
			if d := c.backoff(n); d < want*4/5 || d >= want*6/5 {
				t.Fatalf("backoff after %d failures: %v, want %v ±20 %%", n, d, want)
			}
		}
	}
}
