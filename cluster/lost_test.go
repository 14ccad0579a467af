package cluster

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestLostRequestFailsAtOnce: a request the transport drops (sent into a
// link that broke before the break was known) fails at once as lost,
// rather than at its timeout.
func TestLostRequestFailsAtOnce(t *testing.T) {
	net := NewMemNetwork()
	a := memNode(t, net, "a")
	memNode(t, net, "b", a.GossipAddress())
	waitUntil(t, 10*time.Second, "a to see b", func() bool { return stateOf(a, "b") == StateAlive })
	net.Cut("a", "b") // no connection event: a does not know
	r := ask(t, a, "b", time.Minute)
	if r.Error == nil || r.Error.Code != string(protocol.CodeUnavailable) || !strings.Contains(r.Error.Message, "lost with its connection") {
		t.Fatalf("a asked b across an unknown cut: %v %q", r.Error, r.Result)
	}
	if r.Error.RetryAfterMs == 0 {
		t.Errorf("no retry_after_ms in %v", r.Error)
	}
	if lost := a.LostMessages(); lost["request"] != 1 || lost["reply"] != 0 {
		t.Errorf("lost messages %v, want the one request", lost)
	}
	a.router.mu.Lock()
	defer a.router.mu.Unlock()
	if n := len(a.router.pending); n != 0 {
		t.Errorf("%d calls still pending", n)
	}
}

// cuttingHost answers the first request only after the link back to its
// caller broke (its reply is dropped), then each as echoHost does.
type cuttingHost struct {
	echoHost
	cut  func(replyTo string)
	once *sync.Once
}

func (h cuttingHost) Receive(ctx actor.Context) {
	if env, ok := ctx.Message().(*clusterpb.Envelope); ok && env.GetRequest() != nil {
		h.once.Do(func() { h.cut(env.GetRequest().ReplyTo) })
	}
	h.echoHost.Receive(ctx)
}

// TestLostReplyIsSentAgain: a reply the transport dropped because the link
// back to the caller broke reaches the caller once the link works again,
// within the caller's timeout; the caller's own link never broke.
func TestLostReplyIsSentAgain(t *testing.T) {
	net := NewMemNetwork()
	a := memNode(t, net, "a")
	b := bareNode(t, net, "b", a.GossipAddress())
	replied := make(chan struct{})
	host := cuttingHost{echoHost: echoHost{"b"}, once: &sync.Once{}, cut: func(replyTo string) {
		// The link from b back to a breaks, and b knows it.
		net.Cut("a", "b")
		b.System().EventStream.Publish(&remote.EndpointTerminatedEvent{Address: replyTo})
		close(replied)
	}}
	if _, err := b.System().Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return host }), HostName); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "a to see b", func() bool { return stateOf(a, "b") == StateAlive })

	got := make(chan *clusterpb.Reply, 1)
	a.RequestNode("b", &clusterpb.Request{Kind: clusterpb.Kind_KIND_CHANNEL, Target: "room"}, time.Minute, func(r *clusterpb.Reply) { got <- r })
	<-replied
	waitUntil(t, 5*time.Second, "b to hold the lost reply", func() bool {
		b.links.mu.Lock()
		defer b.links.mu.Unlock()
		return len(b.links.resent) == 1
	})
	select {
	case r := <-got:
		t.Fatalf("a got %v %q while b's link back was down", r.Error, r.Result)
	default:
	}
	net.Heal("a", "b")
	b.System().EventStream.Publish(&remote.EndpointConnectedEvent{Address: a.Address()})
	select {
	case r := <-got:
		if r.Error != nil || string(r.Result) != "b:room" {
			t.Fatalf("a got %v %q, want b's reply", r.Error, r.Result)
		}
		if lost := b.LostMessages(); lost["reply"] < 1 {
			t.Errorf("b's lost messages %v, want its reply", lost)
		}
		if n := a.RequestTimeouts(); n != 0 {
			t.Errorf("%d requests timed out", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the lost reply never arrived")
	}
}

// TestRequestToAnActorNotRunIsRefused: a request that reaches a node not
// running the actor it is for (its host not up yet) is answered
// unavailable at once, rather than left to its caller's timeout.
func TestRequestToAnActorNotRunIsRefused(t *testing.T) {
	net := NewMemNetwork()
	a := memNode(t, net, "a")
	bareNode(t, net, "b", a.GossipAddress()) // no host actor
	waitUntil(t, 10*time.Second, "a to see b", func() bool { return stateOf(a, "b") == StateAlive })
	r := ask(t, a, "b", time.Minute)
	if r.Error == nil || r.Error.Code != string(protocol.CodeUnavailable) || !strings.Contains(r.Error.Message, "does not run host (not yet, or no more)") {
		t.Fatalf("a asked b, which runs no host: %v %q", r.Error, r.Result)
	}
}

// TestLostEventsAreNoticed: a channel's persisted events that the
// transport dropped on their way to a gateway become one notice to watch
// the channel again, sent once the link works; typing (no seq) does not,
// a dropped notice is sent again, and so is a dropped word that the
// channel removed sessions (as a notice to watch again, which the channel
// refuses them).
func TestLostEventsAreNoticed(t *testing.T) {
	net := NewMemNetwork()
	a := memNode(t, net, "a")
	b := memNode(t, net, "b", a.GossipAddress())
	rec := &noticeRecorder{}
	a.SetHandler(rec)
	waitUntil(t, 10*time.Second, "b to see a", func() bool { return stateOf(b, "a") == StateAlive })

	net.Cut("a", "b")
	b.System().EventStream.Publish(&remote.EndpointTerminatedEvent{Address: a.Address()})
	events := func(ch string, seq uint64) *clusterpb.Envelope {
		return clusterpb.Wrap(&clusterpb.Envelope_Events{Events: &clusterpb.Events{Channel: ch, Events: []*clusterpb.Event{{Seq: seq, Frame: []byte("{}")}}}})
	}
	for seq := range uint64(3) {
		b.System().Root.Send(InboxPID(a.Address()), events("room", seq+1))
	}
	b.System().Root.Send(InboxPID(a.Address()), events("typing-only", 0))
	b.System().Root.Send(InboxPID(a.Address()), clusterpb.Wrap(&clusterpb.Envelope_WatchLost{WatchLost: &clusterpb.WatchLost{Node: "b"}}))
	b.System().Root.Send(InboxPID(a.Address()), clusterpb.Wrap(&clusterpb.Envelope_Unwatch{Unwatch: &clusterpb.Unwatch{Channel: "kicked", Sessions: []string{"s1"}}}))
	waitUntil(t, 5*time.Second, "b to hold three notices", func() bool {
		b.links.mu.Lock()
		defer b.links.mu.Unlock()
		return len(b.links.notices) == 3
	})
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("notices across the cut: %v", got)
	}
	net.Heal("a", "b")
	b.System().EventStream.Publish(&remote.EndpointConnectedEvent{Address: a.Address()})
	waitUntil(t, 10*time.Second, "the notices once the link works", func() bool { return len(rec.got()) == 3 })
	got := rec.got()
	slices.Sort(got)
	if !slices.Equal(got, []string{"kicked|", "room|", "|b"}) {
		t.Fatalf("notices %v, want a re-watch of room and of kicked, and b's own", got)
	}
	if lost := b.LostMessages(); lost["events"] != 4 || lost["other"] != 2 {
		t.Errorf("lost messages %v", lost)
	}
}

