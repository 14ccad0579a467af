package shard

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// The rebalancer (RAFT-NOTES §5). Each shard's leader places the shard's
// replicas by rendezvous hashing of the shard over the hosts that may hold
// one — alive, or dead for less than ReplaceDeadAfter; not draining, left
// or forgotten — and moves them one configuration change at a time:
//
//   - a replica is added as a learner, filled by snapshot, and promoted
//     only once it has caught up; when it replaces one, the promotion and
//     the removal are one joint change (ConfChangeV2, left automatically),
//     so the shard never drops below the live copies it had;
//   - a replica that is not wanted (its host drains, left, was forgotten,
//     stayed dead too long, or lost its disk) is removed, after its
//     replacement is in, or alone when no host is left to replace it;
//   - a leader that is not wanted hands its leadership to a caught-up
//     voter first, and a leader that is not the shard's preferred one (the
//     first in rank) hands it over when the preferred one has caught up,
//     which spreads leaders (and so actors) evenly over the hosts;
//   - a leader whose host's disk is full (its store refuses writes, so
//     its shards' actors could only answer unavailable) or slow (every
//     commit would wait for its fsyncs) hands its leadership to a
//     caught-up voter on a host whose disk is neither, and no leader
//     hands leadership to such a host. The host keeps its replicas: it
//     still has every entry, and once its disk has room or speed again
//     the preferred-replica rule above gives it its leaderships back.

// Host is a node replicas may be placed on, as the cluster sees it.
type Host struct {
	Node  string
	Store uint64
	// Alive is false once failure detection declared the node dead;
	// DeadSince is when.
	Alive     bool
	DeadSince time.Time
	Draining  bool
	// DiskFull is set while the host's store refuses writes (its disk is
	// full), DiskSlow while its disk is slow: either way it keeps its
	// replicas but should lead none.
	DiskFull, DiskSlow bool
}

// hostSet is the engine's view of the hosts, set by the cluster layer.
type hostSet struct {
	mu    sync.Mutex // guards hosts
	hosts map[string]Host
}

// SetHosts replaces the hosts replicas may be placed on: every host of
// this node's cluster not left or forgotten.
func (e *Engine) SetHosts(hosts []Host) {
	m := make(map[string]Host, len(hosts))
	for _, h := range hosts {
		m[h.Node] = h
	}
	e.hosts.mu.Lock()
	e.hosts.hosts = m
	e.hosts.mu.Unlock()
}

func (e *Engine) hostView() map[string]Host {
	e.hosts.mu.Lock()
	defer e.hosts.mu.Unlock()
	return e.hosts.hosts
}

// rebalanceEvery is how often leaders look at their shards' placement.
const rebalanceEvery = 200 * time.Millisecond

// maintain runs the loop's periodic work: placement, for the shards this
// node leads; removal of replicas their shards no longer have.
func (e *Engine) maintain(now time.Time) {
	if now.Sub(e.lastPlace) < rebalanceEvery {
		return
	}
	e.lastPlace = now
	hosts := e.hostView()
	for _, s := range e.sortedShards() {
		g := e.groups[s]
		if g.leader {
			if hosts != nil {
				e.place(g, hosts, now)
			}
			continue
		}
		e.maybeOrphaned(g, now)
	}
}

// wanted returns the hosts that should hold shard g's replicas, best
// first.
func (e *Engine) wanted(g *group, hosts map[string]Host, now time.Time) []Host {
	var names []string
	for _, h := range hosts {
		if h.Store != 0 && !h.Draining && (h.Alive || now.Sub(h.DeadSince) < e.cfg.ReplaceDeadAfter) {
			names = append(names, h.Node)
		}
	}
	ranked := Rank(names, fmt.Sprintf("shard/%d", g.shard))
	out := make([]Host, 0, e.cfg.Replicas)
	for _, n := range ranked[:min(len(ranked), e.cfg.Replicas)] {
		out = append(out, hosts[n])
	}
	return out
}

// replicaView is one replica of a led shard as the rebalancer sees it.
type replicaView struct {
	desc     raftstore.ReplicaDesc
	learner  bool
	wanted   bool
	live     bool // its host is up with the same store
	caughtUp bool
	unfit    bool // its host's disk is full or slow: it should not lead
}

