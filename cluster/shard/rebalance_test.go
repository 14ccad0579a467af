package shard

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// hostsOf describes the named live nodes as hosts, with changes.
func (h *harness) setHosts(change func(*Host)) {
	var hosts []Host
	for _, n := range h.live() {
		host := Host{Node: n.name, Store: n.store, Alive: true}
		if change != nil {
			change(&host)
		}
		hosts = append(hosts, host)
	}
	for _, n := range h.live() {
		n.e.SetHosts(hosts)
	}
}

// placed runs until every shard's voters are exactly the named nodes'
// current stores and nothing is in flight, or fails.
func (h *harness) placed(shards uint32, want func(shard uint32) []string) {
	h.t.Helper()
	for range 300 {
		h.tick(5)
		if h.isPlaced(shards, want) {
			return
		}
	}
	for s := range shards {
		l := h.leaderOf(s)
		if l == nil {
			h.t.Errorf("shard %d: no leader", s)
			continue
		}
		h.t.Errorf("shard %d: led by %s, replicas %+v, want %v", s, l.name, l.e.groups[s].st.Applied().Replicas, want(s))
	}
	h.t.FailNow()
}

func (h *harness) isPlaced(shards uint32, want func(shard uint32) []string) bool {
	for s := range shards {
		l := h.leaderOf(s)
		if l == nil {
			return false
		}
		a := l.e.groups[s].st.Applied()
		var nodes []string
		for _, r := range a.Replicas {
			n := h.node(r.Node)
			if n == nil || n.e == nil || n.store != r.Store || slices.Contains(a.ConfState.GetLearners(), r.ID) {
				return false
			}
			nodes = append(nodes, r.Node)
		}
		slices.Sort(nodes)
		w := slices.Clone(want(s))
		slices.Sort(w)
		if !slices.Equal(nodes, w) || len(a.ConfState.GetVotersOutgoing()) > 0 {
			return false
		}
	}
	return true
}

func rankOf(nodes []string, shard uint32, n int) []string {
	r := Rank(nodes, fmt.Sprintf("shard/%d", shard))
	return r[:min(n, len(r))]
}

// TestRebalancerGrowsMovesAndDrains: shards formed on one node grow to
// three replicas as hosts join, with leaders spread; a fourth host takes
// the replicas rendezvous hashing gives it; a draining host hands over
// leadership and its replicas; a host dead past ReplaceDeadAfter is
// dropped.
func TestRebalancerGrowsMovesAndDrains(t *testing.T) {
	const shards = 6
	h := newHarness(t)
	h.cfg = func(c *Config) { c.ReplaceDeadAfter = time.Second }
	for _, n := range []string{"a", "b", "c"} {
		h.start(n, vfs.NewMem())
	}
	if err := h.node("a").e.Bootstrap(shards); err != nil {
		t.Fatal(err)
	}
	h.settle()
	// Data written while alone must reach every replica.
	for s := range uint32(shards) {
		r := h.propose(h.node("a"), s, fmt.Sprintf("k%d=v", s))
		h.settle()
		h.mustDone("propose", r)
	}
	h.setHosts(nil)
	all3 := func(uint32) []string { return []string{"a", "b", "c"} }
	h.placed(shards, all3)
	h.tick(300) // leadership moves to the preferred replicas
	leaders := map[string]int{}
	for s := range uint32(shards) {
		l := h.leaderOf(s)
		if want := rankOf([]string{"a", "b", "c"}, s, 1)[0]; l == nil || l.name != want {
			t.Fatalf("shard %d led by %v, want its preferred %s", s, l, want)
		}
		leaders[l.name]++
		h.sameState(s)
	}
	if len(leaders) < 2 {
		t.Fatalf("leaders not spread: %v", leaders)
	}

	h.start("d", vfs.NewMem())
	h.setHosts(nil)
	four := []string{"a", "b", "c", "d"}
	h.placed(shards, func(s uint32) []string { return rankOf(four, s, 3) })
	for s := range uint32(shards) {
		h.sameState(s)
		if l := h.leaderOf(s); h.get(l, s, fmt.Sprintf("k%d", s)) != "v" {
			t.Fatalf("shard %d lost its data moving", s)
		}
	}

	// a drains: it holds nothing once the others have taken over.
	h.setHosts(func(host *Host) { host.Draining = host.Node == "a" })
	h.placed(shards, func(uint32) []string { return []string{"b", "c", "d"} })
	if n := len(h.node("a").e.groups); n != 0 {
		t.Fatalf("the drained node still holds %d replicas", n)
	}

	// d dies for good: past ReplaceDeadAfter the shards keep b and c.
	h.crash("a")
	h.crash("d")
	dead := h.now
	for _, n := range h.live() {
		n.e.SetHosts([]Host{{Node: "b", Store: h.node("b").store, Alive: true}, {Node: "c", Store: h.node("c").store, Alive: true},
			{Node: "d", Store: h.node("d").store, DeadSince: dead}})
	}
	h.tick(200) // past ReplaceDeadAfter (and an election for d's shards)
	h.placed(shards, func(uint32) []string { return []string{"b", "c"} })
}

