package actors

import (
	"errors"
	"strings"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// pipeline orders what an actor releases behind its durable entries. The
// actor never waits for the disk: it appends an entry with a callback that
// posts committed to its own mailbox, queues what the command produced,
// and goes on with the next message. An output leaves the queue only when
// every output before it has left and its own entry (if any) is durable;
// entries of one scope become durable in append order, so replies and
// events go out in segment order. A failure (of an entry or of the fence)
// answers every queued output with the error and releases nothing more.
//
// The pipeline does no I/O of its own and knows nothing of the actor
// system: it talks to the log, posts the log's callbacks with post (which
// may be called from any goroutine and must not block), and its methods
// run on the actor's goroutine, so pipeline_test.go drives it against a
// log whose callbacks arrive late, fail, or are fenced.
type pipeline struct {
	post    func(msg any) // to the actor's own mailbox
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

// queued is one command's output. send and fail run on the actor's
// goroutine while it handles a later message (the actor's context is the
// same for every message, so they may use the one they were made with).
type queued struct {
	index uint64 // entry waited for; 0 = none
	send  func()
	// fail answers the output's caller when the pipeline fails first.
	fail func(e *protocol.Error)
}

// committed reports an entry's durability (or failure).
type committed struct {
	index uint64
	err   error
}

// fenced reports the activation's fence.
type fenced struct{ err error }

// start raises the scope's fence to epoch. Outputs wait until it is
// durable; the log's callbacks come back through post.
//
// A scope that holds nothing yet (exists is false) is fenced lazily, just
// before its first entry: looking up an id that exists nowhere then writes
// nothing at all. That is safe because the entry is queued behind the
// fence, so it lands only if the fence did, and the host never runs two
// activations of a scope at once.
func (p *pipeline) start(post func(any), log persistence.Log, epoch uint64, exists bool) {
	p.post, p.log = post, log
	if !exists {
		p.fenced, p.lazyEpoch = true, epoch
		return
	}
	log.Fence(epoch, func(err error) { post(&fenced{err: err}) })
}

// append queues entry for durability under index.
func (p *pipeline) append(entry *persistence.Entry, index uint64) {
	post := p.post
	if e := p.lazyEpoch; e != 0 {
		p.lazyEpoch = 0
		p.log.Fence(e, func(err error) {
			if err != nil { // success needs no news: the entry behind it reports
				post(&fenced{err: err})
			}
		})
	}
	p.log.Append(entry, func(err error) { post(&committed{index: index, err: err}) })
}

// push queues an output and releases what may go.
func (p *pipeline) push(q queued) {
	p.outbox = append(p.outbox, q)
	p.release()
}

// onFenced and onCommitted advance the pipeline; they return the failure
// that must stop the actor, if any (the actor then calls fail).
func (p *pipeline) onFenced(m *fenced) error {
	if m.err != nil {
		return m.err
	}
	p.fenced = true
	p.release()
	return nil
}

func (p *pipeline) onCommitted(m *committed) error {
	if m.err != nil {
		return m.err
	}
	if m.index > p.durable {
		p.durable = m.index
	}
	p.release()
	return nil
}

func (p *pipeline) release() {
	if p.dead || (!p.fenced && !(p.handingOver && len(p.outbox) == 0)) {
		return
	}
	n := 0
	for _, q := range p.outbox {
		if q.index > p.durable {
			break
		}
		q.send()
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
// the scope with release (the store's Release of its fence) and reports
// the outcome to done; stopNow is posted to the actor afterwards.
func (p *pipeline) handOver(release func(done func(epoch uint64, err error)), done func(epoch uint64, err error)) {
	post := p.post
	p.handingOver = true
	p.whenIdle = func() {
		release(func(epoch uint64, err error) {
			done(epoch, err)
			post(stopNow{})
		})
	}
	p.release()
}

// stopNow tells an actor that handed its scope over to stop.
type stopNow struct{}

// idle reports whether nothing waits.
func (p *pipeline) idle() bool { return len(p.outbox) == 0 }

// fail answers every queued output with e and marks the pipeline dead.
func (p *pipeline) fail(e *protocol.Error) {
	if p.dead {
		return
	}
	p.dead = true
	for _, q := range p.outbox {
		if q.fail != nil {
			q.fail(e)
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
