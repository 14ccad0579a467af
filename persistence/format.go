package persistence

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// FormatVersion is the layout this build writes and reads: replicated
// shards (raftstore's layout, scopes inside shard spans). A store stamps it
// in its node records when created.
//
// Stage 1 wrote no version: its keys begin with a scope kind ('c', 'u',
// 'n'), all above this layout's prefixes, so this build never reads them as
// its own. Such a store opens with Stage1 set; the node migrates it
// (MigrateStage1) when it forms a new cluster with it, or refuses to start.
const FormatVersion = 2

// Node record names.
const (
	recFormat  = "format"
	recStore   = "store"
	recCluster = "cluster"
	recShards  = "shards"
)

// ErrFormat means the store was written by a build of another format.
var ErrFormat = errors.New("persistence: unknown store format")

func (s *Store) checkFormat() error {
	v, err := s.GetNode(recFormat)
	switch {
	case err == nil:
		if f, ok := ParseU64(v); !ok || f != FormatVersion {
			return fmt.Errorf("%w: the data directory holds format %x; this build reads format %d", ErrFormat, v, FormatVersion)
		}
		return nil
	case !errors.Is(err, ErrNotFound):
		return err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: stage1Lower})
	if err != nil {
		return err
	}
	s.stage1 = it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if s.stage1 {
		return nil
	}
	return s.stamp(s.db.NewBatch())
}

// stage1Lower bounds stage-1 keys from below: every one of them sorts
// above this layout's prefixes.
var stage1Lower = []byte{0x03}

// stamp writes the format and a new store id in b, and commits it.
func (s *Store) stamp(b *pebble.Batch) error {
	defer b.Close()
	var id [8]byte
	for binary.BigEndian.Uint64(id[:]) == 0 {
		_, _ = rand.Read(id[:])
	}
	if err := errors.Join(b.Set(raftstore.NodeKey(recStore), id[:], nil),
		b.Set(raftstore.NodeKey(recFormat), U64(FormatVersion), nil)); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// Stage1 reports whether the store holds stage-1 data still to migrate.
func (s *Store) Stage1() bool { return s.stage1 }

// Identity is who a store belongs to: its own id (a new one for every new
// data directory), and the cluster it joined with that cluster's shard
// count (unset until it forms or joins one).
type Identity struct {
	Store   uint64
	Cluster string
	Shards  uint32
}

// Identity reads the store's identity.
func (s *Store) Identity() (Identity, error) {
	var id Identity
	for _, rec := range []struct {
		name string
		set  func([]byte) bool
	}{
		{recStore, func(v []byte) bool { n, ok := ParseU64(v); id.Store = n; return ok }},
		{recCluster, func(v []byte) bool { id.Cluster = string(v); return true }},
		{recShards, func(v []byte) bool {
			if len(v) != 4 {
				return false
			}
			id.Shards = binary.BigEndian.Uint32(v)
			return true
		}},
	} {
		v, err := s.GetNode(rec.name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return id, err
		}
		if !rec.set(v) {
			return id, fmt.Errorf("%w: node record %s", ErrFormat, rec.name)
		}
	}
	return id, nil
}

// SetCluster records the cluster the store belongs to and its shard count.
func (s *Store) SetCluster(cluster string, shards uint32) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	b := s.db.NewBatch()
	defer b.Close()
	if err := errors.Join(b.Set(raftstore.NodeKey(recCluster), []byte(cluster), nil),
		b.Set(raftstore.NodeKey(recShards), binary.BigEndian.AppendUint32(nil, shards), nil)); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// Stage-1 layout: kind (1) | len(id) (1) | id | table (1) | key, with the
// scope's ownership fence in table 0x01 (epoch, then 1 and a node name
// when the scope was handed off elsewhere), and the node's own records
// under kind 'n' with an empty id, table 'a'.
const (
	stage1Fence = 0x01
	stage1Node  = 'n'
)

// Stage1Summary counts the channels and users a stage-1 store serves.
func (s *Store) Stage1Summary() (channels, users int, err error) {
	err = s.eachStage1Scope(func(kind Kind, id string, live bool, lo, hi []byte) error {
		switch {
		case !live:
		case kind == KindChannel:
			channels++
		case kind == KindUser:
			users++
		}
		return nil
	})
	return channels, users, err
}

// eachStage1Scope calls fn for every stage-1 scope with its key span and
// whether this store served it (held a live fence).
func (s *Store) eachStage1Scope(fn func(kind Kind, id string, live bool, lo, hi []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: stage1Lower})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; {
		k := it.Key()
		if len(k) < 2 || len(k) < 2+int(k[1]) {
			return fmt.Errorf("%w: stage-1 key %q", ErrFormat, k)
		}
		prefix := bytes.Clone(k[:2+int(k[1])])
		lo, hi := prefix, prefixEnd(prefix)
		live := false
		fence := append(bytes.Clone(prefix), stage1Fence)
		if it.SeekGE(fence) && bytes.Equal(it.Key(), fence) {
			v := it.Value()
			live = len(v) == 8 && binary.BigEndian.Uint64(v) > 0
		}
		if err := fn(Kind(prefix[0]), string(prefix[2:]), live, lo, hi); err != nil {
			return err
		}
		if hi == nil {
			break
		}
		ok = it.SeekGE(hi)
	}
	return it.Error()
}

// MigrateStage1 converts a stage-1 store: every scope it served moves into
// the state span of its shard (shardOf places it), the node's records move
// to this layout, everything else of stage 1 (fences, copies handed off to
// other nodes) is deleted, and the store is stamped with this format. Each
// scope moves in one batch, so a crash midway leaves scopes either moved
// or still to move, and running it again finishes the job. The node must
// record its cluster and shard count first: shardOf must not change
// between runs.
func (s *Store) MigrateStage1(shardOf func(Scope) uint32) (moved int, err error) {
	if !s.stage1 {
		return 0, nil
	}
	err = s.eachStage1Scope(func(kind Kind, id string, live bool, lo, hi []byte) error {
		b := s.db.NewBatch()
		defer b.Close()
		if kind == stage1Node && id == "" {
			if err := s.copyStage1(b, lo, hi, func(table byte, key []byte) []byte {
				if table != byte(TableMeta) {
					return nil
				}
				return raftstore.NodeKey(string(key))
			}); err != nil {
				return err
			}
		} else if live && (kind == KindChannel || kind == KindUser) && len(id) <= MaxIDLen {
			sc := Scope{Kind: kind, ID: id}
			shard := shardOf(sc)
			if err := s.copyStage1(b, lo, hi, func(table byte, key []byte) []byte {
				if table == stage1Fence {
					return nil
				}
				return sc.key(shard, Table(table), key)
			}); err != nil {
				return err
			}
			moved++
		}
		if hi == nil {
			hi = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		}
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return err
		}
		return b.Commit(pebble.NoSync)
	})
	if err != nil {
		return moved, err
	}
	if err := s.stamp(s.db.NewBatch()); err != nil {
		return moved, err
	}
	s.stage1 = false
	return moved, nil
}

// copyStage1 copies the keys of one stage-1 scope [lo, hi) into b under
// the keys rename gives them (nil: dropped).
func (s *Store) copyStage1(b *pebble.Batch, lo, hi []byte, rename func(table byte, key []byte) []byte) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[len(lo):]
		if len(k) == 0 {
			continue
		}
		if nk := rename(k[0], k[1:]); nk != nil {
			if err := b.Set(nk, it.Value(), nil); err != nil {
				return err
			}
		}
	}
	return it.Error()
}
