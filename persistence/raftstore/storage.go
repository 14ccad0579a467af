package raftstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Where a new shard's log starts: every shard is created with its first
// entries "already truncated", so a replica added later starts empty and
// is always initialized by a snapshot, never by replaying a log from
// index 1 (whose first entries no replica still holds).
const (
	InitialIndex uint64 = 10
	InitialTerm  uint64 = 5
)

// ErrNoReplica means the node holds no replica of the shard.
var ErrNoReplica = errors.New("raftstore: no replica of the shard here")

// Storage is one replica's raft.Storage on the node's Pebble.
//
// It is not safe for concurrent use: raft and the loop that drives it call
// it from one goroutine. Writes go into a batch the caller commits; they
// update the in-memory state (last index and term, truncated state, hard
// and applied state) at once, so the caller must commit the batch before
// raft reads the storage again (before Advance).
type Storage struct {
	db        *pebble.DB
	shard     uint32
	replicaID uint64

	hard     *pb.HardState // nil: none persisted yet
	trunc    TruncatedState
	last     uint64 // index of the last entry (trunc.Index when none)
	lastTerm uint64
	applied  AppliedState

	// SnapshotReady, when set, is asked before raft gets a snapshot to send;
	// false makes raft retry later (the node is sending enough of them).
	SnapshotReady func() bool

	scratch []byte // marshalling buffer for entries
	cache   entryCache
}

// Shard returns the shard the replica belongs to.
func (s *Storage) Shard() uint32 { return s.shard }

// ReplicaID returns the replica's ID.
func (s *Storage) ReplicaID() uint64 { return s.replicaID }

// Applied returns the applied state (the caller must not modify it).
func (s *Storage) Applied() *AppliedState { return &s.applied }

// HardState returns the persisted hard state (nil when none).
func (s *Storage) HardState() *pb.HardState { return s.hard }

// Truncated returns the truncated state.
func (s *Storage) Truncated() TruncatedState { return s.trunc }

// Initialized reports whether the replica holds the shard's state (it was
// created with the shard or has applied a snapshot). An uninitialized
// replica waits for a snapshot.
func (s *Storage) Initialized() bool { return s.applied.Index > 0 }

// Create writes a new, uninitialized replica of shard into b: it holds
// nothing but its ID until a snapshot arrives. The node must hold no
// replica of the shard.
func Create(db *pebble.DB, b *pebble.Batch, shard uint32, replicaID uint64) (*Storage, error) {
	if replicaID == 0 {
		return nil, errors.New("raftstore: replica ID 0")
	}
	if err := b.Set(ReplicaIDKey(shard), encodeU64(replicaID), nil); err != nil {
		return nil, err
	}
	return &Storage{db: db, shard: shard, replicaID: replicaID, applied: AppliedState{ConfState: &pb.ConfState{}}}, nil
}

// Bootstrap writes a new shard into b, with its first replica (replicaID,
// described in replicas) as the only voter, its log starting after
// InitialIndex and its state machine empty.
func Bootstrap(db *pebble.DB, b *pebble.Batch, shard uint32, replicaID uint64, replicas []ReplicaDesc) (*Storage, error) {
	s, err := Create(db, b, shard, replicaID)
	if err != nil {
		return nil, err
	}
	cs := &pb.ConfState{}
	next := uint64(1)
	for _, r := range replicas {
		cs.Voters = append(cs.Voters, r.ID)
		next = max(next, r.ID+1)
	}
	s.applied = AppliedState{Index: InitialIndex, Term: InitialTerm, ConfState: cs, Replicas: replicas, NextReplicaID: next}
	if err := s.SetApplied(b, s.applied); err != nil {
		return nil, err
	}
	s.trunc = TruncatedState{Index: InitialIndex, Term: InitialTerm}
	if err := b.Set(TruncatedStateKey(shard), s.trunc.encode(), nil); err != nil {
		return nil, err
	}
	s.last, s.lastTerm = InitialIndex, InitialTerm
	if err := s.SetHardState(b, &pb.HardState{Term: new(InitialTerm), Commit: new(InitialIndex)}); err != nil {
		return nil, err
	}
	return s, nil
}