// TestReplicaRemovedWhileAwayRemovesItself: a replica removed from its
// shard while its node was down never applies its removal (the leader
// stops sending to it); back up, it learns from the leader's announced
// configuration, newer than its own, that it is not a member, and deletes
// itself.
func TestReplicaRemovedWhileAwayRemovesItself(t *testing.T) {
	h := threeNodes(t, nil)
	a := h.node("a")
	id := a.e.groups[0].st.Applied().Replicas[2].ID // c's
	fs := h.crash("c")
	h.do(a, func() {
		if err := a.e.proposeConfChange(a.e.groups[0], []*pb.ConfChangeSingle{removeNode(id)}, nil); err != nil {
			t.Error(err)
		}
	})
	h.settle()
	h.tick(3)
	h.settle()
	c := h.start("c", fs)
	membership := func(s uint32) (Membership, bool) {
		st, ok := a.e.Status(s)
		if !ok {
			return Membership{}, false
		}
		m := Membership{Term: st.Term, ConfIndex: st.ConfIndex}
		for _, r := range st.Replicas {
			m.Replicas = append(m.Replicas, r.ID)
		}
		return m, true
	}
	c.e.SetMembership(membership)
	h.tick(30)
	if c.e.groups[0] != nil || h.get(c, 0, "k") != "" {
		t.Fatal("the removed replica is still here")
	}
	if ts, _ := raftstore.Tombstone(c.db, 0); ts <= id {
		t.Fatalf("tombstone %d after removing replica %d", ts, id)
	}
}

// TestFullOrSlowDiskHandsLeadershipOver: the leader of a shard whose
// host's disk fills (or turns slow) hands its leadership to a caught-up
// voter elsewhere, keeps its replica, and does not get the leadership back
// (the preferred-replica rule skips such a host) until its disk has room
// (or speed) again.
func TestFullOrSlowDiskHandsLeadershipOver(t *testing.T) {
	for _, c := range []struct {
		name string
		mark func(*Host)
	}{
		{"full", func(h *Host) { h.DiskFull = true }},
		{"slow", func(h *Host) { h.DiskSlow = true }},
	} {
		t.Run(c.name, func(t *testing.T) { testUnfitHostHandsLeadershipOver(t, c.mark) })
	}
}

