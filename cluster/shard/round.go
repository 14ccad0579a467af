package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// handled is one group's Ready of a round.
type handled struct {
	g  *group
	rd raft.Ready
	// early is how many of rd.CommittedEntries were applied before the
	// round's write (see applyDurable).
	early int
}

// round is one turn of the loop (RAFT-NOTES §1, "Our loop").
func (e *Engine) round() {
	if e.fatalErr != nil {
		return
	}
	now := e.clock()
	in := e.in.take()
	e.tick()
	for _, b := range in.batches {
		e.stepBatch(b, now)
	}
	for _, s := range in.snaps {
		e.stepSnapshot(s, now)
	}
	for _, r := range in.reports {
		if g := e.groups[r.shard]; g != nil {
			status := raft.SnapshotFinish
			if !r.ok {
				status = raft.SnapshotFailure
			}
			g.rn.ReportSnapshot(r.to, status)
		}
	}
	for _, fn := range in.funcs {
		fn()
	}
	for _, p := range in.props {
		e.propose(p)
	}
	leads := e.leadEarly(in.leads, in.props)
	for _, r := range in.reads {
		e.queueRead(r)
	}
	e.issueReads()
	e.maintain(now)

	var rds []handled
	for _, s := range e.sortedShards() {
		g := e.groups[s]
		if g.rn.HasReady() {
			rds = append(rds, handled{g: g, rd: g.rn.Ready()})
		}
	}
	if len(rds) > 0 {
		start := time.Now()
		synced, err := e.handle(rds)
		if err != nil {
			e.fatal(err)
			return
		}
		if len(e.stall.resigned) > 0 {
			e.syncResigned()
		}
		if e.cfg.OnRound != nil {
			e.cfg.OnRound(time.Since(start), synced)
		}
	}
	for _, l := range leads {
		e.lead(l)
	}
	e.checkWaiters()
	e.dropIncoming()
	e.destroyRemoved()
	e.publish()
	e.runDone()
	for _, g := range e.groups {
		if g.rn.HasReady() {
			e.notify() // more to do (an apply limit was hit): go again at once
			break
		}
	}
}

// tick advances every group's clock by the ticks elapsed since the last
// round, at most an election timeout's worth.
func (e *Engine) tick() {
	n := min(e.ticks, e.cfg.Timing.ElectionTicks)
	e.ticks = 0
	for range n {
		for _, g := range e.groups {
			g.rn.Tick()
		}
	}
}

// sortedShards returns the local replicas' shards in order. The slice is
// kept between rounds and replaced, never changed, when a replica comes or
// goes: callers may hold it while groups are added or removed.
func (e *Engine) sortedShards() []uint32 {
	if len(e.shards) == len(e.groups) && !e.shardsStale {
		return e.shards
	}
	out := make([]uint32, 0, len(e.groups))
	for s := range e.groups {
		out = append(out, s)
	}
	slices.Sort(out)
	e.shards, e.shardsStale = out, false
	return out
}

// handle persists, sends, applies and advances a round's Readys, and
// reports whether it fsynced.
func (e *Engine) handle(rds []handled) (bool, error) {
	// Accepted snapshots first: ingesting one clears the replica's raft
	// span, which the entries and hard state below are written over.
	for _, h := range rds {
		if raft.IsEmptySnap(h.rd.Snapshot) {
			continue
		}
		if err := e.ingest(h.g, h.rd); err != nil {
			return false, err
		}
	}
	// Committed entries this node already holds on disk are applied, and
	// their proposals answered, before the round's own write and fsync.
	if err := e.applyDurable(rds); err != nil {
		return false, err
	}
	e.answerApplied(rds)
	// Messages that promise nothing of this node's disk go out before it
	// is written: a leader's appends and heartbeats, so its followers write
	// their copies while it writes its own (Raft thesis §10.2.1). Its own
	// copy counts towards the commit only once persisted (raft steps its
	// own acknowledgement at Advance).
	unreachable := e.send(rds, false)
	// W: every group's raft state, one batch, at most one fsync.
	w := e.cfg.DB.NewBatch()
	sync := false
	for _, h := range rds {
		if err := h.g.st.Append(w, h.rd.Entries); err != nil {
			w.Close()
			return false, err
		}
		h.g.noteScopes(e.proposer, h.rd.Entries)
		if !raft.IsEmptyHardState(h.rd.HardState) {
			if err := h.g.st.SetHardState(w, h.rd.HardState); err != nil {
				w.Close()
				return false, err
			}
		}
		sync = sync || h.rd.MustSync
	}
	if err := e.commitRound(w, sync); err != nil {
		return false, fmt.Errorf("persisting raft state: %w", err)
	}
	if sync {
		e.status.fsyncs.Add(1)
	}
	// Votes and append acknowledgements only now that what they promise
	// is durable.
	unreachable = append(unreachable, e.send(rds, true)...)
	// A: every group's committed entries, one batch, no fsync (the log
	// they come from is durable; a crash replays them).
	a := e.cfg.DB.NewBatch()
	for _, h := range rds {
		if err := e.apply(a, h.g, h.rd.CommittedEntries[h.early:]); err != nil {
			a.Close()
			return false, err
		}
	}
	if err := raftstore.Commit(a, false); err != nil {
		return false, fmt.Errorf("applying entries: %w", err)
	}
	for _, h := range rds {
		h.g.rn.Advance(h.rd)
	}
	for _, u := range unreachable {
		if g := e.groups[u.shard]; g != nil {
			g.rn.ReportUnreachable(u.to)
		}
	}
	for _, h := range rds {
		e.syncLeader(h.g)
		releaseCache(h.g)
	}
	e.status.rounds.Add(1)
	return sync, nil
}

