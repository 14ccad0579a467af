package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/actors"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/persistence"
)

// A node's part in replication:
//
//   - Forming. A host started without --join whose store belongs to no
//     cluster forms a new one: it makes up the cluster id, fixes the shard
//     count (--shards, default 64), converts stage-1 data if its store has
//     any, and creates every shard with itself as the only replica. The
//     rebalancer grows them as other hosts join.
//   - Joining. A host started with --join whose store belongs to no
//     cluster waits until it meets a member of one, adopts its id and shard
//     count (refusing to start when --shards says otherwise) and starts
//     with no replica: leaders add it as they place their shards. Gateways
//     adopt the identity the same way, to route by shard.
//   - Forming together. New hosts all started with --join (of each other)
//     meet no member of a cluster: once a host has reached one, and for a
//     settling time has seen no member with a cluster and no new host with
//     a smaller name than its own, it forms the cluster, and the others
//     join it. (Hosts that cannot reach each other at first would form two
//     clusters, which never mix: start the first node without --join to be
//     sure.)
//   - Restarting. A host whose store belongs to a cluster starts its
//     replicas at once (refusing a --shards that differs from the stored
//     count).

const defaultShards = 64

// DefaultShards is the shard count of a cluster formed without --shards.
const DefaultShards uint32 = defaultShards

// replication is a node's raft engine and what wires it.
type replication struct {
	n      *Node
	engine *shard.Engine
	host   atomic.Pointer[actors.Host]
}

// errStage1 says what to do with a stage-1 data directory that cannot be
// converted here.
func errStage1(dir string, channels, users int) error {
	return fmt.Errorf("the data directory %s holds %d channels and %d users in the stage-1 (unreplicated) format; "+
		"this version replicates them on Raft and converts such a directory only when its node forms a new cluster: "+
		"start this node alone, without --join, to convert it (other nodes then join it), or start it with an empty "+
		"--data directory to join the running cluster without this data", dir, channels, users)
}

// startIdentity settles the node's cluster identity at start: forming or
// restarting happen now; joining happens once a member is met (watchIdentity).
func (n *Node) startIdentity() error {
	if n.store == nil {
		return nil // a gateway: adopts what members say
	}
	id, err := n.store.Identity()
	if err != nil {
		return err
	}
	if id.Cluster != "" {
		if n.cfg.Shards != 0 && n.cfg.Shards != id.Shards {
			return fmt.Errorf("this data directory belongs to a cluster of %d shards; --shards %d does not match (omit --shards, or give %d)",
				id.Shards, n.cfg.Shards, id.Shards)
		}
		if n.store.Stage1() {
			return errors.New("the data directory holds stage-1 data beside a cluster's: it was written by two versions; restore it from a backup")
		}
		return n.startReplication(id)
	}
	if len(n.cfg.Join) > 0 {
		if n.store.Stage1() {
			ch, us, err := n.store.Stage1Summary()
			if err != nil {
				return err
			}
			return errStage1(n.cfg.DataDir, ch, us)
		}
		return nil // joins (or forms with other new hosts) once it meets a member
	}
	return n.form()
}

// localShards counts the replicas the store holds.
func (n *Node) localShards() (int, error) {
	s, err := shard.LocalShards(n.store.DB())
	return len(s), err
}

