package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A snapshot of a shard is its state span, read from a Pebble snapshot by
// the sender in bounded chunks and written by the receiver straight into
// an SST file; once the last chunk is in, raft is told of the snapshot, and
// if it accepts it the file is ingested together with a second one that
// resets the replica's raft state, atomically. Memory stays bounded on
// both sides whatever the size of the shard.

// Env is the node's Pebble as snapshots need it.
type Env struct {
	DB *pebble.DB
	// FS and Dir are where snapshot files are built: Dir must be on the
	// database's filesystem (ingestion links the files in).
	FS  vfs.FS
	Dir string
	// Writer builds the files; its table format must not exceed what the
	// database reads (see DB.TableFormat).
	Writer sstable.WriterOptions
}

// KV is one key and value of a shard's state.
type KV struct {
	Key, Value []byte
}

// ReadChunk reads keys of the shard's state span from r that sort after
// after (nil: from the first), stopping once maxBytes of keys and values
// are read (at least one pair is). done is set when nothing remains.
func ReadChunk(r pebble.Reader, shard uint32, after []byte, maxBytes int) (kvs []KV, done bool, err error) {
	lower, upper := StateSpan(shard)
	if after != nil {
		if bytes.Compare(after, lower) < 0 || bytes.Compare(after, upper) >= 0 {
			return nil, false, fmt.Errorf("raftstore: resume key outside shard %d", shard)
		}
		lower = append(bytes.Clone(after), 0)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	size := 0
	for ok := it.First(); ok; ok = it.Next() {
		if size >= maxBytes && len(kvs) > 0 {
			return kvs, false, it.Error()
		}
		k, v := bytes.Clone(it.Key()), bytes.Clone(it.Value())
		kvs = append(kvs, KV{Key: k, Value: v})
		size += len(k) + len(v)
	}
	return kvs, true, it.Error()
}

// ReadApplied reads the shard's applied state from r (a Pebble snapshot
// the sender streams from).
func ReadApplied(r pebble.Reader, shard uint32) (AppliedState, error) {
	v, err := get(r, AppliedStateKey(shard))
	if err != nil {
		return AppliedState{}, err
	}
	if v == nil {
		return AppliedState{}, ErrNoReplica
	}
	return DecodeAppliedState(v)
}

var fileSeq atomic.Uint64

// SnapshotWriter builds the SST of one incoming snapshot.
type SnapshotWriter struct {
	env   Env
	shard uint32
	path  string
	w     *sstable.Writer
	last  []byte
	size  int64
}

// NewSnapshotWriter starts the file of an incoming snapshot of shard. The
// file begins with a deletion of the whole state span, so ingesting it
// replaces whatever the replica held.
func NewSnapshotWriter(env Env, shard uint32) (*SnapshotWriter, error) {
	if err := env.FS.MkdirAll(env.Dir, 0o755); err != nil {
		return nil, err
	}
	path := env.FS.PathJoin(env.Dir, fmt.Sprintf("snap-%d-%d.sst", shard, fileSeq.Add(1)))
	f, err := env.FS.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	w := &SnapshotWriter{env: env, shard: shard, path: path, w: sstable.NewWriter(objstorageprovider.NewFileWritable(f), env.Writer)}
	lo, hi := StateSpan(shard)
	if err := w.w.DeleteRange(lo, hi); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// Add writes a chunk. Keys must belong to the shard's state span and
// strictly increase across every chunk.
func (w *SnapshotWriter) Add(kvs []KV) error {
	lo, hi := StateSpan(w.shard)
	for _, kv := range kvs {
		if bytes.Compare(kv.Key, lo) < 0 || bytes.Compare(kv.Key, hi) >= 0 {
			return fmt.Errorf("raftstore: snapshot key outside shard %d", w.shard)
		}
		if w.last != nil && bytes.Compare(kv.Key, w.last) <= 0 {
			return fmt.Errorf("raftstore: snapshot keys out of order")
		}
		if err := w.w.Set(kv.Key, kv.Value); err != nil {
			return err
		}
		w.last = append(w.last[:0], kv.Key...)
		w.size += int64(len(kv.Key) + len(kv.Value))
	}
	return nil
}

// Size returns the bytes of keys and values written so far.
func (w *SnapshotWriter) Size() int64 { return w.size }

// Finish completes and syncs the file and returns its path.
func (w *SnapshotWriter) Finish() (string, error) {
	err := w.w.Close()
	w.w = nil
	if err != nil {
		_ = w.env.FS.Remove(w.path)
		return "", err
	}
	return w.path, nil
}

// Abort drops the file.
func (w *SnapshotWriter) Abort() {
	if w.w != nil {
		_ = w.w.Close()
		w.w = nil
	}
	_ = w.env.FS.Remove(w.path)
}

// IngestSnapshot installs a snapshot raft has accepted: the state file
// built by a SnapshotWriter (whose applied state must be the snapshot's
// index and term) and the replica's reset raft state (no log, truncated at
// the snapshot, hs as the hard state with its commit at least the
// snapshot's index) go in together, in one atomic ingestion. The files are
// removed whatever happens.
func (s *Storage) IngestSnapshot(env Env, statePath string, meta *pb.SnapshotMetadata, hs *pb.HardState) (err error) {
	raftPath := statePath + ".raft"
	defer func() {
		_ = env.FS.Remove(statePath)
		_ = env.FS.Remove(raftPath)
	}()
	if meta.GetIndex() <= s.applied.Index {
		return raft.ErrSnapOutOfDate
	}
	hard := &pb.HardState{}
	switch {
	case !raft.IsEmptyHardState(hs):
		hard = proto.Clone(hs).(*pb.HardState)
	case s.hard != nil:
		hard = proto.Clone(s.hard).(*pb.HardState)
	}
	if hard.GetCommit() < meta.GetIndex() {
		hard.Commit = new(meta.GetIndex())
	}
	hv, err := proto.Marshal(hard)
	if err != nil {
		return err
	}
	trunc := TruncatedState{Index: meta.GetIndex(), Term: meta.GetTerm()}
	f, err := env.FS.Create(raftPath, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), env.Writer)
	lo, hi := RaftSpan(s.shard)
	err = errors.Join(w.DeleteRange(lo, hi),
		w.Set(HardStateKey(s.shard), hv),
		w.Set(TruncatedStateKey(s.shard), trunc.encode()),
		w.Set(ReplicaIDKey(s.shard), encodeU64(s.replicaID)))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := env.DB.Ingest(context.Background(), []string{statePath, raftPath}); err != nil {
		return fmt.Errorf("raftstore: ingest snapshot of shard %d: %w", s.shard, err)
	}
	applied, err := ReadApplied(env.DB, s.shard)
	if err != nil {
		return fmt.Errorf("raftstore: snapshot of shard %d: %w", s.shard, err)
	}
	if applied.Index != meta.GetIndex() || applied.Term != meta.GetTerm() {
		return fmt.Errorf("%w: snapshot of shard %d holds applied state %d/%d, not %d/%d",
			ErrCorrupt, s.shard, applied.Index, applied.Term, meta.GetIndex(), meta.GetTerm())
	}
	s.applied, s.trunc, s.hard = applied, trunc, hard
	s.last, s.lastTerm = trunc.Index, trunc.Term
	s.cache.reset()
	return nil
}

// RemoveSnapshotFiles deletes snapshot files a crash left in env.Dir.
func RemoveSnapshotFiles(env Env) error {
	names, err := env.FS.List(env.Dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, n := range names {
		if err := env.FS.Remove(env.FS.PathJoin(env.Dir, n)); err != nil {
			return err
		}
	}
	return nil
}