// applyDurable applies, in one batch without fsync, the committed
// entries of the round's Readys that this node had persisted in earlier
// rounds, and answers their proposals at once. A leader's entries are
// committed once a majority has persisted them; they need not wait for
// the entries proposed since, which this round writes and fsyncs next.
// Without this every acknowledgement waited for a second fsync: the one
// of the round after its commit.
//
// An entry qualifies when its index is at most the last index stored
// before this round and below the first entry this round writes (which
// may replace stored ones). Pebble writes batches to its log in order, so
// the entries applied here are durable whenever the batch is; the commit
// index this round stores may be lost with a crash, and Load raises it to
// the applied index (raftstore.Load). A group ingesting a snapshot
// applies nothing early, and the early part stops at the first
// configuration change.
func (e *Engine) applyDurable(rds []handled) error {
	var a *pebble.Batch
	for i := range rds {
		h := &rds[i]
		ents := h.rd.CommittedEntries
		if len(ents) == 0 || !raft.IsEmptySnap(h.rd.Snapshot) {
			continue
		}
		durable, _ := h.g.st.LastIndex()
		if len(h.rd.Entries) > 0 {
			durable = min(durable, h.rd.Entries[0].GetIndex()-1)
		}
		// Configuration changes wait for their usual place, after the
		// round's messages are sent: a removed replica still gets the
		// messages addressed to it before its descriptor goes.
		n := 0
		for n < len(ents) && ents[n].GetIndex() <= durable && ents[n].GetType() == pb.EntryType_EntryNormal {
			n++
		}
		if n == 0 {
			continue
		}
		if a == nil {
			a = e.cfg.DB.NewBatch()
		}
		if err := e.apply(a, h.g, ents[:n]); err != nil {
			a.Close()
			return err
		}
		h.early = n
	}
	if a == nil {
		return nil
	}
	if err := raftstore.Commit(a, false); err != nil {
		return fmt.Errorf("applying entries: %w", err)
	}
	e.runDone()
	return nil
}

// answerApplied takes the reads the round's Readys confirm and answers
// them, and the activations, whose index is applied — before the round's
// write and its fsync, which they do not need: a ReadState's index is
// committed already (RAFT-NOTES §4: serve once applied ≥ Index; etcd
// hands ReadStates on before it saves the Ready too), and an activation
// waits for applied entries only. Without this every read and every
// actor's activation also waited for the fsync of entries proposed
// meanwhile, most often other scopes'. An activation is answered here
// only when its group's Ready changes neither role nor term: a step-down
// is taken up after the write (syncLeader), and fails it.
func (e *Engine) answerApplied(rds []handled) {
	for _, h := range rds {
		e.takeReadStates(h.g, h.rd)
		unchanged := (h.rd.SoftState == nil || h.rd.SoftState.RaftState == raft.StateLeader) &&
			(raft.IsEmptyHardState(h.rd.HardState) || h.rd.HardState.GetTerm() == h.g.term)
		e.answerWaiters(h.g, unchanged)
	}
	e.runDone()
}

// takeReadStates moves the reads rd confirms to the group's confirmed
// reads, which wait for applied ≥ their index.
func (e *Engine) takeReadStates(g *group, rd raft.Ready) {
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) != 8 {
			continue
		}
		ctx := binary.BigEndian.Uint64(rs.RequestCtx)
		if rb := g.issued[ctx]; rb != nil {
			delete(g.issued, ctx)
			rb.index = rs.Index
			g.ready = append(g.ready, rb)
		}
	}
}

