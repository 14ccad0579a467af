package shard

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// group is one local replica: its storage, its RawNode, and what waits on
// it. Only the loop touches it.
type group struct {
	shard uint32
	id    uint64
	st    *raftstore.Storage
	rn    *raft.RawNode

	// Leadership as of the last Ready handled.
	leader    bool
	term      uint64
	lead      uint64 // the leader's replica ID (0: none known)
	termStart uint64 // the last index when this leadership was taken up (see syncLeader)

	// seen maps replicas to the nodes whose messages came from them: an
	// uninitialized replica answers its leader before it knows the config.
	seen map[uint64]raftstore.ReplicaDesc
	// lastLeader is when a message from a leader last arrived.
	lastLeader time.Time

	props  map[uint64]*proposal // by proposal id, while leader
	reads  []*readReq           // waiting for the next ReadIndex
	issued map[uint64]*readBatch
	ready  []*readBatch // confirmed, waiting for applied ≥ index
	leads  []leadWait
	// scopeLast is the index of the last entry of each scope appended in
	// this leader's term and not applied yet; scopeOrder lists them in
	// the order appended, to drop them once applied (see Lead).
	scopeLast  map[string]uint64
	scopeOrder []scopeAt
	// leases maps each scope to the stream Lead last handed it in this
	// leadership: its only writer (see Stream). A lease ends with its
	// stream (Close, a refused proposal) and is dropped then.
	leases map[string]*Stream

	incoming *incoming // a snapshot stepped this round
	removed  bool      // applied a config without itself: destroy
	dropped  bool      // removed, but uninitialized: no tombstone
	changed  bool      // publish its status after the round

	confAt     uint64    // index of the conf change last proposed here
	confSince  time.Time // when
	transferAt time.Time // last leadership transfer to the preferred replica
}

type readBatch struct {
	index uint64
	reads []*readReq
	at    time.Time
}

type scopeAt struct {
	scope string
	index uint64
}

type leadWait struct {
	index  uint64
	stream *Stream // leased already; handed over once index is applied
	done   func(*Stream, error)
}

// raftConfig is the raft configuration of a replica (RAFT-NOTES §8).
func (e *Engine) raftConfig(st *raftstore.Storage) *raft.Config {
	return &raft.Config{
		ID:                        st.ReplicaID(),
		ElectionTick:              e.cfg.Timing.ElectionTicks,
		HeartbeatTick:             e.cfg.Timing.HeartbeatTicks,
		Storage:                   st,
		Applied:                   st.Applied().Index,
		MaxSizePerMsg:             e.cfg.MaxSizePerMsg,
		MaxCommittedSizePerReady:  4 * e.cfg.MaxSizePerMsg,
		MaxUncommittedEntriesSize: e.cfg.MaxUncommittedBytes,
		MaxInflightMsgs:           e.cfg.MaxInflightMsgs,
		MaxInflightBytes:          e.cfg.MaxInflightBytes,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		DisableProposalForwarding: true,
		StepDownOnRemoval:         true,
		Logger:                    &raftLogger{l: e.log.With("shard", st.Shard(), "replica", st.ReplicaID())},
	}
}

func (e *Engine) newGroup(st *raftstore.Storage) (*group, error) {
	rn, err := raft.NewRawNode(e.raftConfig(st))
	if err != nil {
		return nil, fmt.Errorf("shard %d: %w", st.Shard(), err)
	}
	st.SnapshotReady = e.snaps.canSend
	g := &group{shard: st.Shard(), id: st.ReplicaID(), st: st, rn: rn, seen: make(map[uint64]raftstore.ReplicaDesc),
		props: make(map[uint64]*proposal), issued: make(map[uint64]*readBatch), changed: true}
	e.groups[g.shard] = g
	e.shardsStale = true
	e.status.set(e.statusOf(g))
	return g, nil
}

// loadAll opens every replica the store holds.
func (e *Engine) loadAll() error {
	shards, err := raftstore.Shards(e.cfg.DB)
	if err != nil {
		return err
	}
	for _, s := range shards {
		st, err := raftstore.Load(e.cfg.DB, s)
		if errors.Is(err, raftstore.ErrNoReplica) {
			continue // a tombstone only
		}
		if err != nil {
			return err
		}
		g, err := e.newGroup(st)
		if err != nil {
			return err
		}
		e.campaignIfAlone(g)
	}
	return nil
}

// campaignIfAlone makes a replica that is its shard's only voter leader at
// once, instead of after an election timeout (a single node restarting).
func (e *Engine) campaignIfAlone(g *group) {
	cs := g.st.Applied().ConfState
	if g.st.Initialized() && slices.Equal(cs.GetVoters(), []uint64{g.id}) && len(cs.GetVotersOutgoing()) == 0 {
		_ = g.rn.Campaign()
	}
}

// Bootstrap creates, as the only voter with this node as their only
// replica, the shards below count that this node does not hold yet. It
// forms a new cluster's shards; call it before Start.
func (e *Engine) Bootstrap(count uint32) error {
	b := e.cfg.DB.NewBatch()
	var created []*raftstore.Storage
	for s := range count {
		if e.groups[s] != nil {
			continue
		}
		st, err := raftstore.Bootstrap(e.cfg.DB, b, s, 1, []raftstore.ReplicaDesc{{ID: 1, Node: e.cfg.Node, Store: e.cfg.Store}})
		if err != nil {
			b.Close()
			return err
		}
		created = append(created, st)
	}
	if err := raftstore.Commit(b, true); err != nil {
		return fmt.Errorf("shard: bootstrap: %w", err)
	}
	for _, st := range created {
		g, err := e.newGroup(st)
		if err != nil {
			return err
		}
		e.campaignIfAlone(g)
	}
	return nil
}

