package raftstore

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

func envOf(t *testing.T, db *pebble.DB, fs vfs.FS) Env {
	t.Helper()
	opts := &pebble.Options{}
	opts.EnsureDefaults()
	return Env{DB: db, FS: fs, Dir: "snaps", Writer: opts.MakeWriterOptions(0, db.TableFormat())}
}

func stateKey(shard uint32, k string) []byte { return append(StatePrefix(shard), k...) }

func spanKVs(t *testing.T, r pebble.Reader, lo, hi []byte) []KV {
	t.Helper()
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []KV
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, KV{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	return out
}

func sameKVs(a, b []KV) bool {
	return slices.EqualFunc(a, b, func(x, y KV) bool { return bytes.Equal(x.Key, y.Key) && bytes.Equal(x.Value, y.Value) })
}

// TestSnapshotStreamsAndIngests sends a shard from one store to a lagging
// replica on another in small chunks: the replica ends with exactly the
// sender's state span, its raft state reset at the snapshot, its other
// shards untouched.
func TestSnapshotStreamsAndIngests(t *testing.T) {
	src := memDB(t)
	b := src.NewBatch()
	s, err := Bootstrap(src, b, testShard, 1, []ReplicaDesc{{1, "a", 1}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if err := b.Set(stateKey(testShard, fmt.Sprintf("c/k%04d", i)), bytes.Repeat([]byte{byte(i)}, 100), nil); err != nil {
			t.Fatal(err)
		}
	}
	// A neighbouring shard's state must not travel.
	if err := b.Set(stateKey(testShard+1, "c/other"), []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	applied := AppliedState{Index: 20, Term: 6, ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}}, NextReplicaID: 4,
		Replicas: []ReplicaDesc{{1, "a", 1}, {2, "b", 2}, {3, "c", 3}}}
	if err := s.SetApplied(b, applied); err != nil {
		t.Fatal(err)
	}
	commit(t, b)

	dstFS := vfs.NewMem()
	dst := openDB(t, dstFS)
	defer dst.Close()
	b = dst.NewBatch()
	r, err := Create(dst, b, testShard, 3)
	if err != nil {
		t.Fatal(err)
	}
	// What the lagging replica held: an old log and stale state.
	r.trunc = TruncatedState{Index: 10, Term: 5}
	r.last, r.lastTerm = 10, 5
	if err := r.Append(b, ents(11, 5, 5, 5)); err != nil {
		t.Fatal(err)
	}
	if err := r.SetHardState(b, &pb.HardState{Term: new(uint64(5)), Vote: new(uint64(2)), Commit: new(uint64(12))}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"c/k0000", "c/stale", "u/gone"} {
		if err := b.Set(stateKey(testShard, k), []byte("old"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Set(stateKey(testShard-1, "c/keep"), []byte("mine"), nil); err != nil {
		t.Fatal(err)
	}
	commit(t, b)

	// Stream from a Pebble snapshot in chunks of about 1 KiB.
	snap := src.NewSnapshot()
	defer snap.Close()
	meta, err := ReadApplied(snap, testShard)
	if err != nil || meta.Index != 20 {
		t.Fatalf("applied state in the snapshot: %+v %v", meta, err)
	}
	env := envOf(t, dst, dstFS)
	w, err := NewSnapshotWriter(env, testShard)
	if err != nil {
		t.Fatal(err)
	}
	var after []byte
	chunks := 0
	for {
		kvs, done, err := ReadChunk(snap, testShard, after, 1024)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(kvs); err != nil {
			t.Fatal(err)
		}
		chunks++
		if done {
			break
		}
		after = kvs[len(kvs)-1].Key
	}
	if chunks < 20 {
		t.Fatalf("%d chunks: the chunk bound was not applied", chunks)
	}
	path, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	md := &pb.SnapshotMetadata{Index: new(meta.Index), Term: new(meta.Term), ConfState: meta.ConfState}
	hs := &pb.HardState{Term: new(uint64(6)), Vote: new(uint64(0)), Commit: new(uint64(20))}
	if err := r.IngestSnapshot(env, path, md, hs); err != nil {
		t.Fatal(err)
	}

	lo, hi := StateSpan(testShard)
	if got, want := spanKVs(t, dst, lo, hi), spanKVs(t, src, lo, hi); !sameKVs(got, want) {
		t.Fatalf("state span differs: %d keys, want %d", len(got), len(want))
	}
	for _, k := range [][]byte{stateKey(testShard-1, "c/keep")} {
		if v, _ := get(dst, k); string(v) != "mine" {
			t.Fatalf("another shard's key %q lost", k)
		}
	}
	if v, _ := get(dst, stateKey(testShard+1, "c/other")); v != nil {
		t.Fatal("a neighbouring shard's key travelled")
	}
	for _, s := range []*Storage{r, reload(t, dst)} {
		if s.ReplicaID() != 3 {
			t.Fatalf("replica ID %d", s.ReplicaID())
		}
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		h, cs, _ := s.InitialState()
		if first != 21 || last != 20 || h.GetCommit() != 20 || h.GetTerm() != 6 || !slices.Equal(cs.GetVoters(), []uint64{1, 2, 3}) {
			t.Fatalf("after the snapshot: first %d last %d hard %v conf %v", first, last, h, cs)
		}
		if a := s.Applied(); a.Index != 20 || !slices.Equal(a.Replicas, applied.Replicas) {
			t.Fatalf("applied %+v", a)
		}
	}
	if n := countLog(t, dst); n != 0 {
		t.Fatalf("%d old log entries left", n)
	}
	if left, _ := dstFS.List("snaps"); len(left) != 0 {
		t.Fatalf("snapshot files left: %v", left)
	}

	// The same snapshot again is out of date, and its file goes too.
	w, _ = NewSnapshotWriter(env, testShard)
	path, _ = w.Finish()
	if err := r.IngestSnapshot(env, path, md, hs); err != raft.ErrSnapOutOfDate {
		t.Fatalf("stale snapshot: %v", err)
	}
	if left, _ := dstFS.List("snaps"); len(left) != 0 {
		t.Fatalf("snapshot files left: %v", left)
	}
}

func TestSnapshotWriterRefusesForeignKeys(t *testing.T) {
	fs := vfs.NewMem()
	db := openDB(t, fs)
	defer db.Close()
	env := envOf(t, db, fs)
	for _, kvs := range [][]KV{
		{{Key: stateKey(testShard+1, "c/x"), Value: nil}},
		{{Key: LogKey(testShard, 5), Value: nil}},
		{{Key: stateKey(testShard, "c/b")}, {Key: stateKey(testShard, "c/a")}},
		{{Key: stateKey(testShard, "c/a")}, {Key: stateKey(testShard, "c/a")}},
	} {
		w, err := NewSnapshotWriter(env, testShard)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(kvs); err == nil {
			t.Fatalf("accepted %q", kvs[len(kvs)-1].Key)
		}
		w.Abort()
	}
	if left, _ := fs.List("snaps"); len(left) != 0 {
		t.Fatalf("files left: %v", left)
	}
	if _, _, err := ReadChunk(db, testShard, stateKey(testShard+1, "c"), 10); err == nil {
		t.Fatal("resumed after a key of another shard")
	}
}
