package shard

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
)

func TestSingleNodeProposesReadsAndRestarts(t *testing.T) {
	h, a := singleNode(t, 4)
	for s := range uint32(4) {
		if h.leaderOf(s) != a {
			t.Fatalf("shard %d has no leader", s)
		}
	}
	r := h.propose(a, 1, "x=1")
	h.settle()
	h.mustDone("propose", r)
	if got := h.get(a, 1, "x"); got != "1" {
		t.Fatalf("x = %q", got)
	}
	term := a.e.groups[1].term
	read, lead := &result{}, &result{}
	a.e.ReadIndex(NewStream(1, term, ""), read.set)
	a.e.Lead(1, "", lead.setStream)
	h.settle()
	h.mustDone("read", read)
	h.mustDone("lead", lead)
	if lead.term != term {
		t.Fatalf("lead term %d, want %d", lead.term, term)
	}
	// A proposal under another term, or a command the state machine
	// refuses, changes nothing.
	stale := &result{}
	a.e.Propose(NewStream(1, term-1, ""), []byte("y=1"), stale.set)
	bad := h.propose(a, 1, "nonsense")
	h.settle()
	if !errors.Is(stale.err, ErrNotLeader) || !errors.Is(bad.err, ErrRejected) {
		t.Fatalf("stale: %v, bad: %v", stale.err, bad.err)
	}
	if h.get(a, 1, "y") != "" {
		t.Fatal("a stale proposal applied")
	}
	// A command over the bound is refused at once, and so is every later
	// one of its stream: nothing of a stream lands after a hole.
	s := NewStream(1, term, "")
	big, after := &result{}, &result{}
	a.e.Propose(s, make([]byte, a.e.cfg.MaxCommandBytes+1), big.set)
	a.e.Propose(s, []byte("after=1"), after.set)
	h.settle()
	if !errors.Is(big.err, ErrTooLarge) || !errors.Is(after.err, ErrLost) || h.get(a, 1, "after") != "" {
		t.Fatalf("oversized command: %v, the next one: %v", big.err, after.err)
	}
	// A proposal the store's disk guard refuses fails at once, and breaks
	// its stream too.
	full := errors.New("disk full")
	a.e.cfg.Admit = func(int64) error { return full }
	s = NewStream(1, term, "")
	refused, later := &result{}, &result{}
	a.e.Propose(s, []byte("z=1"), refused.set)
	a.e.cfg.Admit = nil
	a.e.Propose(s, []byte("z=2"), later.set)
	h.settle()
	if !errors.Is(refused.err, full) || !errors.Is(later.err, ErrLost) || h.get(a, 1, "z") != "" {
		t.Fatalf("refused by the disk guard: %v, the next one: %v", refused.err, later.err)
	}

	fs := h.crash("a")
	a = h.start("a", fs)
	h.settle()
	if h.leaderOf(1) != a {
		t.Fatal("a single voter did not lead again at once after a restart")
	}
	if got := h.get(a, 1, "x"); got != "1" {
		t.Fatalf("x after restart = %q", got)
	}
	r = h.propose(a, 1, "x=2")
	h.settle()
	h.mustDone("propose after restart", r)
}

// threeNodes returns a harness where a leads shard 0 with b and c as
// voters.
func threeNodes(t *testing.T, cfg func(*Config)) *harness {
	h := newHarness(t)
	h.cfg = cfg
	for _, n := range []string{"a", "b", "c"} {
		h.start(n, vfs.NewMem())
	}
	if err := h.node("a").e.Bootstrap(1); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.grow("a", 0, "b", "c")
	return h
}

