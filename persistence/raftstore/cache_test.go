package raftstore

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestEntryCacheAgreesWithTheStore appends (overwriting tails), truncates,
// releases cached entries and reads at random: what the storage serves from its cache always
// equals what a reload serves from Pebble alone.
func TestEntryCacheAgreesWithTheStore(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	db := memDB(t)
	b := db.NewBatch()
	s, err := Bootstrap(db, b, testShard, 1, []ReplicaDesc{{1, "a", 1}})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	term := InitialTerm
	for step := range 400 {
		last, _ := s.LastIndex()
		first, _ := s.FirstIndex()
		b := db.NewBatch()
		switch op := rng.IntN(10); {
		case op < 7:
			from := max(first, s.Applied().Index+1, last+1-uint64(rng.IntN(4)))
			if rng.IntN(5) == 0 {
				term++
			}
			n := 1 + rng.IntN(40)
			terms := make([]uint64, n)
			for i := range terms {
				terms[i] = term
			}
			if err := s.Append(b, ents(from, terms...)); err != nil {
				t.Fatal(err)
			}
		case op == 7:
			// Released entries are read from Pebble after all.
			s.ReleaseCache(s.Applied().Index - uint64(rng.IntN(3)))
		case last >= first:
			to := first + uint64(rng.IntN(int(last-first+1)))
			a := s.Applied().Clone()
			a.Index, a.Term = last, s.lastTerm
			if err := s.SetApplied(b, a); err != nil {
				t.Fatal(err)
			}
			if err := s.Truncate(b, to); err != nil {
				t.Fatal(err)
			}
		}
		commit(t, b)
		last, _ = s.LastIndex()
		first, _ = s.FirstIndex()
		if last < first {
			continue
		}
		lo := first + uint64(rng.IntN(int(last-first+1)))
		hi := lo + 1 + uint64(rng.IntN(int(last-lo+1)))
		maxSize := uint64(rng.IntN(3000))
		got, err := s.Entries(lo, hi, maxSize)
		if err != nil {
			t.Fatal(err)
		}
		want, err := reload(t, db).Entries(lo, hi, maxSize)
		if err != nil {
			t.Fatal(err)
		}
		wantEntries(t, got, want)
		for i := lo; i < hi; i++ {
			a, _ := s.Term(i)
			b, _ := reload(t, db).Term(i)
			if a != b {
				t.Fatalf("step %d: term of %d: %d cached, %d stored", step, i, a, b)
			}
		}
	}
}

// TestReleasedEntriesAreReadFromTheStore: entries released from the cache
// are served from Pebble; those after them still from the cache.
func TestReleasedEntriesAreReadFromTheStore(t *testing.T) {
	db := memDB(t)
	s := logStorage(t, db, 3, 3, 4, 4, 5, 5, 5)
	b := db.NewBatch()
	if err := s.Append(b, ents(9, 6, 6, 6)); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	if s.Cached() != 3 {
		t.Fatalf("cached %d, want 3", s.Cached())
	}
	applyTo(t, db, s, 10)
	s.ReleaseCache(10)
	if s.Cached() != 1 {
		t.Fatalf("cached %d after releasing up to 10, want 1", s.Cached())
	}
	want, err := reload(t, db).Entries(4, 12, math.MaxUint64)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Entries(4, 12, math.MaxUint64)
	if err != nil {
		t.Fatal(err)
	}
	wantEntries(t, got, want)
	for i, term := range map[uint64]uint64{9: 6, 10: 6, 11: 6, 8: 5} {
		if got, err := s.Term(i); err != nil || got != term {
			t.Fatalf("term of %d: %d, %v; want %d", i, got, err, term)
		}
	}
	s.ReleaseCache(20)
	if s.Cached() != 0 {
		t.Fatalf("cached %d after releasing past the last entry", s.Cached())
	}
	if got, err := s.Entries(11, 12, math.MaxUint64); err != nil || len(got) != 1 || got[0].GetTerm() != 6 {
		t.Fatalf("entry 11 after release: %v, %v", got, err)
	}
}
