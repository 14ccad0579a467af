package cluster

// Membership: what memberlist tells this node about the others, the view
// built from it and the host registry, and what this node gossips about
// itself (its metadata: draining, a full disk, its cluster identity).

import (
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// OnChange registers fn to be called (on a cluster goroutine; it must not
// block) whenever a member's state or metadata changes.
func (c *Cluster) OnChange(fn func(old, cur Member)) {
	c.mu.Lock()
	c.listeners = append(c.listeners, fn)
	c.mu.Unlock()
}

// SetDraining gossips that this node is (or is no longer) draining: it
// leaves placement, so other nodes stop sending it new activations.
func (c *Cluster) SetDraining(on bool) error {
	return c.updateMeta(func(m *Meta) { m.Draining = on })
}

// SetDiskFull gossips that this node's store refuses writes for want of
// disk space (or takes them again): leaders elsewhere stop handing it
// shard leaderships, and its own shards' leaderships move away.
func (c *Cluster) SetDiskFull(on bool) error {
	return c.updateMeta(func(m *Meta) { m.DiskFull = on })
}

// SetDiskSlow gossips that this node's disk is slow (or fast again): its
// shards' leaderships move to hosts whose disks are not, and no leader
// hands it one.
func (c *Cluster) SetDiskSlow(on bool) error {
	return c.updateMeta(func(m *Meta) { m.DiskSlow = on })
}

// updateMeta changes this node's metadata and gossips it.
func (c *Cluster) updateMeta(change func(*Meta)) error {
	c.mu.Lock()
	change(&c.meta)
	c.mu.Unlock()
	c.rebuild()
	return c.ml.UpdateNode(5 * time.Second)
}

// Forget removes a dead host from placement for good: its scopes will be
// activated elsewhere, empty, in stage 1. The decision spreads to the
// other nodes through the registry.
func (c *Cluster) Forget(name string) error {
	if name == c.cfg.Name {
		return fmt.Errorf("a node cannot forget itself")
	}
	for _, rec := range c.reg.all() {
		if rec.Name == name {
			if m, ok := c.View().Member(name); ok && m.State == StateAlive {
				return fmt.Errorf("node %s is alive: drain it instead", name)
			}
			rec.Left = true
			c.reg.merge(rec)
			c.rebuild()
			return nil
		}
	}
	return fmt.Errorf("no node %s", name)
}

// liveState is what memberlist last said of a node.
type liveState struct {
	state   State
	meta    Meta
	gossip  string
	since   time.Time
	returns int // Member.Returns
}

// rebuild recomputes the view from the registry and memberlist's states
// and notifies listeners of members that changed.
func (c *Cluster) rebuild() {
	c.mu.Lock()
	members := make(map[string]Member)
	for _, rec := range c.reg.all() {
		m := Member{Name: rec.Name, Gossip: rec.Gossip, State: StateDead,
			Meta: Meta{Roles: rec.Roles, Remote: rec.Remote, Incarnation: rec.Incarnation}}
		if l, ok := c.live[rec.Name]; ok && l.meta.Incarnation >= rec.Incarnation {
			m.Meta, m.State, m.Gossip, m.Since, m.Returns = l.meta, l.state, l.gossip, l.since, l.returns
		}
		if rec.Left && m.Meta.Incarnation <= rec.Incarnation {
			m.State = StateLeft
		}
		members[rec.Name] = m
	}
	self := members[c.cfg.Name]
	self.Name, self.Meta, self.State = c.cfg.Name, c.meta, StateAlive
	if self.Gossip == "" && c.ml != nil {
		self.Gossip = c.GossipAddress()
	}
	members[c.cfg.Name] = self
	old := c.view.Load()
	cur := buildView(members, c.meta.Cluster)
	c.view.Store(cur)
	listeners := c.listeners
	c.mu.Unlock()
	c.notify(old, cur, listeners)
}

func (c *Cluster) notify(old, cur *View, listeners []func(old, cur Member)) {
	for name, m := range cur.members {
		o, existed := old.members[name]
		if existed && o.State == m.State && metaEqual(o.Meta, m.Meta) {
			continue
		}
		if existed && o.State != m.State {
			c.log.Info("member state", "name", name, "from", o.State, "to", m.State)
		} else if !existed {
			c.log.Info("member known", "name", name, "state", m.State, "roles", m.Meta.Roles)
		}
		if m.State == StateAlive && (!existed || o.State != StateAlive) {
			c.kickAnnounce() // tell it who leads what
		}
		switch {
		case m.State == StateDead || m.State == StateLeft:
			c.router.failNode(name, fmt.Sprintf("node %s is %s", name, m.State))
			c.dropRaftStream(name)
		case existed && o.Meta.Incarnation != 0 && o.Meta.Incarnation != m.Meta.Incarnation:
			// Restarted faster than failure detection: what was sent to
			// its previous life will not be answered.
			c.router.failNode(name, fmt.Sprintf("node %s restarted", name))
			c.dropRaftStream(name)
		}
		for _, fn := range listeners {
			fn(o, m)
		}
	}
}

// observeNode records what a memberlist event says of one node. Only
// events may read a memberlist.Node's address and metadata: memberlist
// calls them under its lock, and rewrites both when they change.
func (c *Cluster) observeNode(n *memberlist.Node, state State) {
	meta, ok := decodeMeta(n.Meta)
	if !ok {
		return // not one of ours, or not yet announced
	}
	c.observe(n.Name, meta, n.Address(), state)
}

// observe records what memberlist says of one node. memberlist's own
// Node.State is not reliable in callbacks, so the caller says what it
// learned; a node that announced it is leaving is left, not dead.
func (c *Cluster) observe(name string, meta Meta, gossip string, state State) {
	if name == c.cfg.Name {
		return
	}
	if meta.Left && state != StateAlive {
		state = StateLeft
	}
	if state == StateAlive {
		c.joined.Store(true) // someone reached us, if we did not reach them
	}
	c.mu.Lock()
	old, existed := c.live[name]
	if state == StateSuspect && existed && (old.state == StateDead || old.state == StateLeft) {
		c.mu.Unlock()
		return // only memberlist's own events bring a dead node back
	}
	if !existed || old.meta.Incarnation != meta.Incarnation || old.state != StateAlive {
		c.acked[name] = time.Now() // a new life (or a return) starts unsuspected
	}
	unchanged := existed && old.state == state && old.gossip == gossip && metaEqual(old.meta, meta)
	if !unchanged {
		since, returns := time.Now(), 0
		if existed && old.state == state {
			since = old.since
		}
		if existed && old.meta.Incarnation == meta.Incarnation {
			returns = old.returns
			if state == StateAlive && (old.state == StateDead || old.state == StateLeft) {
				returns++
			}
		}
		c.live[name] = liveState{state: state, meta: meta, gossip: gossip, since: since, returns: returns}
	}
	c.mu.Unlock()
	if unchanged {
		return
	}
	if !meta.compatible() && (!existed || old.meta.Incarnation != meta.Incarnation || old.meta.Version != meta.Version) {
		c.log.Error("member speaks an incompatible cluster protocol version: nothing is placed on it; run one protocol version in the cluster",
			"name", name, "version", meta.Version, "want", ProtocolVersion)
	}
	c.reg.merge(HostRecord{Name: name, Incarnation: meta.Incarnation, Left: state == StateLeft,
		Remote: meta.Remote, Gossip: gossip, Roles: meta.Roles})
	c.rebuild()
}

func metaEqual(a, b Meta) bool {
	return a.Remote == b.Remote && a.HTTP == b.HTTP && a.Version == b.Version &&
		a.Draining == b.Draining && a.DiskFull == b.DiskFull && a.DiskSlow == b.DiskSlow && a.Left == b.Left && a.Incarnation == b.Incarnation && slices.Equal(a.Roles, b.Roles) &&
		a.Cluster == b.Cluster && a.Shards == b.Shards && a.Store == b.Store
}

// Identity returns the cluster this node belongs to and its shard count
// ("" and 0 until it formed or learned them).
func (c *Cluster) Identity() (cluster string, shards uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.meta.Cluster, c.meta.Shards
}

func (c *Cluster) shardCount() uint32 {
	_, n := c.Identity()
	return n
}

// SetIdentity records the cluster this node belongs to, its shard count
// and the node's store, and gossips them.
func (c *Cluster) SetIdentity(cluster string, shards uint32, store uint64) error {
	c.mu.Lock()
	c.meta.Cluster, c.meta.Shards, c.meta.Store = cluster, shards, store
	c.mu.Unlock()
	c.rebuild()
	c.kickAnnounce()
	return c.ml.UpdateNode(5 * time.Second)
}

// KnownIdentity returns the cluster identity other members carry: the one
// of the alive members with one, if they agree. A new node adopts it.
func (c *Cluster) KnownIdentity() (cluster string, shards uint32, ok bool) {
	for _, m := range c.View().Members() {
		if m.Name == c.cfg.Name || m.State != StateAlive || m.Meta.Cluster == "" || !m.Compatible() {
			continue
		}
		if cluster != "" && (m.Meta.Cluster != cluster || m.Meta.Shards != shards) {
			return "", 0, false // members disagree: adopt nothing
		}
		cluster, shards = m.Meta.Cluster, m.Meta.Shards
	}
	return cluster, shards, cluster != ""
}

type delegate struct{ c *Cluster }

func (d *delegate) NodeMeta(limit int) []byte {
	d.c.mu.Lock()
	b := d.c.meta.encode()
	d.c.mu.Unlock()
	if len(b) > limit {
		d.c.log.Error("node metadata exceeds memberlist's limit", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return d.c.reg.encode() }
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	var recs []HostRecord
	for _, r := range decodeRecords(buf) {
		if r.Name != d.c.cfg.Name { // only this node speaks for itself
			recs = append(recs, r)
		}
	}
	if d.c.reg.merge(recs...) {
		d.c.rebuild()
	}
}

type events struct{ c *Cluster }

func (e *events) NotifyJoin(n *memberlist.Node)   { e.c.observeNode(n, StateAlive) }
func (e *events) NotifyLeave(n *memberlist.Node)  { e.c.observeNode(n, StateDead) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.c.observeNode(n, StateAlive) }

// pings records memberlist's successful probes; a member memberlist still
// lists but that has not answered a probe for a while is shown suspect
// (memberlist does not expose its own suspicion).
type pings struct{ c *Cluster }

func (p *pings) AckPayload() []byte { return nil }
func (p *pings) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, _ []byte) {
	p.c.mu.Lock()
	p.c.acked[other.Name] = time.Now()
	p.c.mu.Unlock()
}