// peer returns where replica id of g lives.
func (g *group) peer(id uint64) (raftstore.ReplicaDesc, bool) {
	if r, ok := g.st.Applied().Replica(id); ok {
		return r, true
	}
	r, ok := g.seen[id]
	return r, ok
}

// leaderNode returns the node of the replica g believes leads, or "".
func (g *group) leaderNode() string {
	if g.lead == 0 {
		return ""
	}
	r, _ := g.peer(g.lead)
	return r.Node
}

func (g *group) notLeader() error {
	return &NotLeaderError{Shard: g.shard, Leader: g.leaderNode(), Term: g.term}
}

// failWaiters answers every proposal, read and activation of g with err.
func (g *group) failWaiters(err error) {
	for id, p := range g.props {
		p.stream.broken.Store(true)
		p.done(err)
		delete(g.props, id)
	}
	for _, r := range g.reads {
		r.done(err)
	}
	g.reads = nil
	for ctx, rb := range g.issued {
		for _, r := range rb.reads {
			r.done(err)
		}
		delete(g.issued, ctx)
	}
	for _, rb := range g.ready {
		for _, r := range rb.reads {
			r.done(err)
		}
	}
	g.ready = nil
	for _, l := range g.leads {
		l.done(nil, err)
	}
	g.leads = nil
	clear(g.scopeLast)
	g.scopeOrder = nil
	// Every stream of this leadership ends with it, even if raft goes on
	// leading in the same term (after a disk stall): activations start
	// afresh, behind a barrier over everything appended.
	for _, s := range g.leases {
		s.broken.Store(true)
	}
	clear(g.leases)
}

// lease hands scope a new stream in g's term, ending the one it had.
func (g *group) lease(scope string) *Stream {
	s := &Stream{shard: g.shard, term: g.term, scope: scope}
	if scope == "" {
		return s
	}
	if old := g.leases[scope]; old != nil {
		old.broken.Store(true)
	}
	if g.leases == nil {
		g.leases = make(map[string]*Stream)
	}
	g.leases[scope] = s
	return s
}

// dropEndedLeases forgets the leases whose streams ended, so the map
// holds the live activations' only.
func (g *group) dropEndedLeases() {
	for scope, s := range g.leases {
		if s.broken.Load() {
			delete(g.leases, scope)
		}
	}
}

// noteScopes records the scopes of the entries a leader appends: those
// of its own proposals on streams of a scope.
func (g *group) noteScopes(proposer uint64, ents []*pb.Entry) {
	if len(g.props) == 0 {
		return
	}
	for _, ent := range ents {
		if ent.GetType() != pb.EntryType_EntryNormal || len(ent.GetData()) == 0 {
			continue
		}
		h, _, err := decodeEntry(ent.GetData())
		if err != nil || h.proposer != proposer {
			continue
		}
		if p := g.props[h.id]; p != nil && p.stream.scope != "" {
			if g.scopeLast == nil {
				g.scopeLast = make(map[string]uint64)
			}
			g.scopeLast[p.stream.scope] = ent.GetIndex()
			g.scopeOrder = append(g.scopeOrder, scopeAt{p.stream.scope, ent.GetIndex()})
		}
	}
}

// dropApplied forgets the scopes' entries that are applied.
func (g *group) dropApplied(applied uint64) {
	n := 0
	for n < len(g.scopeOrder) && g.scopeOrder[n].index <= applied {
		if s := g.scopeOrder[n]; g.scopeLast[s.scope] == s.index {
			delete(g.scopeLast, s.scope)
		}
		n++
	}
	if n > 0 {
		g.scopeOrder = g.scopeOrder[n:]
		if len(g.scopeOrder) == 0 {
			g.scopeOrder = nil
		}
	}
}

// inConfig reports whether replica id is in the configuration cs.
func inConfig(cs interface {
	GetVoters() []uint64
	GetLearners() []uint64
	GetVotersOutgoing() []uint64
	GetLearnersNext() []uint64
}, id uint64) bool {
	return slices.Contains(cs.GetVoters(), id) || slices.Contains(cs.GetLearners(), id) ||
		slices.Contains(cs.GetVotersOutgoing(), id) || slices.Contains(cs.GetLearnersNext(), id)
}

// raftLogger sends raft's log to slog: its chatter (elections, terms) at
// debug, its warnings at info.
type raftLogger struct{ l *slog.Logger }

func (r *raftLogger) Debug(v ...any)                 { r.l.Debug(fmt.Sprint(v...)) }
func (r *raftLogger) Debugf(format string, v ...any) { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r *raftLogger) Info(v ...any)                  { r.l.Debug(fmt.Sprint(v...)) }
func (r *raftLogger) Infof(format string, v ...any)  { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r *raftLogger) Warning(v ...any)               { r.l.Info(fmt.Sprint(v...)) }
func (r *raftLogger) Warningf(format string, v ...any) {
	r.l.Info(fmt.Sprintf(format, v...))
}
func (r *raftLogger) Error(v ...any)                 { r.l.Error(fmt.Sprint(v...)) }
func (r *raftLogger) Errorf(format string, v ...any) { r.l.Error(fmt.Sprintf(format, v...)) }
func (r *raftLogger) Fatal(v ...any)                 { r.Panic(v...) }
func (r *raftLogger) Fatalf(format string, v ...any) { r.Panicf(format, v...) }
func (r *raftLogger) Panic(v ...any) {
	s := fmt.Sprint(v...)
	r.l.Error(s)
	panic(s)
}
func (r *raftLogger) Panicf(format string, v ...any) {
	s := fmt.Sprintf(format, v...)
	r.l.Error(s)
	panic(s)
}

// LocalShards returns the shards of which the store holds a replica.
func LocalShards(db *pebble.DB) ([]uint32, error) { return raftstore.Shards(db) }