// Load reads the replica of shard the node holds, or ErrNoReplica.
func Load(db *pebble.DB, shard uint32) (*Storage, error) {
	s := &Storage{db: db, shard: shard}
	v, err := get(db, ReplicaIDKey(shard))
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, ErrNoReplica
	}
	if s.replicaID, err = decodeU64(v); err != nil {
		return nil, err
	}
	if v, err = get(db, HardStateKey(shard)); err != nil {
		return nil, err
	} else if v != nil {
		s.hard = &pb.HardState{}
		if err := proto.Unmarshal(v, s.hard); err != nil {
			return nil, fmt.Errorf("%w: hard state of shard %d: %v", ErrCorrupt, shard, err)
		}
	}
	if v, err = get(db, TruncatedStateKey(shard)); err != nil {
		return nil, err
	} else if v != nil {
		if s.trunc, err = decodeTruncated(v); err != nil {
			return nil, err
		}
	}
	s.applied = AppliedState{ConfState: &pb.ConfState{}}
	if v, err = get(db, AppliedStateKey(shard)); err != nil {
		return nil, err
	} else if v != nil {
		if s.applied, err = DecodeAppliedState(v); err != nil {
			return nil, err
		}
	}
	s.last, s.lastTerm = s.trunc.Index, s.trunc.Term
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: LogKey(shard, 0), UpperBound: logUpper(shard)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if it.Last() {
		e, err := decodeEntry(it.Value())
		if err != nil {
			return nil, err
		}
		s.last, s.lastTerm = e.GetIndex(), e.GetTerm()
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if s.applied.Index > s.last || (s.hard != nil && s.hard.GetCommit() > s.last) {
		return nil, fmt.Errorf("%w: shard %d: applied %d or commit %d past the last entry %d",
			ErrCorrupt, shard, s.applied.Index, s.hard.GetCommit(), s.last)
	}
	// The engine applies entries it holds durably as soon as they are
	// committed, before the round's hard state (with the new commit index)
	// is written: a crash in between leaves applied past the stored
	// commit. Applied entries were committed, and the commit index is only
	// what this replica knew of it (raft never needs it synced), so it is
	// raised to what was applied: raft refuses an applied index past the
	// commit.
	if s.hard != nil && s.applied.Index > s.hard.GetCommit() {
		hs := proto.Clone(s.hard).(*pb.HardState)
		hs.Commit = new(s.applied.Index)
		s.hard = hs
	}
	return s, nil
}

// logUpper bounds the shard's log keys from above.
func logUpper(shard uint32) []byte { return raftKey(shard, suffixLog+1) }

