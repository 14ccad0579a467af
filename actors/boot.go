package actors

import (
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/protocol"
)

// booting holds an activation's messages until its scope may be read.
// An activation must not read the shard's state before this node, as its
// leader, has applied every entry it holds: entries of an earlier leader
// (or of an earlier activation here) that will still commit would hand
// out their segments again. So an actor first asks the engine to Lead the
// shard — answered once all of that is applied — and only then loads;
// what arrives meanwhile waits here, in order.
type booting struct {
	ready bool
	held  []any
	// lease is the stream Lead handed this activation, and stopped says
	// the actor is stopping: whichever of the two comes second closes the
	// stream, so a lease answered to an activation that stopped meanwhile
	// (its booted message never handled) does not stay in the engine.
	lease   atomic.Pointer[shard.Stream]
	stopped atomic.Bool
}

// booted reports the barrier: the stream leased to this activation.
type booted struct {
	stream *shard.Stream
	err    error
}

// maxHeld bounds messages held while booting; past it requests are
// answered unavailable.
const maxHeld = 4096

// hold reports whether msg must wait (the actor's handler must not see it
// yet). Started starts the barrier with lead, whose end is posted with
// post.
func (b *booting) hold(ctx actor.Context, post func(any), lead func(done func(*shard.Stream, error)), msg any) bool {
	if b.ready {
		return false
	}
	switch m := msg.(type) {
	case *actor.Started:
		lead(func(s *shard.Stream, err error) {
			if s != nil {
				b.lease.Store(s)
				if b.stopped.Load() {
					s.Close()
				}
			}
			post(booted{stream: s, err: err})
		})
		return true
	case booted, *actor.Stopping, *actor.Stopped, *actor.Restarting:
		return false
	case *clusterpb.Envelope:
		if len(b.held) >= maxHeld {
			replyError(ctx, m.GetRequest(), protocol.Errorf(protocol.CodeUnavailable, "activating; retry"))
			return true
		}
	}
	b.held = append(b.held, msg)
	return true
}

// flush marks the actor ready and hands it what was held, in order.
func (b *booting) flush(receive func(any)) {
	b.ready = true
	held := b.held
	b.held = nil
	for _, m := range held {
		receive(m)
	}
}

// stop closes the activation's lease, now or when Lead answers.
func (b *booting) stop() {
	b.stopped.Store(true)
	if s := b.lease.Load(); s != nil {
		s.Close()
	}
}
