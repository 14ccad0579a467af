package raftstore

import (
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The cases of go.etcd.io/raft's storage_test.go, on our Pebble storage.
// Their MemoryStorage holds a dummy entry at the truncation point: index(3)
// .terms(3, 4, 5) is a log truncated at 3 (term 3) holding entries 4 and 5.

const testShard = 7

func openDB(t testing.TB, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func memDB(t testing.TB) *pebble.DB {
	t.Helper()
	db := openDB(t, vfs.NewMem())
	t.Cleanup(func() { db.Close() })
	return db
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

var quietRaft = &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}

// ents returns entries at consecutive indexes from first with the terms.
func ents(first uint64, terms ...uint64) []*pb.Entry {
	out := make([]*pb.Entry, len(terms))
	for i, term := range terms {
		out[i] = &pb.Entry{Index: new(first + uint64(i)), Term: new(term), Data: []byte{byte(i)}}
	}
	return out
}

// logStorage returns a replica whose log is truncated at first (with its
// term) and holds the other terms' entries after it, applied up to the
// truncation point. It is reloaded from the database, so the
// cases check what was persisted.
func logStorage(t *testing.T, db *pebble.DB, first uint64, terms ...uint64) *Storage {
	t.Helper()
	b := db.NewBatch()
	s, err := Create(db, b, testShard, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.trunc = TruncatedState{Index: first, Term: terms[0]}
	s.last, s.lastTerm = first, terms[0]
	if err := b.Set(TruncatedStateKey(testShard), s.trunc.encode(), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(b, ents(first+1, terms[1:]...)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetApplied(b, AppliedState{Index: first, Term: terms[0], ConfState: &pb.ConfState{Voters: []uint64{1}}}); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	return reload(t, db)
}

// applyTo records the entries up to index as applied.
func applyTo(t *testing.T, db *pebble.DB, s *Storage, index uint64) {
	t.Helper()
	term, err := s.Term(index)
	if err != nil {
		t.Fatal(err)
	}
	a := s.Applied().Clone()
	a.Index, a.Term = index, term
	b := db.NewBatch()
	if err := s.SetApplied(b, a); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
}

func commit(t testing.TB, b *pebble.Batch) {
	t.Helper()
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
}

func reload(t testing.TB, db *pebble.DB) *Storage {
	t.Helper()
	s, err := Load(db, testShard)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantEntries(t *testing.T, got, want []*pb.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("entry %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestStorageTerm(t *testing.T) {
	for _, tt := range []struct {
		i     uint64
		err   error
		wterm uint64
	}{
		{2, raft.ErrCompacted, 0},
		{3, nil, 3},
		{4, nil, 4},
		{5, nil, 5},
		{6, raft.ErrUnavailable, 0},
	} {
		s := logStorage(t, memDB(t), 3, 3, 4, 5)
		term, err := s.Term(tt.i)
		if err != tt.err || term != tt.wterm { // raft compares with ==
			t.Errorf("Term(%d) = %d, %v; want %d, %v", tt.i, term, err, tt.wterm, tt.err)
		}
	}
}

func TestStorageEntries(t *testing.T) {
	all := ents(4, 4, 5, 6)
	size := func(es ...*pb.Entry) uint64 {
		n := 0
		for _, e := range es {
			n += proto.Size(e)
		}
		return uint64(n)
	}
	for _, tt := range []struct {
		lo, hi, maxSize uint64
		err             error
		want            []*pb.Entry
	}{
		{2, 6, math.MaxUint64, raft.ErrCompacted, nil},
		{3, 4, math.MaxUint64, raft.ErrCompacted, nil},
		{4, 5, math.MaxUint64, nil, all[:1]},
		{4, 6, math.MaxUint64, nil, all[:2]},
		{4, 7, math.MaxUint64, nil, all},
		// even if maxSize is zero, the first entry is returned
		{4, 7, 0, nil, all[:1]},
		{4, 7, size(all[0], all[1]), nil, all[:2]},
		{4, 7, size(all[0], all[1]) + size(all[2])/2, nil, all[:2]},
		{4, 7, size(all...) - 1, nil, all[:2]},
		{4, 7, size(all...), nil, all},
		// past the end
		{4, 8, math.MaxUint64, raft.ErrUnavailable, nil},
	} {
		s := logStorage(t, memDB(t), 3, 3, 4, 5, 6)
		got, err := s.Entries(tt.lo, tt.hi, tt.maxSize)
		if err != tt.err {
			t.Fatalf("Entries(%d, %d, %d): error %v, want %v", tt.lo, tt.hi, tt.maxSize, err, tt.err)
		}
		wantEntries(t, got, tt.want)
		// The caller owns the slice: appending to it changes nothing stored.
		if len(got) > 0 {
			_ = append(got, &pb.Entry{})
			again, _ := s.Entries(tt.lo, tt.hi, tt.maxSize)
			wantEntries(t, again, tt.want)
		}
	}
}

func TestStorageLastIndex(t *testing.T) {
	db := memDB(t)
	s := logStorage(t, db, 3, 3, 4, 5)
	if last, _ := s.LastIndex(); last != 5 {
		t.Fatalf("last index %d, want 5", last)
	}
	b := db.NewBatch()
	if err := s.Append(b, ents(6, 5)); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	for _, s := range []*Storage{s, reload(t, db)} {
		if last, _ := s.LastIndex(); last != 6 {
			t.Fatalf("last index %d, want 6", last)
		}
	}
}

func TestStorageFirstIndex(t *testing.T) {
	db := memDB(t)
	s := logStorage(t, db, 3, 3, 4, 5)
	applyTo(t, db, s, 5)
	if first, _ := s.FirstIndex(); first != 4 {
		t.Fatalf("first index %d, want 4", first)
	}
	b := db.NewBatch()
	if err := s.Truncate(b, 4); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	for _, s := range []*Storage{s, reload(t, db)} {
		if first, _ := s.FirstIndex(); first != 5 {
			t.Fatalf("first index %d, want 5", first)
		}
	}
}

func TestStorageCompact(t *testing.T) {
	for _, tt := range []struct {
		i           uint64
		err         error
		index, term uint64
		entries     int
	}{
		{2, raft.ErrCompacted, 3, 3, 2},
		{3, raft.ErrCompacted, 3, 3, 2},
		{4, nil, 4, 4, 1},
		{5, nil, 5, 5, 0},
	} {
		db := memDB(t)
		s := logStorage(t, db, 3, 3, 4, 5)
		applyTo(t, db, s, 5)
		b := db.NewBatch()
		if err := s.Truncate(b, tt.i); err != tt.err {
			t.Fatalf("Truncate(%d): %v, want %v", tt.i, err, tt.err)
		}
		commit(t, b)
		s = reload(t, db)
		if tr := s.Truncated(); tr.Index != tt.index || tr.Term != tt.term {
			t.Fatalf("Truncate(%d): truncated at %d/%d, want %d/%d", tt.i, tr.Index, tr.Term, tt.index, tt.term)
		}
		if n := countLog(t, db); n != tt.entries || s.LogSize() != uint64(tt.entries) {
			t.Fatalf("Truncate(%d): %d entries stored, size %d; want %d", tt.i, n, s.LogSize(), tt.entries)
		}
		if term, err := s.Term(tt.index); err != nil || term != tt.term {
			t.Fatalf("term of the truncation point: %d, %v", term, err)
		}
	}
}

func TestStorageTruncateRefusesUnapplied(t *testing.T) {
	db := memDB(t)
	s := logStorage(t, db, 3, 3, 4, 5)
	applyTo(t, db, s, 4)
	b := db.NewBatch()
	defer b.Close()
	if err := s.Truncate(b, 5); err == nil {
		t.Fatal("truncated an entry not applied")
	}
}

func countLog(t *testing.T, db *pebble.DB) int {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: LogKey(testShard, 0), UpperBound: logUpper(testShard)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

// TestStorageSnapshot is CreateSnapshot's case: the snapshot raft gets is
// the applied index, its term and the configuration applied with it.
func TestStorageSnapshot(t *testing.T) {
	cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
	for _, i := range []uint64{4, 5} {
		db := memDB(t)
		s := logStorage(t, db, 3, 3, 4, 5)
		b := db.NewBatch()
		if err := s.SetApplied(b, AppliedState{Index: i, Term: i, ConfState: cs}); err != nil {
			t.Fatal(err)
		}
		commit(t, b)
		s = reload(t, db)
		snap, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		want := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(i), Term: new(i), ConfState: cs}}
		if !proto.Equal(snap, want) {
			t.Fatalf("snapshot %v, want %v", snap, want)
		}
		_, gotCS, _ := s.InitialState()
		if !proto.Equal(gotCS, cs) {
			t.Fatalf("initial conf state %v, want %v", gotCS, cs)
		}
	}
	// An uninitialized replica, or a node busy sending, has none to give.
	db := memDB(t)
	b := db.NewBatch()
	s, _ := Create(db, b, testShard, 9)
	commit(t, b)
	if _, err := s.Snapshot(); err != raft.ErrSnapshotTemporarilyUnavailable {
		t.Fatalf("uninitialized: %v", err)
	}
	s = logStorage(t, memDB(t), 3, 3, 4, 5)
	s.SnapshotReady = func() bool { return false }
	if _, err := s.Snapshot(); err != raft.ErrSnapshotTemporarilyUnavailable {
		t.Fatalf("busy: %v", err)
	}
}

func TestStorageAppend(t *testing.T) {
	for _, tt := range []struct {
		entries []*pb.Entry
		want    []*pb.Entry // the log after the truncation point
	}{
		{ents(1, 1, 2), ents(4, 4, 5)},
		{ents(3, 3, 4, 5), ents(4, 4, 5)},
		{ents(3, 3, 6, 6), ents(4, 6, 6)},
		{ents(3, 3, 4, 5, 5), ents(4, 4, 5, 5)},
		// truncate incoming entries, truncate the existing entries and append
		{ents(2, 3, 3, 5), ents(4, 5)},
		// truncate the existing entries and append
		{ents(4, 5), ents(4, 5)},
		// direct append
		{ents(6, 5), ents(4, 4, 5, 5)},
	} {
		db := memDB(t)
		s := logStorage(t, db, 3, 3, 4, 5)
		// The stored entries carry data by position; compare terms and
		// indexes, as the library's cases do.
		b := db.NewBatch()
		if err := s.Append(b, tt.entries); err != nil {
			t.Fatal(err)
		}
		commit(t, b)
		for _, s := range []*Storage{s, reload(t, db)} {
			last, _ := s.LastIndex()
			got, err := s.Entries(4, last+1, math.MaxUint64)
			if err != nil {
				t.Fatal(err)
			}
			if !sameIDs(got, tt.want) {
				t.Fatalf("append %v: log %v, want %v", ids(tt.entries), ids(got), ids(tt.want))
			}
		}
		if n := countLog(t, db); n != len(tt.want) {
			t.Fatalf("append %v: %d entries stored, want %d (a stale tail survived)", ids(tt.entries), n, len(tt.want))
		}
	}
	// A gap is refused.
	db := memDB(t)
	s := logStorage(t, db, 3, 3, 4, 5)
	b := db.NewBatch()
	defer b.Close()
	if err := s.Append(b, ents(7, 5)); err == nil {
		t.Fatal("append after a gap accepted")
	}
}

type entryID struct{ index, term uint64 }

func ids(es []*pb.Entry) []entryID {
	out := make([]entryID, len(es))
	for i, e := range es {
		out[i] = entryID{e.GetIndex(), e.GetTerm()}
	}
	return out
}

func sameIDs(a, b []*pb.Entry) bool { return slices.Equal(ids(a), ids(b)) }

func TestStorageBootstrap(t *testing.T) {
	db := memDB(t)
	b := db.NewBatch()
	reps := []ReplicaDesc{{ID: 1, Node: "n1", Store: 11}}
	if _, err := Bootstrap(db, b, testShard, 1, reps); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	s := reload(t, db)
	hs, cs, _ := s.InitialState()
	if hs.GetTerm() != InitialTerm || hs.GetCommit() != InitialIndex || !slices.Equal(cs.GetVoters(), []uint64{1}) {
		t.Fatalf("initial state %v %v", hs, cs)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != InitialIndex+1 || last != InitialIndex {
		t.Fatalf("first %d last %d", first, last)
	}
	if term, err := s.Term(InitialIndex); err != nil || term != InitialTerm {
		t.Fatalf("term of the initial index: %d %v", term, err)
	}
	a := s.Applied()
	if a.Index != InitialIndex || a.NextReplicaID != 2 || !slices.Equal(a.Replicas, reps) || !s.Initialized() {
		t.Fatalf("applied state %+v", a)
	}
	// raft accepts it and elects the single voter.
	rn, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: s, Applied: a.Index,
		MaxSizePerMsg: math.MaxUint64, MaxInflightMsgs: 16, Logger: quietRaft})
	if err != nil {
		t.Fatal(err)
	}
	if err := rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		rd := rn.Ready()
		b := db.NewBatch()
		if !raft.IsEmptyHardState(rd.HardState) {
			if err := s.SetHardState(b, rd.HardState); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Append(b, rd.Entries); err != nil {
			t.Fatal(err)
		}
		commit(t, b)
		rn.Advance(rd)
	}
	if st := rn.BasicStatus(); st.RaftState != raft.StateLeader || st.GetTerm() != InitialTerm+1 {
		t.Fatalf("single voter not leader: %+v", st)
	}
}

func TestLoadMissingReplica(t *testing.T) {
	if _, err := Load(memDB(t), 3); !errors.Is(err, ErrNoReplica) {
		t.Fatalf("got %v", err)
	}
}

func TestDestroyLeavesTombstone(t *testing.T) {
	db := memDB(t)
	s := logStorage(t, db, 3, 3, 4, 5)
	b := db.NewBatch()
	if err := b.Set(append(StatePrefix(testShard), 'c', 1), []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Destroy(b, true); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	if _, err := Load(db, testShard); !errors.Is(err, ErrNoReplica) {
		t.Fatalf("replica survived: %v", err)
	}
	if ts, err := Tombstone(db, testShard); err != nil || ts != 2 {
		t.Fatalf("tombstone %d, %v", ts, err)
	}
	lo, hi := StateSpan(testShard)
	it, _ := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	defer it.Close()
	if it.First() {
		t.Fatalf("state left: %q", it.Key())
	}
}

func TestAppliedStateRoundTrip(t *testing.T) {
	a := AppliedState{Index: 99, Term: 7, NextReplicaID: 5, ConfIndex: 40,
		ConfState: &pb.ConfState{Voters: []uint64{1, 2}, VotersOutgoing: []uint64{1, 3}, Learners: []uint64{4}, AutoLeave: new(true)},
		Replicas:  []ReplicaDesc{{1, "a", 10}, {2, "b", 20}, {3, "c", 30}, {4, "d", 40}}}
	got, err := DecodeAppliedState(a.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.Index != a.Index || got.Term != a.Term || got.NextReplicaID != a.NextReplicaID || got.ConfIndex != a.ConfIndex ||
		!proto.Equal(got.ConfState, a.ConfState) || !slices.Equal(got.Replicas, a.Replicas) {
		t.Fatalf("round trip: %+v != %+v", got, a)
	}
	for n := range len(a.Encode()) {
		if _, err := DecodeAppliedState(a.Encode()[:n]); err == nil {
			t.Fatalf("a record cut at %d decoded", n)
		}
	}
}

// TestLoadRaisesCommitToApplied: the engine applies committed entries it
// holds before writing the hard state with the new commit index, so a
// crash can leave applied past the stored commit. Load raises the commit
// to the applied index (raft refuses an applied index past it), and a
// RawNode starts on the result.
func TestLoadRaisesCommitToApplied(t *testing.T) {
	db := memDB(t)
	s := logStorage(t, db, 3, 3, 4, 4, 5)
	b := db.NewBatch()
	if err := s.SetHardState(b, &pb.HardState{Term: new(uint64(5)), Vote: new(uint64(1)), Commit: new(uint64(4))}); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	applyTo(t, db, s, 6)
	s = reload(t, db)
	hs, _, err := s.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if hs.GetCommit() != 6 || hs.GetTerm() != 5 || hs.GetVote() != 1 {
		t.Fatalf("hard state %v, want term 5, vote 1, commit 6", hs)
	}
	if _, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: s, Applied: s.Applied().Index,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16, Logger: quietRaft}); err != nil {
		t.Fatal(err)
	}
}
