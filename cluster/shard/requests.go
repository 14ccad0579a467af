package shard

import (
	"encoding/binary"
	"errors"
	"time"

	"go.etcd.io/raft/v3"
)

// propose hands a proposal to its group's raft. Once a proposal of a
// stream is refused, the stream is broken: its later proposals are refused
// too.
func (e *Engine) propose(p *proposal) {
	g := e.groups[p.shard]
	var err error
	switch {
	case p.stream.broken.Load():
		err = ErrLost
	case g == nil:
		err = &NotLeaderError{Shard: p.shard}
	case !g.leader || g.term != p.term:
		// Proposed under a leadership that ended (or never was here): its
		// command was evaluated against state that may be stale.
		err = g.notLeader()
	}
	if err == nil {
		e.nextID++
		id := e.nextID
		if err = g.rn.Propose(encodeEntry(header{proposer: e.proposer, id: id, term: p.term}, p.cmd)); err == nil {
			g.props[id] = p
			return
		}
		if errors.Is(err, raft.ErrProposalDropped) {
			err = ErrDropped
		}
	}
	p.stream.broken.Store(true)
	p.done(err)
}

func (e *Engine) queueRead(r *readReq) {
	s := r.stream
	g := e.groups[s.shard]
	switch {
	case g == nil:
		r.done(&NotLeaderError{Shard: s.shard})
	case !g.leader || g.term != s.term:
		r.done(g.notLeader())
	case s.broken.Load():
		r.done(ErrLost)
	default:
		g.reads = append(g.reads, r)
	}
}

// issueReads starts one ReadIndex per group for every read queued since
// the last one: a fresh context each time, never reused (RAFT-NOTES §4).
func (e *Engine) issueReads() {
	now := e.clock()
	for _, g := range e.groups {
		if len(g.reads) == 0 {
			continue
		}
		e.nextID++
		ctx := binary.BigEndian.AppendUint64(nil, e.nextID)
		g.issued[e.nextID] = &readBatch{reads: g.reads, at: now}
		g.reads = nil
		g.rn.ReadIndex(ctx)
	}
}

// lead registers an activation barrier: answered once everything of its
// scope the leader holds is applied (everything, without a scope) —
// through e.done at once when it is already. Its stream's lease starts
// now, ending the scope's earlier one: what that one proposes from here
// on is refused, so the barrier covers all it appends.
func (e *Engine) lead(l *leadReq) {
	g := e.groups[l.shard]
	switch {
	case g == nil:
		l.done(nil, &NotLeaderError{Shard: l.shard})
	case !g.leader:
		l.done(nil, g.notLeader())
	default:
		s := g.lease(l.scope)
		index := g.termStart
		if l.scope == "" {
			last, _ := g.st.LastIndex()
			index = max(index, last)
		} else if i, ok := g.scopeLast[l.scope]; ok {
			index = max(index, i)
		}
		if index <= g.st.Applied().Index {
			e.answerLead(s, l.done)
			return
		}
		g.leads = append(g.leads, leadWait{index: index, stream: s, done: l.done})
	}
}

// leadEarly registers, before the round's write, the activation barriers
// of scopes with nothing proposed in this round, on groups whose raft
// still leads in the term last handled; it returns the others, which
// wait until after the write (where this round's proposals have their
// indexes and a change of leadership is taken up). An activation of a
// scope whose entries are all applied is then answered before the
// round's fsync, instead of after the next round's.
func (e *Engine) leadEarly(leads []*leadReq, props []*proposal) []*leadReq {
	if len(leads) == 0 {
		return leads
	}
	var proposed map[string]bool
	late := leads[:0]
	for _, l := range leads {
		g := e.groups[l.shard]
		if l.scope == "" || g == nil || !g.leader {
			late = append(late, l)
			continue
		}
		if bs := g.rn.BasicStatus(); bs.RaftState != raft.StateLeader || bs.HardState.GetTerm() != g.term {
			late = append(late, l)
			continue
		}
		if proposed == nil {
			proposed = make(map[string]bool)
			for _, p := range props {
				proposed[p.stream.scope] = true
			}
		}
		if proposed[l.scope] {
			late = append(late, l)
			continue
		}
		e.lead(l)
	}
	return late
}

// checkWaiters answers confirmed reads and activations whose index is
// applied, and fails whatever waited past RequestTimeout (a read or
// proposal lost without notice: RAFT-NOTES §3 and §4).
func (e *Engine) checkWaiters() {
	now := e.clock()
	limit := e.cfg.RequestTimeout
	// Timeouts are looked for a few times a second, not every round.
	sweep := now.Sub(e.lastSweep) >= sweepEvery
	if sweep {
		e.lastSweep = now
	}
	// Ended leases less often: a node may hold one per live activation.
	leases := now.Sub(e.lastLeases) >= leaseSweepEvery
	if leases {
		e.lastLeases = now
	}
	for _, g := range e.groups {
		e.answerWaiters(g, true)
		g.dropApplied(g.st.Applied().Index)
		if !sweep {
			continue
		}
		for ctx, rb := range g.issued {
			if now.Sub(rb.at) > limit {
				delete(g.issued, ctx)
				for _, r := range rb.reads {
					r.done(ErrTimeout)
				}
			}
		}
		for id, p := range g.props {
			if now.Sub(p.at) > limit {
				delete(g.props, id)
				p.stream.broken.Store(true)
				p.done(ErrTimeout)
			}
		}
		if leases {
			g.dropEndedLeases()
		}
	}
}

const (
	sweepEvery      = 100 * time.Millisecond
	leaseSweepEvery = 2 * time.Second
)

// answerWaiters answers g's confirmed reads and, unless leads is false,
// its activations, whose index is applied (an activation only while g
// leads in its term), through e.done.
func (e *Engine) answerWaiters(g *group, leads bool) {
	applied := g.st.Applied().Index
	n := 0
	for _, rb := range g.ready {
		if rb.index <= applied {
			for _, r := range rb.reads {
				e.done = append(e.done, func() { r.done(nil) })
			}
			continue
		}
		g.ready[n] = rb
		n++
	}
	clear(g.ready[n:])
	g.ready = g.ready[:n]
	if !leads {
		return
	}
	n = 0
	for _, l := range g.leads {
		if l.index <= applied && g.leader && g.term == l.stream.term {
			e.answerLead(l.stream, l.done)
			continue
		}
		g.leads[n] = l
		n++
	}
	clear(g.leads[n:])
	g.leads = g.leads[:n]
}

// answerLead answers an activation barrier with its stream through
// e.done.
func (e *Engine) answerLead(s *Stream, done func(*Stream, error)) {
	e.done = append(e.done, func() { done(s, nil) })
}

// runDone calls the completions the round collected, after the batch
// that applied them is committed.
func (e *Engine) runDone() {
	done := e.done
	e.done = nil
	for _, fn := range done {
		fn()
	}
}
