package cluster

import (
	"slices"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/cluster/shard"
)

// Shards. Every scope hashes to one of a fixed number of shards, fixed when
// the cluster forms; each shard is a Raft group whose leader hosts the
// scope's actor. Every node keeps a table of who leads each shard, fed by
// its own replicas' view and by what leaders announce (every second, and at
// once when leadership changes), and routes requests by it. A leader that
// is dead in this node's view counts as unknown: requests fail at once
// with unavailable until the new leader is heard of.

// ShardInfo is what this node knows of one shard.
type ShardInfo struct {
	Shard uint32 `json:"shard"`
	Term  uint64 `json:"term"`
	// Leader is the node leading the shard in Term ("" when unknown).
	Leader string `json:"leader,omitempty"`
	// ConfIndex is the index of the configuration Replicas describe.
	ConfIndex uint64        `json:"conf_index"`
	Applied   uint64        `json:"applied"`
	Replicas  []ReplicaInfo `json:"replicas"`
	// From is the node that said so, At when it was heard.
	From string    `json:"-"`
	At   time.Time `json:"-"`
}

// ReplicaInfo is one replica of a shard; Match, State and Active come from
// the leader.
type ReplicaInfo struct {
	ID     uint64 `json:"id"`
	Node   string `json:"node"`
	Role   string `json:"role"`
	Match  uint64 `json:"match,omitempty"`
	State  string `json:"state,omitempty"`
	Active bool   `json:"active,omitempty"`
}

type shardTable struct {
	mu        sync.Mutex // guards the fields below
	shards    map[uint32]ShardInfo
	listeners []func()
}

// merge takes what in says of its shard where it is newer: the leader of
// the highest term, the replicas of the highest configuration (and, at
// the same one, the leader's own report, which carries progress). A
// leader that reports no leader in its own term has stepped down (cut off
// from a majority, CheckQuorum): that is newer too. It reports whether
// the leader or term changed.
func (t *shardTable) merge(in ShardInfo) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.shards[in.Shard]
	changed := !ok
	resigned := ok && in.Term == cur.Term && in.Leader == "" && cur.Leader != "" && in.From == cur.Leader
	if !ok || in.Term > cur.Term || (in.Term == cur.Term && cur.Leader == "" && in.Leader != "") || resigned {
		changed = changed || in.Leader != cur.Leader || in.Term != cur.Term
		cur.Shard, cur.Term, cur.Leader, cur.From, cur.At = in.Shard, in.Term, in.Leader, in.From, in.At
	}
	fromLeader := in.Leader != "" && in.From == in.Leader && in.Term == cur.Term
	if in.ConfIndex > cur.ConfIndex || (in.ConfIndex == cur.ConfIndex && (fromLeader || len(cur.Replicas) == 0)) {
		cur.ConfIndex, cur.Replicas = in.ConfIndex, in.Replicas
		cur.Applied = max(cur.Applied, in.Applied)
	}
	if fromLeader {
		cur.At = in.At
	}
	t.shards[in.Shard] = cur
	return changed
}

func (t *shardTable) get(s uint32) (ShardInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	si, ok := t.shards[s]
	return si, ok
}

// Shard returns what this node knows of shard s.
func (c *Cluster) Shard(s uint32) (ShardInfo, bool) { return c.shards.get(s) }

// Shards returns what this node knows of every shard, by shard.
func (c *Cluster) Shards() []ShardInfo {
	c.shards.mu.Lock()
	out := make([]ShardInfo, 0, len(c.shards.shards))
	for _, si := range c.shards.shards {
		out = append(out, si)
	}
	c.shards.mu.Unlock()
	slices.SortFunc(out, func(a, b ShardInfo) int { return int(a.Shard) - int(b.Shard) })
	return out
}

// OnShardChange registers fn, called (on a cluster goroutine; it must not
// block) when the leader of a shard changes in this node's table.
func (c *Cluster) OnShardChange(fn func()) {
	c.shards.mu.Lock()
	c.shards.listeners = append(c.shards.listeners, fn)
	c.shards.mu.Unlock()
}

func (c *Cluster) learnShard(in ShardInfo) {
	if !c.shards.merge(in) {
		return
	}
	c.shards.mu.Lock()
	ls := slices.Clone(c.shards.listeners)
	c.shards.mu.Unlock()
	for _, fn := range ls {
		fn()
	}
}

// ShardOf returns the shard a scope lives in (0 until the node knows the
// cluster's shard count).
func (c *Cluster) ShardOf(kind clusterpb.Kind, id string) uint32 {
	return ShardOf(ScopeKey(kind, id), c.shardCount())
}