func get(db pebble.Reader, key []byte) ([]byte, error) {
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

func decodeEntry(v []byte) (*pb.Entry, error) {
	e := &pb.Entry{}
	if err := proto.Unmarshal(v, e); err != nil {
		return nil, fmt.Errorf("%w: log entry: %v", ErrCorrupt, err)
	}
	return e, nil
}

// InitialState implements raft.Storage.
func (s *Storage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	cs := s.applied.ConfState
	if cs == nil {
		cs = &pb.ConfState{}
	}
	return s.hard, proto.Clone(cs).(*pb.ConfState), nil
}

// Entries implements raft.Storage.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	if lo <= s.trunc.Index {
		return nil, raft.ErrCompacted
	}
	if hi > s.last+1 || lo >= hi {
		return nil, raft.ErrUnavailable
	}
	if ents, ok := s.cache.get(lo, hi, maxSize); ok {
		return ents, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: LogKey(s.shard, lo), UpperBound: LogKey(s.shard, hi)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	ents := make([]*pb.Entry, 0, min(hi-lo, 64))
	var size uint64
	next, full := lo, false
	for ok := it.First(); ok; ok = it.Next() {
		v := it.Value()
		size += uint64(len(v))
		if len(ents) > 0 && size > maxSize {
			full = true
			break
		}
		e, err := decodeEntry(v)
		if err != nil {
			return nil, err
		}
		if e.GetIndex() != next {
			return nil, fmt.Errorf("%w: shard %d: entry %d found where %d belongs", ErrCorrupt, s.shard, e.GetIndex(), next)
		}
		ents = append(ents, e)
		next++
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if len(ents) == 0 || (next < hi && !full) {
		return nil, fmt.Errorf("%w: shard %d: log entries [%d, %d) missing", ErrCorrupt, s.shard, next, hi)
	}
	return ents, nil
}

// Term implements raft.Storage.
func (s *Storage) Term(i uint64) (uint64, error) {
	switch {
	case i == s.trunc.Index:
		return s.trunc.Term, nil
	case i < s.trunc.Index:
		return 0, raft.ErrCompacted
	case i > s.last:
		return 0, raft.ErrUnavailable
	case i == s.last:
		return s.lastTerm, nil
	}
	if t, ok := s.cache.term(i); ok {
		return t, nil
	}
	v, err := get(s.db, LogKey(s.shard, i))
	if err != nil {
		return 0, err
	}
	if v == nil {
		return 0, fmt.Errorf("%w: shard %d: log entry %d missing", ErrCorrupt, s.shard, i)
	}
	e, err := decodeEntry(v)
	if err != nil {
		return 0, err
	}
	return e.GetTerm(), nil
}

// LastIndex implements raft.Storage.
func (s *Storage) LastIndex() (uint64, error) { return s.last, nil }

// FirstIndex implements raft.Storage.
func (s *Storage) FirstIndex() (uint64, error) { return s.trunc.Index + 1, nil }

// Snapshot implements raft.Storage. The state machine is the shard's span
// of Pebble, so the snapshot is only its metadata (the applied index, term
// and configuration); whoever sends it streams the span from a Pebble
// snapshot and rewrites the metadata to match what it streams.
func (s *Storage) Snapshot() (*pb.Snapshot, error) {
	if !s.Initialized() || (s.SnapshotReady != nil && !s.SnapshotReady()) {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index:     new(s.applied.Index),
		Term:      new(s.applied.Term),
		ConfState: proto.Clone(s.applied.ConfState).(*pb.ConfState),
	}}, nil
}

// Append writes ents to the log in b. Entries at or below the truncated
// index are skipped; every persisted entry above the last one written is
// deleted (a new leader overwrote them).
func (s *Storage) Append(b *pebble.Batch, ents []*pb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	if first := s.trunc.Index + 1; ents[0].GetIndex() < first {
		skip := first - ents[0].GetIndex()
		if skip >= uint64(len(ents)) {
			return nil
		}
		ents = ents[skip:]
	}
	if ents[0].GetIndex() > s.last+1 {
		return fmt.Errorf("raftstore: shard %d: append at %d leaves a gap after %d", s.shard, ents[0].GetIndex(), s.last)
	}
	for i, e := range ents {
		if i > 0 && e.GetIndex() != ents[i-1].GetIndex()+1 {
			return fmt.Errorf("raftstore: shard %d: entries not contiguous at %d", s.shard, e.GetIndex())
		}
		var err error
		if s.scratch, err = (proto.MarshalOptions{}).MarshalAppend(s.scratch[:0], e); err != nil {
			return err
		}
		if err := b.Set(LogKey(s.shard, e.GetIndex()), s.scratch, nil); err != nil {
			return err
		}
	}
	lastNew := ents[len(ents)-1]
	if lastNew.GetIndex() < s.last {
		if err := b.DeleteRange(LogKey(s.shard, lastNew.GetIndex()+1), LogKey(s.shard, s.last+1), nil); err != nil {
			return err
		}
	}
	s.last, s.lastTerm = lastNew.GetIndex(), lastNew.GetTerm()
	s.cache.append(ents)
	return nil
}

