package persistence

import (
	"bytes"
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// Hand-off moves a scope's records from the node that holds them to its
// new owner:
//
//  1. the holder releases the scope to the new owner: its fence rises one
//     epoch and is marked released to that node, so the old activation can
//     write nothing more, the holder will not activate it again on its own,
//     and only that node may fetch or drop the copy;
//  2. the new owner exports the records in chunks and imports them; the
//     first chunk clears whatever the new owner had of the scope (it is
//     refused if the new owner serves the scope), and the last one sets its
//     fence, live, above every epoch seen;
//  3. the holder drops its released copy (keeping the fence).
//
// A crash anywhere leaves either the holder's released copy or the new
// owner's imported one (or both): the scope is never lost, and the highest
// fence tells which copy is current. A released copy can be released again
// to another node (a new epoch), which ends the earlier node's right to it.

// fenceValue encodes a fence: the epoch; when released, a flags byte and
// the name of the node it was released to.
func fenceValue(fs fenceState) []byte {
	b := U64(fs.epoch)
	if fs.released {
		b = append(b, 1)
		b = append(b, fs.to...)
	}
	return b
}

func parseFence(v []byte) (fenceState, bool) {
	if len(v) < 8 || (len(v) > 8 && v[8] != 1) {
		return fenceState{}, false
	}
	e, _ := ParseU64(v[:8])
	fs := fenceState{epoch: e}
	if len(v) > 8 {
		fs.released, fs.to = true, string(v[9:])
	}
	return fs, true
}

// ScopeState is what a store holds of one scope.
type ScopeState struct {
	Epoch      uint64 // the fence (0: never fenced)
	Released   bool   // handed off: this store must not serve it
	ReleasedTo string // the node it was released to
	HasData    bool   // records other than the fence exist
}

// Live reports whether this store serves the scope.
func (s ScopeState) Live() bool { return s.Epoch > 0 && !s.Released }

// State reports what the store holds of a scope.
func (s *Store) State(sc Scope) (ScopeState, error) {
	var st ScopeState
	if err := s.enter(); err != nil {
		return st, err
	}
	defer s.leave()
	v, closer, err := s.db.Get(sc.key(TableFence, nil))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return st, err
	default:
		fs, ok := parseFence(v)
		closer.Close()
		if !ok {
			return st, errors.New("persistence: malformed fence of " + sc.String())
		}
		st.Epoch, st.Released, st.ReleasedTo = fs.epoch, fs.released, fs.to
	}
	lower, upper := sc.dataBounds()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return st, err
	}
	st.HasData = it.First()
	return st, it.Close()
}

// dataBounds covers every record of the scope but its fence.
func (sc Scope) dataBounds() (lower, upper []byte) {
	lower = sc.key(TableFence+1, nil)
	_, upper = sc.scopeBounds()
	return lower, upper
}

// Release raises a scope's fence by one epoch and marks it released to
// node, so entries of the current activation are refused from then on and
// only node may fetch or drop the copy. done gets the new epoch.
func (s *Store) Release(sc Scope, node string, done func(epoch uint64, err error)) {
	var epoch uint64
	s.c.submit(&request{scope: sc, kind: reqRelease, to: node, done: func(err error) { done(epoch, err) }, out: &epoch})
}

// Barrier calls done once every request submitted for any scope before it
// has landed (or been refused): an activation reads its scope only after
// the entries of an activation before it are in the store.
func (s *Store) Barrier(done func(error)) {
	s.c.submit(&request{kind: reqBarrier, done: done})
}

// Export returns the scope's records (not its fence) with keys above after
// (nil: from the first), stopping once maxBytes of keys and values are
// collected. last is the key to continue after; done is true when nothing
// remains.
func (s *Store) Export(sc Scope, after []byte, maxBytes int) (recs []SnapshotRecord, last []byte, done bool, err error) {
	if err := s.enter(); err != nil {
		return nil, nil, false, err
	}
	defer s.leave()
	lower, upper := sc.dataBounds()
	if after != nil {
		lower = append(sc.prefix(), after...)
		lower = append(lower, 0)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, nil, false, err
	}
	defer it.Close()
	prefixLen := len(sc.prefix())
	size := 0
	for ok := it.First(); ok; ok = it.Next() {
		if size >= maxBytes {
			return recs, last, false, it.Error()
		}
		k := it.Key()[prefixLen:]
		recs = append(recs, SnapshotRecord{Table: Table(k[0]), Key: bytes.Clone(k[1:]), Value: bytes.Clone(it.Value())})
		last = bytes.Clone(k)
		size += len(k) + len(it.Value())
	}
	return recs, last, true, it.Error()
}

// Import writes one chunk of a scope handed off from another store. The
// first chunk (first set) clears the scope; the last (final set) sets the
// fence, live, at epoch, which must be above every epoch seen anywhere.
// Until then the scope has no live fence here, so nothing serves it.
func (s *Store) Import(sc Scope, recs []SnapshotRecord, first, final bool, epoch uint64, done func(error)) {
	s.c.submit(&request{scope: sc, kind: reqImport, records: recs, first: first, final: final, epoch: epoch, done: done})
}

// Drop deletes a released scope's records, keeping its fence. It refuses
// (ErrFenced) a scope that is not released.
func (s *Store) Drop(sc Scope, done func(error)) {
	s.c.submit(&request{scope: sc, kind: reqDrop, done: done})
}