// promisesDurability reports whether a message type promises state of
// the sender's that must be on its disk first: a vote, an acknowledged
// append (RAFT-NOTES §1; raft.go send).
func promisesDurability(t pb.MessageType) bool {
	return t == pb.MessageType_MsgAppResp || t == pb.MessageType_MsgVoteResp || t == pb.MessageType_MsgPreVoteResp
}

type target struct {
	node  string
	store uint64
}

type unreach struct {
	shard uint32
	to    uint64
}

// send marshals the round's messages — the responses that promise
// durable state (after is set), or the others — and hands them to the
// transport, one batch per destination (split under MaxBatchBytes).
// Snapshots go to the snapshot streams instead. It returns the replicas
// whose messages were dropped.
func (e *Engine) send(rds []handled, after bool) []unreach {
	batches := make(map[target][]*Batch)
	sizes := make(map[target]int)
	var unreachable []unreach
	for _, h := range rds {
		g := h.g
		for _, m := range h.rd.Messages {
			if promisesDurability(m.GetType()) != after {
				continue
			}
			to := m.GetTo()
			p, ok := g.peer(to)
			if !ok || p.Node == e.cfg.Node {
				unreachable = append(unreachable, unreach{g.shard, to})
				continue
			}
			data, err := proto.Marshal(m)
			if err != nil {
				e.log.Error("marshalling a raft message", "shard", g.shard, "err", err)
				continue
			}
			if m.GetType() == pb.MessageType_MsgSnap {
				e.snaps.send(e, g.shard, to, p, data)
				continue
			}
			t := target{p.Node, p.Store}
			bs := batches[t]
			if len(bs) == 0 || sizes[t]+len(data) > e.cfg.MaxBatchBytes {
				bs = append(bs, &Batch{Cluster: e.cfg.Cluster, FromNode: e.cfg.Node, FromStore: e.cfg.Store, ToStore: p.Store})
				batches[t] = bs
				sizes[t] = 0
			}
			b := bs[len(bs)-1]
			b.Msgs = append(b.Msgs, Msg{Shard: g.shard, From: g.id, To: to, Data: data})
			sizes[t] += len(data)
		}
	}
	for t, bs := range batches {
		for _, b := range bs {
			if e.cfg.Transport.Send(t.node, b) {
				continue
			}
			for _, m := range b.Msgs {
				unreachable = append(unreachable, unreach{m.Shard, m.To})
			}
		}
	}
	return unreachable
}

// apply writes the effects of committed entries and the group's applied
// state into b, and records which proposals completed.
func (e *Engine) apply(b *pebble.Batch, g *group, ents []*pb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	a := *g.st.Applied() // shares ConfState and Replicas until a conf change replaces them
	for _, ent := range ents {
		switch ent.GetType() {
		case pb.EntryType_EntryNormal:
			e.applyNormal(b, g, ent)
		case pb.EntryType_EntryConfChange, pb.EntryType_EntryConfChangeV2:
			if err := e.applyConfChange(g, ent, &a); err != nil {
				return err
			}
		}
	}
	last := ents[len(ents)-1]
	a.Index, a.Term = last.GetIndex(), last.GetTerm()
	if err := g.st.SetApplied(b, a); err != nil {
		return err
	}
	e.status.applied.Add(uint64(len(ents)))
	return e.maybeTruncate(b, g)
}

func (e *Engine) applyNormal(b *pebble.Batch, g *group, ent *pb.Entry) {
	if len(ent.GetData()) == 0 {
		return // a new leader's empty entry
	}
	h, cmd, err := decodeEntry(ent.GetData())
	if err != nil {
		e.log.Error("skipping a malformed entry", "shard", g.shard, "index", ent.GetIndex())
		return
	}
	var p *proposal
	if h.proposer == e.proposer {
		if p = g.props[h.id]; p != nil {
			delete(g.props, h.id)
			if p.term != h.term {
				p = nil // not ours after all (cannot happen: ids are unique per engine)
			}
		}
	}
	result := error(nil)
	switch {
	case h.term != ent.GetTerm():
		// Evaluated under one leadership, carried by another's entry: a
		// node lost and regained leadership between evaluating and
		// proposing. Every replica skips it alike.
		result = ErrRejected
	default:
		if err := e.cfg.StateMachine.Apply(b, g.shard, cmd); err != nil {
			e.log.Warn("entry rejected by the state machine", "shard", g.shard, "index", ent.GetIndex(), "err", err)
			result = fmt.Errorf("%w: %v", ErrRejected, err)
		}
	}
	if p != nil {
		if result != nil {
			p.stream.broken.Store(true)
		}
		e.done = append(e.done, func() { p.done(result) })
	}
}