// SetHardState writes hs in b.
func (s *Storage) SetHardState(b *pebble.Batch, hs *pb.HardState) error {
	v, err := proto.Marshal(hs)
	if err != nil {
		return err
	}
	if err := b.Set(HardStateKey(s.shard), v, nil); err != nil {
		return err
	}
	s.hard = hs
	return nil
}

// SetApplied writes the applied state in b; it goes in the batch that
// applies the entries up to a.Index.
func (s *Storage) SetApplied(b *pebble.Batch, a AppliedState) error {
	if err := b.Set(AppliedStateKey(s.shard), a.Encode(), nil); err != nil {
		return err
	}
	s.applied = a
	return nil
}

// Truncate removes the log entries up to and including index, which must
// be applied. It fails with raft.ErrCompacted when they are gone already.
func (s *Storage) Truncate(b *pebble.Batch, index uint64) error {
	if index <= s.trunc.Index {
		return raft.ErrCompacted
	}
	if index > s.applied.Index || index > s.last {
		return fmt.Errorf("raftstore: shard %d: truncating to %d past applied %d or last %d", s.shard, index, s.applied.Index, s.last)
	}
	term, err := s.Term(index)
	if err != nil {
		return err
	}
	if err := b.DeleteRange(LogKey(s.shard, s.trunc.Index+1), LogKey(s.shard, index+1), nil); err != nil {
		return err
	}
	t := TruncatedState{Index: index, Term: term}
	if err := b.Set(TruncatedStateKey(s.shard), t.encode(), nil); err != nil {
		return err
	}
	s.trunc = t
	s.cache.dropTo(index)
	return nil
}

// ReleaseCache lets the entry cache forget the entries up to index: the
// caller knows nobody will read them soon (applied here and, on a leader,
// held by every follower). They stay in the log and are read from Pebble
// if asked for after all.
func (s *Storage) ReleaseCache(index uint64) { s.cache.dropTo(index) }

// Cached returns how many entries the cache holds.
func (s *Storage) Cached() int { return len(s.cache.ents) }

// Destroy deletes the replica's raft state and state machine in b and,
// with tombstone set, leaves a tombstone, so that no message to this
// replica ID (or an older one) recreates it. The Storage must not be used
// afterwards.
func (s *Storage) Destroy(b *pebble.Batch, tombstone bool) error {
	lo, hi := RaftSpan(s.shard)
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return err
	}
	lo, hi = StateSpan(s.shard)
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return err
	}
	if !tombstone {
		return nil
	}
	return b.Set(TombstoneKey(s.shard), encodeU64(s.replicaID+1), nil)
}

// Tombstone returns the lowest replica ID the node may hold of shard (0:
// none was ever removed).
func Tombstone(db pebble.Reader, shard uint32) (uint64, error) {
	v, err := get(db, TombstoneKey(shard))
	if err != nil || v == nil {
		return 0, err
	}
	return decodeU64(v)
}

// LogSize returns how many entries the log holds.
func (s *Storage) LogSize() uint64 { return s.last - s.trunc.Index }

// Shards returns the shards of which the node holds a replica.
func Shards(r pebble.Reader) ([]uint32, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixRaft}, UpperBound: []byte{prefixRaft + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []uint32
	for ok := it.First(); ok; {
		k := it.Key()
		if len(k) < 5 {
			return nil, fmt.Errorf("%w: raft key %q", ErrCorrupt, k)
		}
		shard := binary.BigEndian.Uint32(k[1:5])
		if ok = it.SeekGE(ReplicaIDKey(shard)); ok && bytes.Equal(it.Key(), ReplicaIDKey(shard)) {
			out = append(out, shard)
		}
		if shard == math.MaxUint32 {
			break
		}
		_, next := RaftSpan(shard)
		ok = it.SeekGE(next)
	}
	return out, it.Error()
}
