package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that closed clusters leave no goroutine behind (the
// rejoin loop and the joins it runs included).
func TestMain(m *testing.M) {
	// protoactor-go starts a goroutine after a dead letter that sleeps out
	// the throttle interval (1 s here) and then ends by itself.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"))
}