// place makes at most one move for a shard this node leads.
func (e *Engine) place(g *group, hosts map[string]Host, now time.Time) {
	a := g.st.Applied()
	cs := a.ConfState
	if len(cs.GetVotersOutgoing()) > 0 || len(cs.GetLearnersNext()) > 0 || g.rn.BasicStatus().LeadTransferee != 0 {
		return // a joint configuration (left by itself) or a transfer under way
	}
	if g.confAt != 0 && (a.ConfIndex < g.confAt) && now.Sub(g.confSince) < e.cfg.RequestTimeout {
		return // our last change is not applied yet
	}
	want := e.wanted(g, hosts, now)
	if len(want) == 0 {
		return
	}
	commit := g.st.HardState().GetCommit()
	prog := map[uint64]tracker.Progress{}
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) { prog[id] = pr })
	var reps []replicaView
	for _, r := range a.Replicas {
		h, ok := hosts[r.Node]
		rv := replicaView{desc: r, learner: slices.Contains(cs.GetLearners(), r.ID)}
		rv.live = ok && h.Alive && h.Store == r.Store
		rv.unfit = ok && (h.DiskFull || h.DiskSlow)
		rv.wanted = slices.ContainsFunc(want, func(w Host) bool { return w.Node == r.Node && w.Store == r.Store })
		pr, tracked := prog[r.ID]
		rv.caughtUp = r.ID == g.id || (tracked && pr.State == tracker.StateReplicate && pr.RecentActive && pr.Match+catchUpSlack >= commit)
		reps = append(reps, rv)
	}
	self := slices.IndexFunc(reps, func(r replicaView) bool { return r.desc.ID == g.id })
	if self < 0 {
		return
	}
	// 1. Hand leadership to a wanted, caught-up voter if this one is not
	// wanted any more, or cannot write. With none to hand it to (a shard
	// still on this node alone, which formed the cluster and is not among
	// the shard's hosts), first grow the shard onto them (below).
	if !reps[self].wanted || reps[self].unfit {
		if to, ok := bestVoter(reps, want, g.id); ok {
			e.log.Debug("transferring shard leadership off this node", "shard", g.shard, "to", to.desc.Node, "disk_full_or_slow", reps[self].unfit)
			g.rn.TransferLeader(to.desc.ID)
			return
		}
	}
	// 2. Promote a caught-up wanted learner, swapping an unwanted voter out
	// in the same joint change; drop unwanted learners.
	for _, r := range reps {
		if !r.learner {
			continue
		}
		if !r.wanted || !r.live {
			// Not needed, or its host went down before it caught up: it is
			// added again (with a new ID) when its host is back.
			e.change(g, now, "removing a learner", []*pb.ConfChangeSingle{removeNode(r.desc.ID)}, nil)
			return
		}
		if !r.caughtUp || !r.live {
			continue
		}
		changes := []*pb.ConfChangeSingle{addNode(r.desc.ID)}
		if out, ok := unwantedVoter(reps, g.id); ok {
			changes = append(changes, removeNode(out.desc.ID))
		}
		e.change(g, now, "promoting a caught-up learner", changes, nil)
		return
	}
	// 3. Add a learner on a wanted host that holds no replica.
	if !slices.ContainsFunc(reps, func(r replicaView) bool { return r.learner }) {
		for _, w := range want {
			if slices.ContainsFunc(reps, func(r replicaView) bool { return r.desc.Node == w.Node && r.desc.Store == w.Store }) || !w.Alive {
				continue
			}
			id := a.NextReplicaID
			e.change(g, now, "adding a learner", []*pb.ConfChangeSingle{{Type: pb.ConfChangeType_ConfChangeAddLearnerNode.Enum(), NodeId: new(id)}},
				[]raftstore.ReplicaDesc{{ID: id, Node: w.Node, Store: w.Store}})
			return
		}
	}
	// 4. Remove an unwanted voter no replacement is coming for, keeping at
	// least two live voters (one when only one host is left). A live one
	// goes only while the shard has more voters than hosts it wants: else
	// a wanted host is down for now (dead for less than ReplaceDeadAfter),
	// and this voter stands in for it until it is back (then it replaces
	// this one) or given up (then this one is wanted again).
	if out, ok := unwantedVoter(reps, g.id); ok && !slices.ContainsFunc(reps, func(r replicaView) bool { return r.learner }) {
		live, voters := 0, 0
		for _, r := range reps {
			if !r.learner {
				voters++
			}
			if !r.learner && r.live && r.desc.ID != out.desc.ID {
				live++
			}
		}
		if live >= min(2, len(want)) && (!out.live || voters > len(want)) {
			e.change(g, now, "removing a replica no host replaces", []*pb.ConfChangeSingle{removeNode(out.desc.ID)}, nil)
		}
		return
	}
	// 5. Hand leadership to the shard's preferred replica once it has
	// caught up, to spread leaders over the hosts.
	if pref := want[0]; pref.Node != e.cfg.Node && now.Sub(g.transferAt) > 10*e.cfg.Timing.ElectionTimeout() {
		for _, r := range reps {
			if !r.learner && r.live && r.caughtUp && !r.unfit && r.desc.Node == pref.Node && r.desc.Store == pref.Store {
				g.transferAt = now
				g.rn.TransferLeader(r.desc.ID)
				return
			}
		}
	}
}

// uninitializedIdle is how many election timeouts an uninitialized
// replica waits for its leader before it is dropped.
const uninitializedIdle = 10

