package shard

import (
	"sync"
	"sync/atomic"
	"time"
)

// inputs is what other goroutines hand the loop. Each call appends under
// the mutex and wakes the loop, which takes everything at the start of a
// round. Every queue is bounded.
type inputs struct {
	mu sync.Mutex // guards the fields below
	queued
	stopped bool
	fatal   error
}

// queued is what waits for the next round.
type queued struct {
	props   []*proposal
	reads   []*readReq
	leads   []*leadReq
	batches []*Batch
	snaps   []*incoming
	reports []snapReport
	funcs   []func()
}

type proposal struct {
	stream *Stream
	shard  uint32
	term   uint64
	cmd    []byte
	done   func(error)
	at     time.Time
}

type readReq struct {
	stream *Stream
	done   func(error)
	at     time.Time
}

type leadReq struct {
	shard uint32
	scope string // "": every entry the leader holds
	done  func(s *Stream, err error)
}

type snapReport struct {
	shard uint32
	to    uint64
	ok    bool
}

// Stream is the proposals and reads of one proposer (one activation of a
// scope's actor) to a shard as its leader in one term. Its entries are
// appended in the order proposed, and once one is refused every later one
// is too, so a stream's entries that apply are always a prefix of what it
// proposed: no entry lands after a hole.
//
// A stream Lead hands out is leased: it is the scope's only writer. A
// later Lead of the same scope, a lapse of this node's leadership (a new
// term, a disk stall) or Close ends it, and its proposals and reads from
// then on are refused with ErrLost. So two activations of a scope on one
// node never both write, even if one outlives its stop: the newer one's
// barrier waits for everything the older one appended before the newer
// Lead, and nothing the older one proposes after it is appended.
type Stream struct {
	shard  uint32
	term   uint64
	scope  string
	broken atomic.Bool
}

// NewStream returns a stream of proposals to shard as its leader in term,
// writing the state named scope ("": none), that no lease fences: only
// its term does. An activation uses the stream its Lead returns instead.
func NewStream(shard uint32, term uint64, scope string) *Stream {
	return &Stream{shard: shard, term: term, scope: scope}
}

// Term is the term the stream proposes in.
func (s *Stream) Term() uint64 { return s.term }

// Close ends the stream: its later proposals and reads are refused, and
// the engine forgets its lease. An activation closes its stream when it
// stops.
func (s *Stream) Close() { s.broken.Store(true) }

// Ended reports whether the stream ended: closed, superseded by a newer
// lease, ended with its leadership, or broken by a refused proposal.
func (s *Stream) Ended() bool { return s.broken.Load() }

// Propose proposes cmd on stream s. done gets nil once the command is
// committed and applied here, or an error: then it was not applied here,
// though with ErrLost or ErrTimeout it may still commit later. done
// runs on the engine's goroutine (or its watchdog's during a disk
// stall), or on the caller's when refused at once, and must not block.
func (e *Engine) Propose(s *Stream, cmd []byte, done func(error)) {
	if len(cmd) > e.cfg.MaxCommandBytes {
		s.broken.Store(true)
		done(ErrTooLarge)
		return
	}
	if e.cfg.Admit != nil {
		// Written twice here: in the log, then applied.
		if err := e.cfg.Admit(2 * int64(len(cmd))); err != nil {
			s.broken.Store(true)
			done(err)
			return
		}
	}
	p := &proposal{stream: s, shard: s.shard, term: s.term, cmd: cmd, done: done, at: e.clock()}
	if err := e.push(func(in *inputs) bool {
		if len(in.props) >= e.cfg.MaxQueuedProposals {
			return false
		}
		in.props = append(in.props, p)
		return true
	}); err != nil {
		s.broken.Store(true)
		done(err)
	}
}

// ReadIndex calls done once this node has confirmed with a quorum that it
// still led s's shard in s's term after the call, and has applied
// everything committed before it: reads of the local state are then
// linearizable. A stream whose lease ended is refused.
func (e *Engine) ReadIndex(s *Stream, done func(error)) {
	r := &readReq{stream: s, done: done, at: e.clock()}
	if err := e.push(func(in *inputs) bool {
		if len(in.reads) >= e.cfg.MaxQueuedProposals {
			return false
		}
		in.reads = append(in.reads, r)
		return true
	}); err != nil {
		done(err)
	}
}

// Lead calls done with a stream leased to scope in the current term once
// this node leads shard and has applied every entry of scope it holds —
// every entry of earlier terms that will ever commit, and every entry
// proposed here on a stream of scope before the call (with scope "",
// every entry proposed here before the call): the scope's state read then
// is final, and no earlier stream of scope appends anything more (see
// Stream). Entries of other scopes proposed meanwhile are not waited for.
// It fails with a NotLeaderError when the node does not lead the shard,
// or ErrLost when it stops leading before that.
func (e *Engine) Lead(shard uint32, scope string, done func(s *Stream, err error)) {
	l := &leadReq{shard: shard, scope: scope, done: done}
	if err := e.push(func(in *inputs) bool {
		if len(in.leads) >= e.cfg.MaxQueuedProposals {
			return false
		}
		in.leads = append(in.leads, l)
		return true
	}); err != nil {
		done(nil, err)
	}
}

// Receive takes a batch of raft messages from the transport. It never
// blocks: a batch that does not fit the queue is dropped (raft resends).
func (e *Engine) Receive(b *Batch) {
	_ = e.push(func(in *inputs) bool {
		if len(in.batches) >= e.cfg.MaxQueuedBatches {
			return false
		}
		in.batches = append(in.batches, b)
		return true
	})
}

// Do runs fn on the loop at the start of the next round.
func (e *Engine) Do(fn func()) error {
	return e.push(func(in *inputs) bool {
		in.funcs = append(in.funcs, fn)
		return true
	})
}

func (e *Engine) push(add func(*inputs) bool) error {
	e.in.mu.Lock()
	switch {
	case e.in.stopped:
		e.in.mu.Unlock()
		return ErrStopped
	case !add(&e.in):
		e.in.mu.Unlock()
		return ErrBusy
	}
	e.in.mu.Unlock()
	e.notify()
	return nil
}

// take returns everything queued and empties the queues.
func (in *inputs) take() queued {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := in.queued
	in.queued = queued{}
	return out
}

// refuse answers q's proposals (breaking their streams), reads and
// activations with err.
func (q *queued) refuse(err error) {
	for _, p := range q.props {
		p.stream.broken.Store(true)
		p.done(err)
	}
	for _, r := range q.reads {
		r.done(err)
	}
	for _, l := range q.leads {
		l.done(nil, err)
	}
}

// failAll answers everything waiting, queued or in the groups, with err,
// and refuses new inputs. Only the loop (or Stop, once it has ended) calls
// it.
func (e *Engine) failAll(err error) {
	e.in.mu.Lock()
	e.in.stopped = true
	if e.in.fatal == nil && err != ErrStopped {
		e.in.fatal = err
	}
	e.in.mu.Unlock()
	in := e.in.take()
	in.refuse(err)
	for _, s := range in.snaps {
		s.discard(e)
	}
	for _, g := range e.groups {
		g.failWaiters(err)
	}
	e.runDone()
}
