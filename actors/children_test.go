package actors

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// TestChildTerminationReachesTheHostUnwatched: the host spawns its
// activations as children and does not watch them; a child that stops
// (here by itself) still reaches the host as one Terminated, which is what
// lets the host forget one it did not stop itself (hostActor.Receive).
func TestChildTerminationReachesTheHostUnwatched(t *testing.T) {
	sys := quietSystem(t)
	got := make(chan *actor.PID, 4)
	parent := actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case string:
			ctx.Respond(ctx.Spawn(actor.PropsFromFunc(func(c actor.Context) {
				if _, ok := c.Message().(string); ok {
					c.Stop(c.Self())
				}
			})))
		case *actor.Terminated:
			got <- m.Who
		}
	})
	p := sys.Root.Spawn(parent)
	defer sys.Root.Stop(p)
	res, err := sys.Root.RequestFuture(p, "spawn", 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	child := res.(*actor.PID)
	sys.Root.Send(child, "stop")
	select {
	case who := <-got:
		if !who.Equal(child) {
			t.Fatalf("Terminated for %v, want %v", who, child)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the parent heard nothing of its stopped child")
	}
	// Once: a second would come only from a watch.
	probe, err := sys.Root.RequestFuture(p, "spawn", 5*time.Second).Result()
	if err != nil || probe == nil {
		t.Fatalf("parent after the child stopped: %v", err)
	}
	select {
	case who := <-got:
		t.Fatalf("a second Terminated for %v", who)
	default:
	}
}

// TestLateNewsOfALeadershipKeepsItsActivations: an activation made before
// the host heard that its node leads the shard (canActivate asked the
// engine) is not stopped when the news comes: stopping it would let the
// next request start a second activation of the scope beside the first
// still draining its mailbox. A change of term, or the end of the
// leadership, still stops it.
func TestLateNewsOfALeadershipKeepsItsActivations(t *testing.T) {
	sys := quietSystem(t)
	// A probe counts the stops it is sent, and answers a flush once it
	// has handled everything before it: the host's sends are in its
	// mailbox by the time onLeader returns.
	var lost atomic.Int32
	type flush chan struct{}
	var probes []*actor.PID
	probe := func(key string) *actor.PID {
		pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			switch m := c.Message().(type) {
			case leadershipLost:
				lost.Add(1)
			case flush:
				close(m)
			}
		}))
		probes = append(probes, pid)
		return pid
	}
	h := &hostActor{d: &Deps{Metrics: &Metrics{}}, children: make(map[string]*child), byPID: make(map[string]string), led: make(map[uint32]uint64)}
	for _, key := range []string{"c/a", "c/b"} {
		pid := probe(key)
		h.children[key] = &child{pid: pid, kind: kindChannel, shard: 7}
		h.byPID[pid.Id] = key
	}
	done := make(chan struct{})
	host := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*shardLeader); ok {
			h.onLeader(ctx, m)
			done <- struct{}{}
		}
	}))
	tell := func(m *shardLeader) {
		t.Helper()
		sys.Root.Send(host, m)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the host did not take the news")
		}
	}
	stopped := func() int {
		t.Helper()
		for _, pid := range probes {
			f := make(flush)
			sys.Root.Send(pid, f)
			select {
			case <-f:
			case <-time.After(10 * time.Second):
				t.Fatal("a probe did not answer")
			}
		}
		return int(lost.Swap(0))
	}

	tell(&shardLeader{shard: 7, leader: true, term: 4})
	if n := stopped(); n != 0 || len(h.children) != 2 {
		t.Fatalf("late news of the leadership: %d activations stopped, %d kept; want none stopped", n, len(h.children))
	}
	tell(&shardLeader{shard: 7, leader: true, term: 4})
	if n := stopped(); n != 0 || len(h.children) != 2 {
		t.Fatalf("the same news again: %d stopped", n)
	}
	tell(&shardLeader{shard: 7, leader: true, term: 5})
	if n := stopped(); n != 2 || len(h.children) != 0 {
		t.Fatalf("a new term: %d stopped, %d kept; want both stopped", n, len(h.children))
	}
	pid := probe("c/c")
	h.children["c/c"] = &child{pid: pid, kind: kindChannel, shard: 7}
	h.byPID[pid.Id] = "c/c"
	tell(&shardLeader{shard: 7, leader: false, term: 5})
	if n := stopped(); n != 1 || len(h.children) != 0 {
		t.Fatalf("the leadership's end: %d stopped, %d kept; want it stopped", n, len(h.children))
	}
}