// form forms a new cluster with this node's store (RAFT-NOTES on
// bootstrapping: every shard starts with this node as its only voter).
func (n *Node) form() error {
	count := n.cfg.Shards
	if count == 0 {
		count = DefaultShards
	}
	if n.store.Stage1() {
		moved, err := n.store.MigrateStage1(func(sc persistence.Scope) uint32 {
			return cluster.ShardOf(scopeKey(sc), count)
		})
		if err != nil {
			return fmt.Errorf("converting stage-1 data: %w", err)
		}
		n.log.Info("converted the stage-1 data directory into the new cluster's shards", "scopes", moved, "shards", count)
	}
	id, err := n.store.Identity()
	if err != nil {
		return err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id.Cluster, id.Shards = hex.EncodeToString(b[:]), count
	// The shards first, then the identity: a crash between the two leaves
	// shards without an identity, which the next start (without --join)
	// forms again under a new id; the other order would leave a node that
	// believes it belongs to a cluster without holding its shards.
	r, err := n.newReplication(id)
	if err != nil {
		return err
	}
	if err := r.engine.Bootstrap(count); err != nil {
		return err
	}
	if err := n.store.SetCluster(id.Cluster, id.Shards); err != nil {
		return err
	}
	n.log.Info("formed a new cluster", "cluster", id.Cluster, "shards", count)
	return n.runReplication(r, id)
}

func scopeKey(sc persistence.Scope) string {
	if sc.Kind == persistence.KindUser {
		return "u/" + sc.ID
	}
	return "c/" + sc.ID
}

// startReplication starts the replicas of a store that belongs to a
// cluster.
func (n *Node) startReplication(id persistence.Identity) error {
	r, err := n.newReplication(id)
	if err != nil {
		return err
	}
	return n.runReplication(r, id)
}

func (n *Node) newReplication(id persistence.Identity) (*replication, error) {
	r := &replication{n: n}
	cfg := shard.DefaultConfig()
	cfg.DB = n.store.DB()
	cfg.Snapshots = n.store.SnapshotEnv()
	cfg.Cluster, cfg.Node, cfg.Store = id.Cluster, n.cl.Name(), id.Store
	cfg.Transport = n.cl.RaftTransport()
	cfg.StateMachine = persistence.StateMachine{}
	cfg.Observer = r
	cfg.Timing = shard.TimingLAN
	if n.cfg.Detection == cluster.DetectionFast {
		cfg.Timing = shard.TimingFast
	}
	if n.cfg.Replicas > 0 {
		cfg.Replicas = n.cfg.Replicas
	}
	if n.cfg.ReplaceDeadAfter > 0 {
		cfg.ReplaceDeadAfter = n.cfg.ReplaceDeadAfter
	}
	cfg.Logger = n.log
	cfg.OnRound = n.metrics.round
	cfg.OnStall = n.metrics.stall
	cfg.OnSyncedWrite = func(d time.Duration) {
		if n.diskSpeed.add(d, time.Now()) {
			n.diskSpeedChanged()
		}
	}
	cfg.Admit = n.store.Admit
	cfg.OnFatal = func(err error) { n.fail(fmt.Errorf("replication stopped: %w", err)) }
	var err error
	if r.engine, err = shard.New(cfg); err != nil {
		return nil, err
	}
	return r, nil
}

// runReplication starts the host actor on the engine, the engine, and
// the traffic between them and the cluster.
func (n *Node) runReplication(r *replication, id persistence.Identity) error {
	host, err := actors.StartHost(n.hostDeps(r.engine))
	if err != nil {
		r.engine.Stop()
		return fmt.Errorf("start host: %w", err)
	}
	r.host.Store(host)
	n.repl.Store(r)
	n.metrics.watchReplication(r.engine)
	if err := n.cl.ServeRaft(r.engine); err != nil {
		return err
	}
	n.cl.SetShardSource(r.engine.Statuses)
	r.engine.SetMembership(func(s uint32) (shard.Membership, bool) {
		si, ok := n.cl.Shard(s)
		if !ok || si.Leader == "" || si.From != si.Leader {
			return shard.Membership{}, false
		}
		m := shard.Membership{Term: si.Term, ConfIndex: si.ConfIndex}
		for _, rep := range si.Replicas {
			m.Replicas = append(m.Replicas, rep.ID)
		}
		return m, true
	})
	n.cl.OnChange(func(_, _ cluster.Member) { n.feedHosts() })
	r.engine.Start()
	if err := n.cl.SetIdentity(id.Cluster, id.Shards, id.Store); err != nil {
		n.log.Warn("announcing the cluster identity", "err", err)
	}
	n.feedHosts()
	n.awaitLeaders(r, 3*time.Second)
	n.hosting.Store(true)
	return nil
}

// awaitLeaders waits, up to limit, until every shard this node holds a
// replica of has a known leader: a node that starts alone serves its
// first requests instead of answering them unavailable.
func (n *Node) awaitLeaders(r *replication, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		led := true
		for _, st := range r.engine.Statuses() {
			if st.Leader == "" {
				led = false
				break
			}
		}
		if led {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LeaderChanged implements shard.Observer: the cluster's shard table, the
// host actor and the webhook backlog scan hear of it.
func (r *replication) LeaderChanged(st shard.Status) {
	r.n.cl.ShardChanged(st)
	if st.IsLeader {
		r.n.hooks.leads(st.Shard, st.Term)
	}
	if h := r.host.Load(); h != nil {
		h.LeaderChanged(st)
	}
}

// feedHosts tells the engine which hosts of this cluster replicas may be
// placed on.
func (n *Node) feedHosts() {
	r := n.repl.Load()
	if r == nil {
		return
	}
	cl, _ := n.cl.Identity()
	var hosts []shard.Host
	for _, m := range n.cl.View().Members() {
		if !m.IsHost() || m.State == cluster.StateLeft || m.Meta.Cluster != cl || m.Meta.Store == 0 || !m.Compatible() {
			continue
		}
		h := shard.Host{Node: m.Name, Store: m.Meta.Store, Alive: m.State != cluster.StateDead, Draining: m.Meta.Draining,
			DiskFull: m.Meta.DiskFull, DiskSlow: m.Meta.DiskSlow}
		if !h.Alive {
			h.DeadSince = m.Since
		}
		hosts = append(hosts, h)
	}
	r.engine.SetHosts(hosts)
}

// watchIdentity adopts the identity of the cluster this node meets, when
// it has none yet: a joining host then starts its (empty) replication, a
// gateway starts routing by shard. A new host that meets only new hosts
// forms the cluster when it is the one to (see above).
func (n *Node) watchIdentity() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var first time.Time // since when this host would form
	for {
		done, err := n.tryAdopt()
		if !done && err == nil && n.store != nil {
			switch {
			case !n.firstNewHost():
				first = time.Time{}
			case first.IsZero():
				first = time.Now()
			case time.Since(first) > n.formingSettle():
				n.log.Info("no member of a cluster met; forming one with the new hosts met", "hosts", n.newHosts())
				done, err = true, n.form()
			}
		}
		if done || err != nil {
			if err != nil {
				n.fail(err)
			}
			return
		}
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
}

// formingSettle is how long a new host waits, having met only new hosts,
// before it forms the cluster: time for gossip to show it every host
// started with it.
func (n *Node) formingSettle() time.Duration {
	if n.cfg.Detection == cluster.DetectionFast {
		return 1500 * time.Millisecond
	}
	return 5 * time.Second
}

// newHosts returns the alive hosts (this one included) that belong to no
// cluster yet, by name.
func (n *Node) newHosts() []string {
	var out []string
	for _, m := range n.cl.View().Members() {
		if m.IsHost() && m.State == cluster.StateAlive && m.Meta.Cluster == "" && m.Compatible() {
			out = append(out, m.Name)
		}
	}
	return out
}

// firstNewHost reports whether this host is the one to form the cluster
// of the new hosts it has met: it has reached a member, none it sees
// belongs to a cluster, and its name is the smallest of theirs.
func (n *Node) firstNewHost() bool {
	if !n.cl.Joined() {
		return false
	}
	for _, m := range n.cl.View().Members() {
		if m.Meta.Cluster != "" && m.State == cluster.StateAlive {
			return false
		}
	}
	hosts := n.newHosts()
	return len(hosts) > 0 && hosts[0] == n.cl.Name()
}

// tryAdopt adopts the identity members carry, if any.
func (n *Node) tryAdopt() (bool, error) {
	if cl, _ := n.cl.Identity(); cl != "" {
		return true, nil
	}
	cl, shards, ok := n.cl.KnownIdentity()
	if !ok {
		return false, nil
	}
	if n.cfg.Shards != 0 && n.cfg.Shards != shards {
		return true, fmt.Errorf("the cluster this node joined has %d shards; --shards %d does not match (omit --shards, or give %d)", shards, n.cfg.Shards, shards)
	}
	if n.store == nil {
		return true, n.cl.SetIdentity(cl, shards, 0)
	}
	if held, err := n.localShards(); err != nil || held > 0 {
		if err == nil {
			err = fmt.Errorf("this data directory holds %d shards of a cluster whose forming was interrupted, and this node met another cluster; start it with an empty --data directory to join that one", held)
		}
		return true, err
	}
	if err := n.store.SetCluster(cl, shards); err != nil {
		return true, err
	}
	id, err := n.store.Identity()
	if err != nil {
		return true, err
	}
	n.log.Info("joined the cluster", "cluster", cl, "shards", shards)
	return true, n.startReplication(id)
}
