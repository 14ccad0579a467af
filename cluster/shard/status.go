package shard

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
)

// Status is what this node knows of one of its replicas' shard.
type Status struct {
	Shard     uint32 `json:"shard"`
	ReplicaID uint64 `json:"replica_id"`
	Term      uint64 `json:"term"`
	// Leader is the node of the replica this one believes leads ("" when
	// none is known); IsLeader is set when it is this node.
	Leader        string `json:"leader,omitempty"`
	LeaderReplica uint64 `json:"leader_replica,omitempty"`
	IsLeader      bool   `json:"is_leader,omitempty"`
	Applied       uint64 `json:"applied"`
	Commit        uint64 `json:"commit"`
	// ConfIndex is the index of the configuration in force.
	ConfIndex uint64          `json:"conf_index"`
	Replicas  []ReplicaStatus `json:"replicas"`
	// Initialized is false while a new replica waits for its snapshot.
	Initialized bool `json:"initialized"`
}

// Roles of a replica in its shard's configuration.
const (
	RoleVoter    = "voter"
	RoleLearner  = "learner"
	RoleOutgoing = "outgoing" // a voter leaving in a joint configuration
)

// ReplicaStatus is one replica of a shard. Match and State are known only
// on the leader.
type ReplicaStatus struct {
	ID    uint64 `json:"id"`
	Node  string `json:"node"`
	Store uint64 `json:"store"`
	Role  string `json:"role"`
	Match uint64 `json:"match,omitempty"`
	// State is the leader's replication state of the replica: probe,
	// replicate or snapshot.
	State  string `json:"state,omitempty"`
	Active bool   `json:"active,omitempty"`
}

// Role returns this node's replica's role in the shard.
func (s Status) Role() string {
	for _, r := range s.Replicas {
		if r.ID == s.ReplicaID {
			return r.Role
		}
	}
	return RoleLearner // not in the configuration yet: a replica being added
}

// Voters returns the nodes of the shard's voters (incoming and outgoing).
func (s Status) Voters() []string {
	var out []string
	for _, r := range s.Replicas {
		if r.Role != RoleLearner && !slices.Contains(out, r.Node) {
			out = append(out, r.Node)
		}
	}
	return out
}

// Stats are the engine's counters.
type Stats struct {
	Rounds            uint64
	Fsyncs            uint64
	Applied           uint64 // entries applied
	Dropped           uint64 // incoming messages dropped
	SnapshotsSent     uint64
	SnapshotBytesSent uint64
	SnapshotsReceived uint64
	SnapshotsApplied  uint64
}

// statusTable publishes the loop's view for other goroutines.
type statusTable struct {
	mu     sync.Mutex // guards shards
	shards map[uint32]Status

	rounds, fsyncs, applied, dropped    atomic.Uint64
	snapshotsSent, snapshotBytesSent    atomic.Uint64
	snapshotsReceived, snapshotsApplied atomic.Uint64
}

func (t *statusTable) init() { t.shards = make(map[uint32]Status) }

func (t *statusTable) get(shard uint32) (Status, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.shards[shard]
	return s, ok
}

func (t *statusTable) set(s Status) {
	t.mu.Lock()
	t.shards[s.Shard] = s
	t.mu.Unlock()
}

func (t *statusTable) remove(shard uint32) {
	t.mu.Lock()
	delete(t.shards, shard)
	t.mu.Unlock()
}

// Status returns this node's view of shard, if it holds a replica.
func (e *Engine) Status(shard uint32) (Status, bool) { return e.status.get(shard) }

// Statuses returns this node's view of every shard it holds a replica of,
// by shard.
func (e *Engine) Statuses() []Status {
	e.status.mu.Lock()
	out := make([]Status, 0, len(e.status.shards))
	for _, s := range e.status.shards {
		out = append(out, s)
	}
	e.status.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int { return int64Cmp(uint64(a.Shard), uint64(b.Shard)) })
	return out
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	t := &e.status
	return Stats{Rounds: t.rounds.Load(), Fsyncs: t.fsyncs.Load(), Applied: t.applied.Load(), Dropped: t.dropped.Load(),
		SnapshotsSent: t.snapshotsSent.Load(), SnapshotBytesSent: t.snapshotBytesSent.Load(),
		SnapshotsReceived: t.snapshotsReceived.Load(), SnapshotsApplied: t.snapshotsApplied.Load()}
}

// statusOf builds the status of g (on the loop).
func (e *Engine) statusOf(g *group) Status {
	a := g.st.Applied()
	s := Status{Shard: g.shard, ReplicaID: g.id, Term: g.term, LeaderReplica: g.lead, IsLeader: g.leader,
		Leader: g.leaderNode(), Applied: a.Index, Commit: g.st.HardState().GetCommit(), ConfIndex: a.ConfIndex,
		Initialized: g.st.Initialized()}
	if g.leader {
		s.Leader = e.cfg.Node
	}
	cs := a.ConfState
	for _, r := range a.Replicas {
		rs := ReplicaStatus{ID: r.ID, Node: r.Node, Store: r.Store, Role: RoleVoter}
		switch {
		case slices.Contains(cs.GetLearners(), r.ID) || slices.Contains(cs.GetLearnersNext(), r.ID):
			rs.Role = RoleLearner
		case !slices.Contains(cs.GetVoters(), r.ID):
			rs.Role = RoleOutgoing
		}
		s.Replicas = append(s.Replicas, rs)
	}
	if g.leader {
		g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
			for i := range s.Replicas {
				if s.Replicas[i].ID == id {
					s.Replicas[i].Match, s.Replicas[i].State, s.Replicas[i].Active = pr.Match, progressState(pr.State), pr.RecentActive
				}
			}
		})
	}
	return s
}

// publishEvery is how often the leaders' replication progress is
// republished even when nothing else changed.
const publishEvery = 500 * time.Millisecond

// publish updates the status table for the groups that changed (all of
// them every publishEvery).
func (e *Engine) publish() {
	now := e.clock()
	all := now.Sub(e.lastScan) >= publishEvery
	if all {
		e.lastScan = now
	}
	for _, g := range e.groups {
		if g.changed || all {
			g.changed = false
			e.status.set(e.statusOf(g))
		}
	}
}

// progressState names a follower's replication state as the API shows it.
func progressState(s tracker.StateType) string {
	switch s {
	case tracker.StateProbe:
		return "probe"
	case tracker.StateReplicate:
		return "replicate"
	case tracker.StateSnapshot:
		return "snapshot"
	}
	return s.String()
}