// TestLostSessionsClosedIsSentAgain: a gateway's word that sessions
// closed, dropped with a broken link, reaches the channel's host once the
// link works.
func TestLostSessionsClosedIsSentAgain(t *testing.T) {
	net := NewMemNetwork()
	a := memNode(t, net, "a")
	b := bareNode(t, net, "b", a.GossipAddress())
	got := make(chan *clusterpb.SessionsClosed, 1)
	if _, err := b.System().Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		if env, ok := ctx.Message().(*clusterpb.Envelope); ok && env.GetSessionsClosed() != nil {
			got <- env.GetSessionsClosed()
		}
	}), HostName); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "a to see b", func() bool { return stateOf(a, "b") == StateAlive })

	net.Cut("a", "b")
	a.System().EventStream.Publish(&remote.EndpointTerminatedEvent{Address: b.Address()})
	a.System().Root.Send(actor.NewPID(b.Address(), HostName),
		clusterpb.Wrap(&clusterpb.Envelope_SessionsClosed{SessionsClosed: &clusterpb.SessionsClosed{Channel: "room", Sessions: []string{"s1"}}}))
	waitUntil(t, 5*time.Second, "a to hold the lost notice", func() bool {
		a.links.mu.Lock()
		defer a.links.mu.Unlock()
		return len(a.links.resent) == 1
	})
	net.Heal("a", "b")
	a.System().EventStream.Publish(&remote.EndpointConnectedEvent{Address: b.Address()})
	select {
	case sc := <-got:
		if sc.Channel != "room" || !slices.Equal(sc.Sessions, []string{"s1"}) {
			t.Fatalf("b got %v", sc)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the lost notice never arrived")
	}
}