// LeaderOf returns the node leading a scope's shard and its term, as this
// node knows: "" when none is known or the one known is down.
func (c *Cluster) LeaderOf(kind clusterpb.Kind, id string) (node string, term uint64) {
	if c.shardCount() == 0 {
		return "", 0
	}
	si, ok := c.shards.get(c.ShardOf(kind, id))
	if !ok || si.Leader == "" {
		return "", si.Term
	}
	if m, ok := c.View().Member(si.Leader); !ok || m.State == StateDead || m.State == StateLeft {
		return "", si.Term
	}
	return si.Leader, si.Term
}

// OwnerOf returns the node that serves a scope: its shard's leader as this
// node knows it ("" when unknown).
func (c *Cluster) OwnerOf(kind clusterpb.Kind, id string) string {
	if c.cfg.claims.has(ScopeKey(kind, id)) {
		return c.cfg.Name
	}
	node, _ := c.LeaderOf(kind, id)
	return node
}

// infoOf converts an engine's status to a table entry.
func infoOf(st shard.Status, from string, at time.Time) ShardInfo {
	si := ShardInfo{Shard: st.Shard, Term: st.Term, Leader: st.Leader, ConfIndex: st.ConfIndex, Applied: st.Applied, From: from, At: at}
	for _, r := range st.Replicas {
		si.Replicas = append(si.Replicas, ReplicaInfo{ID: r.ID, Node: r.Node, Role: r.Role, Match: r.Match, State: r.State, Active: r.Active})
	}
	return si
}

// ShardChanged tells the cluster what this node's replica of a shard now
// knows (the engine's observer calls it); a change of leadership here is
// announced to every node at once.
func (c *Cluster) ShardChanged(st shard.Status) {
	c.learnShard(infoOf(st, c.cfg.Name, time.Now()))
	if st.IsLeader {
		c.announce([]shard.Status{st})
	}
}

// SetShardSource gives the cluster the engine's statuses, which it
// announces every second for the shards this node leads.
func (c *Cluster) SetShardSource(statuses func() []shard.Status) {
	c.mu.Lock()
	c.shardSource = statuses
	c.mu.Unlock()
}

// announceEvery is how often a node repeats what it leads.
const announceEvery = time.Second

func (c *Cluster) announceLoop() {
	t := time.NewTicker(announceEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.announceAll()
		case <-c.kick:
			c.announceAll()
		}
	}
}

// announceAll announces every shard this node leads, and merges its
// replicas' own view into its table.
func (c *Cluster) announceAll() {
	c.mu.Lock()
	src := c.shardSource
	c.mu.Unlock()
	if src == nil {
		return
	}
	var led []shard.Status
	now := time.Now()
	for _, st := range src() {
		c.learnShard(infoOf(st, c.cfg.Name, now))
		if st.IsLeader {
			led = append(led, st)
		}
	}
	c.announce(led)
}

// announce sends the statuses of shards this node leads to every other
// alive member.
func (c *Cluster) announce(led []shard.Status) {
	cluster, _ := c.Identity()
	if len(led) == 0 || cluster == "" {
		return
	}
	msg := &clusterpb.ShardStates{Cluster: cluster, Node: c.cfg.Name}
	for _, st := range led {
		ss := &clusterpb.ShardState{Shard: st.Shard, Term: st.Term, Leader: c.cfg.Name, ConfIndex: st.ConfIndex, Applied: st.Applied}
		for _, r := range st.Replicas {
			ss.Replicas = append(ss.Replicas, &clusterpb.ReplicaState{Id: r.ID, Node: r.Node, Role: r.Role, Match: r.Match, State: r.State, Active: r.Active})
		}
		msg.Shards = append(msg.Shards, ss)
	}
	env := clusterpb.Wrap(&clusterpb.Envelope_Shards{Shards: msg})
	for _, m := range c.View().Members() {
		if m.Name != c.cfg.Name && m.State != StateDead && m.State != StateLeft && m.Meta.Remote != "" {
			c.system.Root.Send(InboxPID(m.Meta.Remote), env)
		}
	}
}

// heardShards merges what another node announced (on the inbox).
func (c *Cluster) heardShards(msg *clusterpb.ShardStates) {
	if cluster, _ := c.Identity(); cluster == "" || msg.Cluster != cluster {
		return
	}
	now := time.Now()
	for _, ss := range msg.Shards {
		si := ShardInfo{Shard: ss.Shard, Term: ss.Term, Leader: ss.Leader, ConfIndex: ss.ConfIndex, Applied: ss.Applied, From: msg.Node, At: now}
		for _, r := range ss.Replicas {
			si.Replicas = append(si.Replicas, ReplicaInfo{ID: r.Id, Node: r.Node, Role: r.Role, Match: r.Match, State: r.State, Active: r.Active})
		}
		c.learnShard(si)
	}
}

// heardNotLeader takes the hint of a not_leader reply.
func (c *Cluster) heardNotLeader(rep *clusterpb.Reply) {
	if rep.Leader != "" {
		c.learnShard(ShardInfo{Shard: rep.Shard, Term: rep.LeaderTerm, Leader: rep.Leader, At: time.Now()})
	}
}