func TestGrowByLearnersAndSnapshots(t *testing.T) {
	h := threeNodes(t, nil)
	a := h.node("a")
	r := h.propose(a, 0, "k=v")
	h.settle()
	h.mustDone("propose", r)
	for _, n := range h.live() {
		if got := h.get(n, 0, "k"); got != "v" {
			t.Fatalf("%s: k = %q", n.name, got)
		}
		if vs := h.voters(n, 0); len(vs) != 3 {
			t.Fatalf("%s: voters %v", n.name, vs)
		}
	}
	h.sameState(0)
	if got := h.node("b").e.Stats().SnapshotsApplied; got == 0 {
		t.Fatal("the learner was not initialized by a snapshot")
	}
	st, _ := a.e.Status(0)
	if !st.IsLeader || st.Leader != "a" || len(st.Replicas) != 3 {
		t.Fatalf("status %+v", st)
	}
	for _, n := range []string{"b", "c"} {
		st, _ := h.node(n).e.Status(0)
		if st.Leader != "a" || st.IsLeader {
			t.Fatalf("%s sees leader %q", n, st.Leader)
		}
	}
}

func TestIsolatedLeaderStepsDownAndIsReplaced(t *testing.T) {
	h := threeNodes(t, nil)
	a := h.node("a")
	h.net.Isolate("a")
	lost := h.propose(a, 0, "y=1")
	read := &result{}
	a.e.ReadIndex(NewStream(0, a.e.groups[0].term, ""), read.set)
	h.tick(40) // CheckQuorum deposes a; b or c wins an election
	if !errors.Is(lost.err, ErrLost) || !errors.Is(read.err, ErrLost) {
		t.Fatalf("isolated leader's proposal: %v, read: %v", lost.err, read.err)
	}
	nl := h.awaitLeader(0)
	if nl == a {
		t.Fatal("the isolated node leads again")
	}
	r := h.propose(nl, 0, "z=1")
	h.settle()
	h.mustDone("propose on the new leader", r)
	h.net.HealAll()
	h.tick(5)
	h.settle()
	if h.leaderOf(0) != nl {
		t.Fatal("the healed node took leadership back")
	}
	for _, n := range h.live() {
		if h.get(n, 0, "y") != "" || h.get(n, 0, "z") != "1" {
			t.Fatalf("%s: y=%q z=%q", n.name, h.get(n, 0, "y"), h.get(n, 0, "z"))
		}
	}
	h.sameState(0)
}

func TestLossyNetworkLosesNothingAcknowledged(t *testing.T) {
	h := threeNodes(t, nil)
	h.net.SetDropRate(0.3)
	h.net.SetDuplicateRate(0.1)
	acked := map[string]bool{}
	pending := map[string]*result{}
	for i := range 40 {
		k := fmt.Sprintf("k%02d", i)
		if l := h.leaderOf(0); l != nil {
			pending[k] = h.propose(l, 0, k+"=1")
		}
		h.tick(1)
	}
	for range 400 {
		if len(pending) == 0 {
			break
		}
		for k, r := range pending {
			switch {
			case !r.done:
				continue
			case r.err == nil:
				acked[k] = true
				delete(pending, k)
			default: // retry, as a client would
				if l := h.leaderOf(0); l != nil {
					pending[k] = h.propose(l, 0, k+"=1")
				}
			}
		}
		h.tick(1)
	}
	if len(pending) != 0 {
		t.Fatalf("%d proposals never completed", len(pending))
	}
	h.net.SetDropRate(0)
	h.net.SetDuplicateRate(0)
	h.tick(5)
	h.settle()
	for _, n := range h.live() {
		for k := range acked {
			if h.get(n, 0, k) != "1" {
				t.Fatalf("%s: acknowledged %s missing", n.name, k)
			}
		}
	}
	h.sameState(0)
}

// TestEntryOfAnotherTermAppliesNowhere writes an entry stamped with an
// older term into the leader's log directly, as a node that lost and
// regained leadership between evaluating and proposing would: every
// replica skips it.
func TestEntryOfAnotherTermAppliesNowhere(t *testing.T) {
	h := threeNodes(t, nil)
	a := h.node("a")
	g := a.e.groups[0]
	h.do(a, func() {
		data := encodeEntry(header{proposer: 1, id: 1, term: g.term - 1}, []byte("old=1"))
		if err := g.rn.Propose(data); err != nil {
			t.Error(err)
		}
	})
	ok := h.propose(a, 0, "new=1")
	h.settle()
	h.mustDone("propose", ok)
	for _, n := range h.live() {
		if h.get(n, 0, "old") != "" || h.get(n, 0, "new") != "1" {
			t.Fatalf("%s: old=%q new=%q", n.name, h.get(n, 0, "old"), h.get(n, 0, "new"))
		}
	}
}

