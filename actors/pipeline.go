package actors

import (
	"errors"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// pipeline orders what an actor releases behind its durable entries. The
// actor never waits for the disk: it appends an entry with a callback that
// posts committed to its own mailbox, queues what the command produced,
// and goes on with the next message. An output leaves the queue only when
// every output before it has left and its own entry (if any) is durable;
// entries of one scope become durable in append order, so replies and
// events go out in segment order.
type pipeline struct {
	log     persistence.Log
	outbox  []queued
	durable uint64 // highest entry index known durable
	fenced  bool   // the activation's fence is durable
	dead    bool   // failed: the actor is stopping
	// lazyEpoch is the fence still to write before the first entry.
	lazyEpoch uint64
	// whenIdle runs once nothing waits (set when handing the scope over).
	whenIdle    func()
	handingOver bool
}

type queued struct {
	index uint64 // entry waited for; 0 = none
	send  func(ctx actor.Context)
	// fail answers the output's caller when the pipeline fails first.
	fail func(ctx actor.Context, e *protocol.Error)
}

// committed reports an entry's durability (or failure).
type committed struct {
	index uint64
	err   error
}

// fenced reports the activation's fence.
type fenced struct{ err error }

// start raises the scope's fence to epoch. Outputs wait until it is durable.
//
// A scope that holds nothing yet (exists is false) is fenced lazily, just
// before its first entry: looking up an id that exists nowhere then writes
// nothing at all. That is safe because the entry is queued behind the
// fence, so it lands only if the fence did, and the host never runs two
// activations of a scope at once.
func (p *pipeline) start(ctx actor.Context, log persistence.Log, epoch uint64, exists bool) {
	p.log = log
	if !exists {
		p.fenced, p.lazyEpoch = true, epoch
		return
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	log.Fence(epoch, func(err error) { root.Send(self, &fenced{err: err}) })
}

// append queues entry for durability under index.
func (p *pipeline) append(ctx actor.Context, entry *persistence.Entry, index uint64) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	if e := p.lazyEpoch; e != 0 {
		p.lazyEpoch = 0
		p.log.Fence(e, func(err error) {
			if err != nil { // success needs no news: the entry behind it reports
				root.Send(self, &fenced{err: err})
			}
		})
	}
	p.log.Append(entry, func(err error) { root.Send(self, &committed{index: index, err: err}) })
}

// push queues an output and releases what may go.
func (p *pipeline) push(ctx actor.Context, q queued) {
	p.outbox = append(p.outbox, q)
	p.release(ctx)
}

// onFenced and onCommitted advance the pipeline; they return the failure
// that must stop the actor, if any.
func (p *pipeline) onFenced(ctx actor.Context, m *fenced) error {
	if m.err != nil {
		return m.err
	}
	p.fenced = true
	p.release(ctx)
	return nil
}

func (p *pipeline) onCommitted(ctx actor.Context, m *committed) error {
	if m.err != nil {
		return m.err
	}
	if m.index > p.durable {
		p.durable = m.index
	}
	p.release(ctx)
	return nil
}

func (p *pipeline) release(ctx actor.Context) {
	if p.dead || (!p.fenced && !(p.handingOver && len(p.outbox) == 0)) {
		return
	}
	n := 0
	for _, q := range p.outbox {
		if q.index > p.durable {
			break
		}
		q.send(ctx)
		n++
	}
	clear(p.outbox[:n])
	p.outbox = p.outbox[n:]
	if len(p.outbox) == 0 && p.whenIdle != nil {
		fn := p.whenIdle
		p.whenIdle = nil
		fn()
	}
}

// handOver answers nothing new (the caller checks handingOver), waits until
// every queued output has gone (so every entry is durable), then releases
// the scope's fence in store and reports to done; stop is posted to the
// actor afterwards.
func (p *pipeline) handOver(ctx actor.Context, store *persistence.Store, sc persistence.Scope, m *releaseScope) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	p.handingOver = true
	p.whenIdle = func() {
		store.Release(sc, m.to, func(epoch uint64, err error) {
			m.done(epoch, err)
			root.Send(self, stopNow{})
		})
	}
	p.release(ctx)
}

// stopNow tells an actor that handed its scope over to stop.
type stopNow struct{}

// idle reports whether nothing waits.
func (p *pipeline) idle() bool { return len(p.outbox) == 0 }

// fail answers every queued output with e and marks the pipeline dead.
func (p *pipeline) fail(ctx actor.Context, e *protocol.Error) {
	if p.dead {
		return
	}
	p.dead = true
	for _, q := range p.outbox {
		if q.fail != nil {
			q.fail(ctx, e)
		}
	}
	p.outbox = nil
}

// storageError maps a pipeline failure to the error callers get.
func storageError(what string, err error) *protocol.Error {
	if errors.Is(err, persistence.ErrFenced) {
		return protocol.Errorf(protocol.CodeUnavailable, "%s moved to another activation; retry", what)
	}
	if errors.Is(err, persistence.ErrUnwritable) {
		e := protocol.Errorf(protocol.CodeUnavailable, "%s: the node's storage refuses writes for now (%s); reads still work, retry writes later", what, strings.TrimPrefix(err.Error(), "persistence: "))
		e.RetryAfterMS = persistence.RetryAfter.Milliseconds()
		return e
	}
	return protocol.Errorf(protocol.CodeUnavailable, "%s: storage failed; retry", what)
}
