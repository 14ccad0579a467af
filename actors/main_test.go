package actors

import (
	"log/slog"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
)

// TestMain checks that actors leave no goroutine behind. protoactor-go
// starts one after a dead letter that sleeps out the throttle interval
// and then ends by itself: a host stopping while a retired child's
// Terminated is still queued sends that child a Stop it no longer needs.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"))
}

// quietSystem is an actor system that logs nothing, shut down when the
// test ends.
func quietSystem(t *testing.T) *actor.ActorSystem {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	t.Cleanup(sys.Shutdown)
	return sys
}