// TestLeaderChangeWithProposalsInFlight: entries the old leader never
// replicated fail and vanish; an entry it replicated to a majority but
// could not see commit fails for its proposer (ambiguously) yet commits
// under the new leader.
func TestLeaderChangeWithProposalsInFlight(t *testing.T) {
	h := threeNodes(t, nil)
	a, b := h.node("a"), h.node("b")
	// q reaches b only, and b's acknowledgement never reaches a.
	h.net.Cut("a", "c")
	h.net.Cut("b", "a")
	h.net.Cut("c", "a")
	q := h.propose(a, 0, "q=1")
	h.step()
	h.step()
	// p never leaves a.
	h.net.Cut("a", "b")
	p := h.propose(a, 0, "p=1")
	h.step()
	// a's CheckQuorum deposes it; only b can win (c lacks q, a is cut off).
	h.tick(40)
	if !errors.Is(q.err, ErrLost) || !errors.Is(p.err, ErrLost) {
		t.Fatalf("in-flight proposals: q %v, p %v", q.err, p.err)
	}
	h.awaitLeader(0)
	h.net.HealAll()
	h.tick(5)
	h.settle()
	if h.leaderOf(0) != b {
		t.Fatal("b does not lead")
	}
	for _, n := range h.live() {
		if h.get(n, 0, "q") != "1" || h.get(n, 0, "p") != "" {
			t.Fatalf("%s: q=%q p=%q", n.name, h.get(n, 0, "q"), h.get(n, 0, "p"))
		}
	}
	h.sameState(0)
}

func TestLaggingReplicaCatchesUpBySnapshotAfterTruncation(t *testing.T) {
	h := threeNodes(t, func(c *Config) { c.KeepEntries = 5 })
	a, c := h.node("a"), h.node("c")
	h.net.Isolate("c")
	for i := range 40 {
		r := h.propose(a, 0, fmt.Sprintf("k%02d=%d", i, i))
		h.settle()
		h.mustDone("propose", r)
	}
	if first, _ := a.e.groups[0].st.FirstIndex(); first <= c.e.groups[0].st.Applied().Index {
		t.Fatalf("the leader's log was not truncated past c (first %d)", first)
	}
	before := c.e.Stats().SnapshotsApplied
	h.net.HealAll()
	h.tick(3)
	h.settle()
	if c.e.Stats().SnapshotsApplied == before {
		t.Fatal("c caught up without a snapshot")
	}
	if h.get(c, 0, "k39") != "39" {
		t.Fatal("c did not catch up")
	}
	h.sameState(0)
}

// TestWipedReplicaIsRebuiltBySnapshot: c loses its disk and comes back
// with a new store; its old replica is replaced (add a learner on the new
// store, then swap it in and the old one out in one joint change) and
// filled by a snapshot.
func TestWipedReplicaIsRebuiltBySnapshot(t *testing.T) {
	h := threeNodes(t, nil)
	a := h.node("a")
	for i := range 10 {
		h.propose(a, 0, fmt.Sprintf("k%d=%d", i, i))
	}
	h.settle()
	oldID := a.e.groups[0].st.Applied().Replicas[2].ID
	h.crash("c")
	c := h.start("c", vfs.NewMem())
	h.tick(3)
	h.settle()
	if c.e.groups[0] != nil {
		t.Fatal("the wiped node revived its old replica")
	}
	if c.e.Stats().Dropped == 0 {
		t.Fatal("messages to the old store were not dropped")
	}
	var newID uint64
	h.do(a, func() {
		var err error
		if newID, err = a.e.addLearner(a.e.groups[0], "c", c.store); err != nil {
			t.Error(err)
		}
	})
	h.settle()
	h.tick(3)
	h.settle()
	h.do(a, func() {
		err := a.e.proposeConfChange(a.e.groups[0], []*pb.ConfChangeSingle{
			{Type: pb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: new(newID)},
			{Type: pb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: new(oldID)},
		}, nil)
		if err != nil {
			t.Error(err)
		}
	})
	h.settle()
	h.tick(3)
	h.settle()
	for _, n := range h.live() {
		vs := h.voters(n, 0)
		if len(vs) != 3 || !slices.Contains(vs, newID) || slices.Contains(vs, oldID) {
			t.Fatalf("%s: voters %v", n.name, vs)
		}
	}
	if h.get(c, 0, "k9") != "9" {
		t.Fatal("c was not rebuilt")
	}
	h.sameState(0)
	// The new replica serves: with a down, b and c still commit.
	h.crash("a")
	h.tick(40)
	l := h.awaitLeader(0)
	r := h.propose(l, 0, "after=1")
	h.settle()
	h.mustDone("propose without a", r)
}