// catchUpSlack is how far behind the leader's commit a replica may be and
// still count as caught up.
const catchUpSlack = 64

// change proposes a configuration change of a led shard.
func (e *Engine) change(g *group, now time.Time, why string, changes []*pb.ConfChangeSingle, added []raftstore.ReplicaDesc) {
	if err := e.proposeConfChange(g, changes, added); err != nil {
		e.log.Info("configuration change refused", "shard", g.shard, "why", why, "err", err)
		return
	}
	last, _ := g.st.LastIndex()
	g.confAt, g.confSince = last+1, now
	e.log.Debug("shard configuration change proposed", "shard", g.shard, "why", why, "changes", pb.ConfChangesToString(changes))
}

// bestVoter returns a wanted, live, caught-up voter other than self on a
// host with room on its disk, the best ranked first.
func bestVoter(reps []replicaView, want []Host, self uint64) (replicaView, bool) {
	for _, w := range want {
		for _, r := range reps {
			if r.desc.ID != self && !r.learner && r.wanted && r.live && r.caughtUp && !r.unfit && r.desc.Node == w.Node {
				return r, true
			}
		}
	}
	return replicaView{}, false
}

// unwantedVoter returns a voter (not self) that is not wanted, a dead one
// first.
func unwantedVoter(reps []replicaView, self uint64) (replicaView, bool) {
	found, ok := replicaView{}, false
	for _, r := range reps {
		if r.learner || r.wanted || r.desc.ID == self {
			continue
		}
		if !ok || (found.live && !r.live) {
			found, ok = r, true
		}
	}
	return found, ok
}

func addNode(id uint64) *pb.ConfChangeSingle {
	return &pb.ConfChangeSingle{Type: pb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: new(id)}
}

func removeNode(id uint64) *pb.ConfChangeSingle {
	return &pb.ConfChangeSingle{Type: pb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: new(id)}
}

// proposeConfChange proposes a change of g's configuration; the context
// describes the replicas it adds. One change is a simple change, several
// enter a joint configuration that raft leaves by itself.
func (e *Engine) proposeConfChange(g *group, changes []*pb.ConfChangeSingle, added []raftstore.ReplicaDesc) error {
	return g.rn.ProposeConfChange(&pb.ConfChangeV2{Changes: changes, Context: encodeReplicas(added)})
}

// addLearner proposes a new learner replica on node's store.
func (e *Engine) addLearner(g *group, node string, store uint64) (uint64, error) {
	id := g.st.Applied().NextReplicaID
	cc := []*pb.ConfChangeSingle{{Type: pb.ConfChangeType_ConfChangeAddLearnerNode.Enum(), NodeId: new(id)}}
	return id, e.proposeConfChange(g, cc, []raftstore.ReplicaDesc{{ID: id, Node: node, Store: store}})
}

// Membership is what the cluster knows of a shard's configuration from
// its leader: the term it leads in, the configuration's index and its
// replicas.
type Membership struct {
	Term      uint64
	ConfIndex uint64
	Replicas  []uint64
}

// SetMembership gives the engine the cluster's view of shards' leaders'
// configurations, by which a replica that was removed while it was away
// (and so never applied its removal) finds out.
func (e *Engine) SetMembership(fn func(shard uint32) (Membership, bool)) {
	e.hosts.mu.Lock()
	e.membership = fn
	e.hosts.mu.Unlock()
}

// maybeOrphaned destroys a replica that the shard's current leader does not
// count in a configuration newer than the replica's own, and that no
// leader has contacted for two election timeouts (a replica just added
// hears from its leader at once). A replica still waiting for its first
// snapshot knows no configuration to compare and holds nothing: once no
// leader has contacted it for uninitializedIdle election timeouts (a
// learner hears its leader's heartbeats, even while a snapshot streams to
// it), it is dropped without a tombstone — should its shard still want
// it, the leader's next message creates it again.
func (e *Engine) maybeOrphaned(g *group, now time.Time) {
	if !g.st.Initialized() {
		if now.Sub(g.lastLeader) > uninitializedIdle*e.cfg.Timing.ElectionTimeout() && g.incoming == nil {
			e.log.Debug("dropping a replica that never received its shard", "shard", g.shard, "replica", g.id)
			g.removed, g.dropped = true, true
		}
		return
	}
	e.hosts.mu.Lock()
	fn := e.membership
	e.hosts.mu.Unlock()
	if fn == nil || now.Sub(g.lastLeader) < 2*e.cfg.Timing.ElectionTimeout() {
		return
	}
	m, ok := fn(g.shard)
	if !ok || m.Term < g.term || m.ConfIndex <= g.st.Applied().ConfIndex || slices.Contains(m.Replicas, g.id) {
		return
	}
	e.log.Info("replica no longer in its shard's configuration; removing it", "shard", g.shard, "replica", g.id, "conf_index", m.ConfIndex)
	g.removed = true
}
