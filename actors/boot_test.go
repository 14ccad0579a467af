package actors

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/cluster/shard"
)

// TestLeaseOfAStoppedActivationIsClosed: an activation that stops while
// its Lead is out never handles the answer (booted is a user message,
// after the stop); its lease is closed all the same, whichever comes
// first, so the engine does not keep it.
func TestLeaseOfAStoppedActivationIsClosed(t *testing.T) {
	for _, stopFirst := range []bool{true, false} {
		var b booting
		var done func(*shard.Stream, error)
		b.hold(nil, func(any) {}, func(d func(*shard.Stream, error)) { done = d }, &actor.Started{})
		s := shard.NewStream(1, 1, "c/x")
		if stopFirst {
			b.stop()
			done(s, nil)
		} else {
			done(s, nil)
			b.stop()
		}
		if !s.Ended() {
			t.Fatalf("stopped before the answer %v: the lease is still open", stopFirst)
		}
	}
	var b booting
	var done func(*shard.Stream, error)
	b.hold(nil, func(any) {}, func(d func(*shard.Stream, error)) { done = d }, &actor.Started{})
	s := shard.NewStream(1, 1, "c/x")
	done(s, nil)
	if s.Ended() {
		t.Fatal("a running activation's lease was closed")
	}
}
