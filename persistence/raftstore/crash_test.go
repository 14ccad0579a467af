package raftstore

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
)

// The crash test drives a replica's storage as a follower's Ready loop
// would — appends that overwrite uncommitted tails, hard states, applied
// states, truncations — one batch per round, some rounds synced and some
// not, and clones the filesystem as a crash would leave it at a random
// round. The replica reloaded from the clone must be exactly the state
// after some round at or after the last synced one: nothing synced is
// lost, no stale tail survives an overwrite, and the hard state, log and
// applied state never disagree.

type crashState struct {
	log     map[uint64]uint64 // index → term
	commit  uint64
	term    uint64
	applied uint64
	trunc   TruncatedState
}

func (c crashState) clone() crashState {
	c.log = maps.Clone(c.log)
	return c
}

func (c crashState) equal(o crashState) bool {
	return maps.Equal(c.log, o.log) && c.commit == o.commit && c.term == o.term && c.applied == o.applied && c.trunc == o.trunc
}

func (c crashState) String() string {
	return fmt.Sprintf("log %d entries, trunc %v, commit %d, term %d, applied %d", len(c.log), c.trunc, c.commit, c.term, c.applied)
}

func TestCrashKeepsSyncedRaftState(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { crashRound(t, seed) })
	}
}

func crashRound(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0xc0ffee))
	mem := vfs.NewCrashableMem()
	db := openDB(t, mem)
	b := db.NewBatch()
	s, err := Bootstrap(db, b, testShard, 1, []ReplicaDesc{{1, "a", 1}})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	cur := crashState{log: map[uint64]uint64{}, commit: InitialIndex, term: InitialTerm, applied: InitialIndex,
		trunc: TruncatedState{Index: InitialIndex, Term: InitialTerm}}
	states := []crashState{cur.clone()}
	synced := 0
	rounds := 20 + rng.IntN(80)
	for round := 1; round <= rounds; round++ {
		b := db.NewBatch()
		last, _ := s.LastIndex()
		// Append from somewhere above the commit index, sometimes in a new
		// term, overwriting what was there.
		from := cur.commit + 1 + uint64(rng.IntN(int(last-cur.commit)+1))
		if rng.IntN(4) == 0 {
			cur.term++
		}
		n := 1 + rng.IntN(5)
		terms := make([]uint64, n)
		for i := range terms {
			terms[i] = cur.term
		}
		if err := s.Append(b, ents(from, terms...)); err != nil {
			t.Fatal(err)
		}
		for i := from; i <= last; i++ {
			delete(cur.log, i)
		}
		for i := range n {
			cur.log[from+uint64(i)] = cur.term
		}
		newLast := from + uint64(n) - 1
		cur.commit = min(newLast, cur.commit+uint64(rng.IntN(4)))
		if err := s.SetHardState(b, &pb.HardState{Term: new(cur.term), Commit: new(cur.commit)}); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(2) == 0 && cur.applied < cur.commit {
			cur.applied = cur.commit
			a := s.Applied().Clone()
			a.Index, a.Term = cur.applied, cur.log[cur.applied]
			if err := s.SetApplied(b, a); err != nil {
				t.Fatal(err)
			}
		}
		opts := pebble.NoSync
		if rng.IntN(3) == 0 {
			opts = pebble.Sync
		}
		if err := b.Commit(opts); err != nil {
			t.Fatal(err)
		}
		b.Close()
		// Truncation reads the log, so it follows the batch that wrote it,
		// as in the Ready loop (it truncates after applying).
		if rng.IntN(5) == 0 && cur.applied > cur.trunc.Index {
			states = append(states, cur.clone())
			to := cur.trunc.Index + 1 + uint64(rng.IntN(int(cur.applied-cur.trunc.Index)))
			b := db.NewBatch()
			if err := s.Truncate(b, to); err != nil {
				t.Fatal(err)
			}
			cur.trunc = TruncatedState{Index: to, Term: cur.log[to]}
			for i := range cur.log {
				if i <= to {
					delete(cur.log, i)
				}
			}
			if err := b.Commit(opts); err != nil {
				t.Fatal(err)
			}
			b.Close()
		}
		states = append(states, cur.clone())
		if opts == pebble.Sync {
			synced = len(states) - 1
		}
	}
	clone := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, clone)
	defer db.Close()
	got := recovered(t, db)
	for k := synced; k < len(states); k++ {
		if got.equal(states[k]) {
			return
		}
	}
	t.Fatalf("recovered %v; the last synced state %d was %v, the last round %v", got, synced, states[synced], states[len(states)-1])
}

func recovered(t *testing.T, db *pebble.DB) crashState {
	t.Helper()
	s, err := Load(db, testShard)
	if err != nil {
		t.Fatal(err)
	}
	c := crashState{log: map[uint64]uint64{}, commit: s.HardState().GetCommit(), term: s.HardState().GetTerm(),
		applied: s.Applied().Index, trunc: s.Truncated()}
	last, _ := s.LastIndex()
	first, _ := s.FirstIndex()
	if last >= first {
		es, err := s.Entries(first, last+1, 1<<62)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			c.log[e.GetIndex()] = e.GetTerm()
		}
	}
	if n := countLog(t, db); n != len(c.log) {
		t.Fatalf("%d log keys stored, %d reachable: a stale entry survived", n, len(c.log))
	}
	return c
}
