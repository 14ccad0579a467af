package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// booting holds an activation's messages until its scope may be read.
// An activation that follows another one of the same scope (after a
// crash, a passivation, a hand-off back) must not read the store while the
// earlier activation's entries are still queued in the commit pipeline:
// it would hand out their segments again. So an actor first asks the store
// for a barrier — done once every request queued before it has landed —
// and only then loads; what arrives meanwhile waits here, in order.
type booting struct {
	ready bool
	held  []any
}

// booted reports the barrier.
type booted struct{ err error }

// maxHeld bounds messages held while booting; past it requests are
// answered unavailable.
const maxHeld = 4096

// hold reports whether msg must wait (the actor's handler must not see it
// yet). Started starts the barrier, whose end is posted with post.
func (b *booting) hold(ctx actor.Context, post func(any), store *persistence.Store, msg any) bool {
	if b.ready {
		return false
	}
	switch m := msg.(type) {
	case *actor.Started:
		store.Barrier(func(err error) { post(booted{err: err}) })
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
