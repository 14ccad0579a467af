package cluster

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// echoHost is a host actor that answers every request with its node's
// name and the request's target.
type echoHost struct{ name string }

func (h echoHost) Receive(ctx actor.Context) {
	env, ok := ctx.Message().(*clusterpb.Envelope)
	if !ok || env.GetRequest() == nil {
		return
	}
	req := env.GetRequest()
	rep := &clusterpb.Reply{Id: req.Id, Target: req.Target, Result: []byte(h.name + ":" + req.Target)}
	ctx.Send(InboxPID(req.ReplyTo), clusterpb.Wrap(&clusterpb.Envelope_Reply{Reply: rep}))
}

// memNode starts a node on net with an echoing host actor.
func memNode(t *testing.T, net *MemNetwork, name string, join ...string) *Cluster {
	t.Helper()
	c := bareNode(t, net, name, join...)
	if _, err := c.System().Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return echoHost{name} }), HostName); err != nil {
		t.Fatal(err)
	}
	return c
}

// bareNode starts a node on net without a host actor (the test spawns its
// own, or none).
func bareNode(t *testing.T, net *MemNetwork, name string, join ...string) *Cluster {
	t.Helper()
	cfg := Config{Name: name, Join: join, Detection: DetectionFast, ClusterName: "test-" + t.Name(), Cluster: "c", Shards: 8}
	net.Attach(&cfg)
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends a request to node from c and waits for what it answers.
func ask(t *testing.T, c *Cluster, node string, timeout time.Duration) *clusterpb.Reply {
	t.Helper()
	got := make(chan *clusterpb.Reply, 1)
	c.RequestNode(node, &clusterpb.Request{Kind: clusterpb.Kind_KIND_CHANNEL, Target: "room"}, timeout, func(r *clusterpb.Reply) { got <- r })
	select {
	case r := <-got:
		return r
	case <-time.After(timeout + 5*time.Second):
		t.Fatalf("request to %s never completed", node)
		return nil
	}
}

// TestNodesInOneProcess runs three nodes on a MemNetwork: they find each
// other by gossip, route requests to each other, lose what crosses a
// partition (the request times out unavailable), and fail requests to a
// node that stopped at once. The race detector and the goroutine-leak
// check run over all of it.
func TestNodesInOneProcess(t *testing.T) {
	net := NewMemNetwork()
	a := memNode(t, net, "a")
	b := memNode(t, net, "b", a.GossipAddress())
	c := memNode(t, net, "c", a.GossipAddress())
	for _, n := range []*Cluster{a, b, c} {
		waitUntil(t, 10*time.Second, n.Name()+" sees all three alive", func() bool {
			return stateOf(n, "a") == StateAlive && stateOf(n, "b") == StateAlive && stateOf(n, "c") == StateAlive
		})
	}
	if p := a.View().Placement(); len(p) != 3 {
		t.Fatalf("placement %v", p)
	}
	for _, to := range []string{"b", "c"} {
		if r := ask(t, a, to, 5*time.Second); r.Error != nil || string(r.Result) != to+":room" {
			t.Fatalf("a asked %s: %v %q", to, r.Error, r.Result)
		}
	}

	// Across a partition the request is lost; b stays alive in a's view,
	// since c still reaches it (memberlist's indirect probes).
	net.Cut("a", "b")
	if r := ask(t, a, "b", 300*time.Millisecond); r.Error == nil || r.Error.Code != string(protocol.CodeUnavailable) {
		t.Fatalf("a asked b across the cut: %v %q", r.Error, r.Result)
	}
	net.Heal("a", "b")
	if r := ask(t, a, "b", 5*time.Second); r.Error != nil {
		t.Fatalf("a asked b after the cut healed: %v", r.Error)
	}

	// A stopped node's endpoint terminates: requests fail without waiting
	// for their timeout, and gossip declares it dead.
	b.Close()
	start := time.Now()
	if r := ask(t, a, "b", 10*time.Second); r.Error == nil || r.Error.Code != string(protocol.CodeUnavailable) {
		t.Fatalf("a asked the stopped b: %v %q", r.Error, r.Result)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the request to a stopped node took %v", d)
	}
	waitUntil(t, 10*time.Second, "a sees b dead", func() bool { return stateOf(a, "b") == StateDead })
	if r := ask(t, a, "c", 5*time.Second); r.Error != nil {
		t.Fatalf("a asked c after b stopped: %v", r.Error)
	}
}
