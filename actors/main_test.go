package actors

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that actors leave no goroutine behind. protoactor-go
// starts one after a dead letter that sleeps out the throttle interval
// and then ends by itself: a host stopping while a retired child's
// Terminated is still queued sends that child a Stop it no longer needs.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"))
}
