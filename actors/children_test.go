package actors

import (
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// TestChildTerminationReachesTheHostUnwatched: the host spawns its
// activations as children and does not watch them; a child that stops
// itself (a failed pipeline, a passivation) still reaches the host as one
// Terminated, which is what lets the host forget it (hostActor.Receive).
func TestChildTerminationReachesTheHostUnwatched(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer sys.Shutdown()
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