func testUnfitHostHandsLeadershipOver(t *testing.T, mark func(*Host)) {
	h := threeNodes(t, nil)
	h.setHosts(nil)
	pref := rankOf([]string{"a", "b", "c"}, 0, 1)[0]
	leads := func(name string) func() bool {
		return func() bool { l := h.leaderOf(0); return l != nil && l.name == name }
	}
	h.until(300, leads(pref), "shard 0 led by its preferred replica %s", pref)
	r := h.propose(h.leaderOf(0), 0, "before=1")
	h.settle()
	h.mustDone("propose before the disk fills", r)

	h.setHosts(func(host *Host) {
		if host.Node == pref {
			mark(host)
		}
	})
	h.until(300, func() bool { l := h.leaderOf(0); return l != nil && l.name != pref }, "leadership off the full host %s", pref)
	for i := range 300 { // well past the preferred-replica rule's delay
		h.tick(1)
		if l := h.leaderOf(0); l != nil && l.name == pref {
			t.Fatalf("tick %d: the full host %s leads shard 0 again", i, pref)
		}
	}
	l := h.awaitLeader(0)
	if n := len(l.e.groups[0].st.Applied().Replicas); n != 3 {
		t.Fatalf("the shard has %d replicas, want all 3 kept", n)
	}
	r = h.propose(l, 0, "after=1")
	h.settle()
	h.mustDone("propose on the new leader", r)

	h.setHosts(nil)
	h.until(300, leads(pref), "leadership back on %s once its disk has room", pref)
	h.sameState(0)
	if got := h.get(h.leaderOf(0), 0, "after"); got != "1" {
		t.Fatalf("after = %q on the returned leader", got)
	}
}

// TestDeadWantedHostDoesNotShrinkShards: a host that ranks among a
// shard's replicas but is dead (for less than ReplaceDeadAfter) and holds
// none cannot take one; the live voter it would replace stands in for it
// and is not removed, or the shard would run on two voters until the
// host is back or given up, and lose its majority to one more failure.
func TestDeadWantedHostDoesNotShrinkShards(t *testing.T) {
	const shards = 8
	h := newHarness(t)
	h.cfg = func(c *Config) { c.ReplaceDeadAfter = time.Hour }
	for _, n := range []string{"a", "b", "c"} {
		h.start(n, vfs.NewMem())
	}
	if err := h.node("a").e.Bootstrap(shards); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.setHosts(nil)
	all3 := func(uint32) []string { return []string{"a", "b", "c"} }
	h.placed(shards, all3)
	// d is known, and dead, before it got any replica: for the shards it
	// ranks in, one of a, b, c is no longer wanted.
	four := []string{"a", "b", "c", "d"}
	moved := 0
	for s := range uint32(shards) {
		if slices.Contains(rankOf(four, s, 3), "d") {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("d ranks in no shard: pick more shards")
	}
	for _, n := range h.live() {
		n.e.SetHosts([]Host{{Node: "a", Store: h.node("a").store, Alive: true}, {Node: "b", Store: h.node("b").store, Alive: true},
			{Node: "c", Store: h.node("c").store, Alive: true}, {Node: "d", Store: 99, DeadSince: h.now}})
	}
	h.tick(300)
	if !h.isPlaced(shards, all3) {
		for s := range uint32(shards) {
			if l := h.leaderOf(s); l != nil {
				t.Errorf("shard %d: replicas %+v", s, l.e.groups[s].st.Applied().Replicas)
			}
		}
		t.Fatalf("%d shards rank the dead d: their voters must stay a, b and c", moved)
	}
}

// TestFormedOnANodeNotWantedGrows: shards formed on one node grow onto
// the hosts rendezvous hashing picks when that node is not among them:
// with five hosts, the forming node is not wanted by about two shards in
// five, and it has no other voter to hand their leadership to before it
// adds one.
func TestFormedOnANodeNotWantedGrows(t *testing.T) {
	const shards = 10
	h := newHarness(t)
	five := []string{"a", "b", "c", "d", "e"}
	for _, n := range five {
		h.start(n, vfs.NewMem())
	}
	if err := h.node("a").e.Bootstrap(shards); err != nil {
		t.Fatal(err)
	}
	h.settle()
	unwanted := 0
	for s := range uint32(shards) {
		if !slices.Contains(rankOf(five, s, 3), "a") {
			unwanted++
		}
	}
	if unwanted == 0 {
		t.Fatal("a is wanted by every shard: pick more shards")
	}
	h.setHosts(nil)
	h.placed(shards, func(s uint32) []string { return rankOf(five, s, 3) })
}