// applyConfChange applies a configuration change to raft and to the
// applied state a (its configuration and replica descriptors).
func (e *Engine) applyConfChange(g *group, ent *pb.Entry, a *raftstore.AppliedState) error {
	var cc pb.ConfChangeI
	if ent.GetType() == pb.EntryType_EntryConfChange {
		var c1 pb.ConfChange
		if err := proto.Unmarshal(ent.GetData(), &c1); err != nil {
			return fmt.Errorf("shard %d: conf change at %d: %w", g.shard, ent.GetIndex(), err)
		}
		cc = &c1
	} else {
		var c2 pb.ConfChangeV2
		if err := proto.Unmarshal(ent.GetData(), &c2); err != nil {
			return fmt.Errorf("shard %d: conf change at %d: %w", g.shard, ent.GetIndex(), err)
		}
		cc = &c2
	}
	added, err := decodeReplicas(cc.AsV2().GetContext())
	if err != nil {
		e.log.Error("conf change with a malformed context", "shard", g.shard, "index", ent.GetIndex())
	}
	cs := g.rn.ApplyConfChange(cc)
	reps := make([]raftstore.ReplicaDesc, 0, len(a.Replicas)+len(added))
	for _, r := range append(slices.Clone(a.Replicas), added...) {
		if inConfig(cs, r.ID) && !slices.ContainsFunc(reps, func(x raftstore.ReplicaDesc) bool { return x.ID == r.ID }) {
			reps = append(reps, r)
		}
		a.NextReplicaID = max(a.NextReplicaID, r.ID+1)
	}
	slices.SortFunc(reps, func(x, y raftstore.ReplicaDesc) int { return int64Cmp(x.ID, y.ID) })
	a.ConfState, a.Replicas, a.ConfIndex = cs, reps, ent.GetIndex()
	if !inConfig(cs, g.id) {
		g.removed = true
	}
	g.changed = true
	e.log.Debug("shard configuration changed", "shard", g.shard, "index", ent.GetIndex(), "voters", cs.GetVoters(),
		"outgoing", cs.GetVotersOutgoing(), "learners", cs.GetLearners())
	return nil
}

func int64Cmp(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// maybeTruncate drops applied log entries once the log holds twice
// KeepEntries, keeping KeepEntries for followers that lag (a follower
// behind that gets a snapshot). A leader keeps what its active followers
// still need unless the log has grown past four times the bound.
func (e *Engine) maybeTruncate(b *pebble.Batch, g *group) error {
	keep := e.cfg.KeepEntries
	if g.st.LogSize() < 2*keep {
		return nil
	}
	applied := g.st.Applied().Index
	if applied <= keep {
		return nil
	}
	to := applied - keep
	if g.leader && g.st.LogSize() < 4*keep {
		g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
			if id != g.id && pr.RecentActive && pr.Match > 0 && pr.Match < to {
				to = pr.Match
			}
		})
	}
	if to <= g.st.Truncated().Index {
		return nil
	}
	err := g.st.Truncate(b, to)
	if errors.Is(err, raft.ErrCompacted) {
		return nil
	}
	return err
}

// releaseCache lets the replica's entry cache forget what will not be
// read again soon: the entries applied here that, on a leader, every
// follower holds too (a follower being sent a snapshot needs none of
// them; one that fell far behind is bounded by the cache's own limits).
// Raft reads what it needs of the rest from Pebble. Without this every
// replica kept its last 512 entries (up to 1 MiB) for good: a quiet
// shard's cache held its last writes, a new user's profile each.
func releaseCache(g *group) {
	to := g.st.Applied().Index
	if g.leader {
		g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
			if id != g.id && pr.State != tracker.StateSnapshot && pr.Match < to {
				to = pr.Match
			}
		})
	}
	g.st.ReleaseCache(to)
}

// syncLeader takes up raft's view of g's leadership, failing what waited
// on a leadership that ended and telling the observer of any change.
//
// A leadership taken up starts after everything the log holds: in a new
// term that is the term's empty entry, and when raft still leads in the
// term a disk stall ended here (stall.go), it is every entry appended
// before and during the stall, whose scopes failWaiters forgot. Either
// way an activation's barrier waits for all of it.
func (e *Engine) syncLeader(g *group) {
	bs := g.rn.BasicStatus()
	leader := bs.RaftState == raft.StateLeader
	term := bs.HardState.GetTerm()
	if leader == g.leader && term == g.term && bs.Lead == g.lead {
		return
	}
	if g.leader && (!leader || term != g.term) {
		g.failWaiters(ErrLost)
	}
	if leader && (!g.leader || term != g.term) {
		g.termStart, _ = g.st.LastIndex()
	}
	g.leader, g.term, g.lead = leader, term, bs.Lead
	g.changed = true
	if e.cfg.Observer != nil {
		e.cfg.Observer.LeaderChanged(e.statusOf(g))
	}
}
