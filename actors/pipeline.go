package actors

import (
	"errors"
	"strings"

	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// pipeline orders what an actor releases behind its entries. The actor
// never waits for Raft: it appends an entry (proposed to the scope's
// shard) with a callback that posts committed to its own mailbox, queues
// what the command produced, and goes on with the next message. An output
// leaves the queue only when every output before it has left and:
//
//   - its entry (if any) is committed — replicated to a majority, each
//     copy fsynced — and applied here; entries of one scope commit in
//     append order, so replies and events go out in segment order;
//   - or, for an output without an entry (a read, a watch, an ephemeral
//     event), a ReadIndex issued after it was queued has confirmed that
//     this node still led the shard and had applied everything committed
//     before: a node that was deposed (partitioned, paused) answers
//     nothing stale (RAFT-NOTES §4).
//
// A failure (of an entry or a confirmation) answers every queued output
// with the error and releases nothing more.
//
// The pipeline does no I/O of its own and knows nothing of the actor
// system: it talks to the log and the confirm function, posts their
// callbacks with post (which may be called from any goroutine and must not
// block), and its methods run on the actor's goroutine, so
// pipeline_test.go drives it against a log whose callbacks arrive late or
// fail.
type pipeline struct {
	post func(msg any) // to the actor's own mailbox
	log  persistence.Log
	// confirm starts a leadership confirmation and calls done with its
	// outcome; nil when reads need none (a log that is not replicated).
	confirm func(done func(error))
	outbox  []queued
	durable uint64 // highest entry index known committed
	dead    bool   // failed: the actor is stopping

	reads     uint64 // outputs without an entry queued so far
	confirmed uint64 // of those, how many a confirmation covers
	asking    uint64 // reads the confirmation in flight covers (0: none)
}

// queued is one command's output. send and fail run on the actor's
// goroutine while it handles a later message (the actor's context is the
// same for every message, so they may use the one they were made with).
type queued struct {
	index uint64 // entry waited for; 0 = none (then read is set)
	read  uint64 // the confirmation waited for
	send  func()
	// fail answers the output's caller when the pipeline fails first.
	fail func(e *protocol.Error)
}

// committed reports an entry's commit (or failure).
type committed struct {
	index uint64
	err   error
}

// confirmedReads reports a leadership confirmation covering reads up to
// upTo.
type confirmedReads struct {
	upTo uint64
	err  error
}

// start readies the pipeline: the log's and confirm's callbacks come back
// through post.
func (p *pipeline) start(post func(any), log persistence.Log, confirm func(done func(error))) {
	p.post, p.log, p.confirm = post, log, confirm
}

// append queues entry for commit under index.
func (p *pipeline) append(entry *persistence.Entry, index uint64) {
	post := p.post
	p.log.Append(entry, func(err error) { post(&committed{index: index, err: err}) })
}

// push queues an output and releases what may go. An output without an
// entry waits for a leadership confirmation issued after it.
func (p *pipeline) push(q queued) {
	if q.index == 0 {
		p.reads++
		q.read = p.reads
		p.ask()
	}
	p.outbox = append(p.outbox, q)
	p.release()
}

// ask starts a confirmation covering every read queued so far, unless one
// is in flight (its answer starts the next).
func (p *pipeline) ask() {
	if p.confirm == nil {
		p.confirmed = p.reads
		return
	}
	if p.asking != 0 || p.confirmed >= p.reads || p.dead {
		return
	}
	upTo, post := p.reads, p.post
	p.asking = upTo
	p.confirm(func(err error) { post(&confirmedReads{upTo: upTo, err: err}) })
}

// onCommitted and onConfirmed advance the pipeline; they return the
// failure that must stop the actor, if any (the actor then calls fail).
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

func (p *pipeline) onConfirmed(m *confirmedReads) error {
	p.asking = 0
	if m.err != nil {
		return m.err
	}
	p.confirmed = max(p.confirmed, m.upTo)
	p.release()
	p.ask()
	return nil
}

func (p *pipeline) release() {
	if p.dead {
		return
	}
	n := 0
	for _, q := range p.outbox {
		if q.index > p.durable || q.read > p.confirmed {
			break
		}
		q.send()
		n++
	}
	clear(p.outbox[:n])
	p.outbox = p.outbox[n:]
}

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

// retryAfterMS is the delay callers are told to wait before retrying while
// a shard changes leader.
const retryAfterMS = 200

// storageError maps a pipeline failure to the error callers get: every
// one of them means the scope is to be retried (on this node or its
// shard's new leader).
func storageError(what string, err error) *protocol.Error {
	var e *protocol.Error
	switch {
	case errors.Is(err, shard.ErrNotLeader), errors.Is(err, shard.ErrLost), errors.Is(err, shard.ErrDropped):
		e = protocol.Errorf(protocol.CodeUnavailable, "%s is changing leader; retry", what)
	case errors.Is(err, shard.ErrBusy), errors.Is(err, shard.ErrTimeout):
		e = protocol.Errorf(protocol.CodeUnavailable, "%s: replication is slow; retry", what)
	case errors.Is(err, shard.ErrStalled):
		e = protocol.Errorf(protocol.CodeUnavailable, "%s: this node's disk is not answering, so its shards are led elsewhere; retry", what)
	case errors.Is(err, shard.ErrTooLarge):
		return protocol.Errorf(protocol.CodeTooLarge, "%s: the change is too large to replicate", what)
	case errors.Is(err, persistence.ErrUnwritable):
		e = protocol.Errorf(protocol.CodeUnavailable, "%s: the node's storage refuses writes for now (%s); reads still work, retry writes later", what, strings.TrimPrefix(err.Error(), "persistence: "))
		e.RetryAfterMS = persistence.RetryAfter.Milliseconds()
		return e
	default:
		e = protocol.Errorf(protocol.CodeUnavailable, "%s: storage failed; retry", what)
	}
	e.RetryAfterMS = retryAfterMS
	return e
}