func TestRemovedReplicaDeletesItsData(t *testing.T) {
	h := threeNodes(t, nil)
	a, c := h.node("a"), h.node("c")
	h.propose(a, 0, "k=v")
	h.settle()
	id := c.e.groups[0].id
	h.do(a, func() {
		err := a.e.proposeConfChange(a.e.groups[0], []*pb.ConfChangeSingle{
			{Type: pb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: new(id)}}, nil)
		if err != nil {
			t.Error(err)
		}
	})
	h.settle()
	h.tick(3)
	h.settle()
	if c.e.groups[0] != nil || h.get(c, 0, "k") != "" {
		t.Fatal("the removed replica kept its data")
	}
	if _, ok := c.e.Status(0); ok {
		t.Fatal("the removed replica still has a status")
	}
	r := h.propose(a, 0, "k2=v")
	h.settle()
	h.mustDone("two voters commit", r)
}

func TestWholeClusterRestartKeepsCommittedEntries(t *testing.T) {
	h := threeNodes(t, nil)
	a := h.node("a")
	for i := range 10 {
		h.propose(a, 0, fmt.Sprintf("k%d=%d", i, i))
	}
	h.settle()
	fss := map[string]vfs.FS{}
	for _, n := range []string{"a", "b", "c"} {
		fss[n] = h.crash(n)
	}
	for _, n := range []string{"a", "b", "c"} {
		h.start(n, fss[n])
	}
	h.tick(40)
	l := h.awaitLeader(0)
	r := h.propose(l, 0, "after=1")
	h.settle()
	h.mustDone("propose after the restart", r)
	for _, n := range h.live() {
		if h.get(n, 0, "k9") != "9" || h.get(n, 0, "after") != "1" {
			t.Fatalf("%s lost data", n.name)
		}
	}
	h.sameState(0)
}

// TestPowerCutsLoseNothingAcknowledged cuts the power of random nodes
// (the leader too) at random points while proposals flow: a restarted
// node has only what it synced. Every acknowledged entry must survive on
// every replica, and no committed entry may change (checked every step).
func TestPowerCutsLoseNothingAcknowledged(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			h := newHarness(t)
			for _, n := range []string{"a", "b", "c"} {
				h.start(n, vfs.NewCrashableMem())
			}
			if err := h.node("a").e.Bootstrap(1); err != nil {
				t.Fatal(err)
			}
			h.settle()
			h.grow("a", 0, "b", "c")
			acked := map[string]bool{}
			var inflight []struct {
				k string
				r *result
			}
			for i := range 60 {
				if l := h.leaderOf(0); l != nil {
					k := fmt.Sprintf("k%02d", i)
					inflight = append(inflight, struct {
						k string
						r *result
					}{k, h.propose(l, 0, k+"=1")})
				}
				h.step()
				if rng.IntN(8) == 0 {
					victim := []string{"a", "b", "c"}[rng.IntN(3)]
					h.crashClone(victim, rng.IntN(101), rng)
				}
				h.tick(1 + rng.IntN(3))
				for _, f := range inflight {
					if f.r.done && f.r.err == nil {
						acked[f.k] = true
					}
				}
			}
			h.tick(60)
			h.settle()
			if len(acked) == 0 {
				t.Fatal("nothing was acknowledged")
			}
			for _, n := range h.live() {
				for k := range acked {
					if h.get(n, 0, k) != "1" {
						t.Fatalf("%s: acknowledged %s lost", n.name, k)
					}
				}
			}
			h.sameState(0)
		})
	}
}
