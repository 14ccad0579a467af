package persistence

import (
	"bytes"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// ShardLog is the Log of one scope on the node that leads the scope's
// shard. Append encodes the entry as a command and hands it to propose,
// which replicates it through the shard's Raft group and calls back once it
// is committed and applied here (or failed). Reads see the replica's
// applied state overlaid with the entries appended and not yet called
// back, so the actor reads its own writes at once, as it would a local
// store.
//
// Applying an entry precedes its callback, and its ops are blind writes,
// so an entry both applied and still in the overlay reads the same as
// either alone: the overlay may drop it at the callback without a gap.
type ShardLog struct {
	s       *Store
	shard   uint32
	sc      Scope
	propose func(cmd []byte, done func(error))

	mu      sync.Mutex // guards pending: reads on the actor, callbacks on the engine
	pending []*Entry   // appended, not yet called back, oldest first
}

// ShardLog returns the log of scope sc in shard, whose entries go to
// propose.
func (s *Store) ShardLog(shard uint32, sc Scope, propose func(cmd []byte, done func(error))) *ShardLog {
	return &ShardLog{s: s, shard: shard, sc: sc, propose: propose}
}

// Append implements Log.
func (l *ShardLog) Append(e *Entry, done func(error)) {
	cmd, err := EncodeCommand(l.sc, e)
	if err != nil {
		done(err)
		return
	}
	l.mu.Lock()
	l.pending = append(l.pending, e)
	l.mu.Unlock()
	l.propose(cmd, func(err error) {
		l.mu.Lock()
		if i := slices.Index(l.pending, e); i >= 0 {
			l.pending = slices.Delete(l.pending, i, i+1)
		}
		l.mu.Unlock()
		done(err)
	})
}

// overlay returns the entries not yet called back.
func (l *ShardLog) overlay() []*Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.pending)
}

// Get implements Reader: the newest pending op on the key decides, else
// the store.
func (l *ShardLog) Get(t Table, key []byte) ([]byte, error) {
	pend := l.overlay()
	for i := len(pend) - 1; i >= 0; i-- {
		ops := pend[i].Ops
		for j := len(ops) - 1; j >= 0; j-- {
			op := ops[j]
			if op.Table != t {
				continue
			}
			switch {
			case op.Delete && op.DeleteTo != nil:
				if bytes.Compare(key, op.Key) >= 0 && bytes.Compare(key, op.DeleteTo) < 0 {
					return nil, ErrNotFound
				}
			case bytes.Equal(op.Key, key):
				if op.Delete {
					return nil, ErrNotFound
				}
				return bytes.Clone(op.Value), nil
			}
		}
	}
	return l.s.get(l.s.db, l.shard, l.sc, t, key)
}

// Scan implements Reader: with entries pending it reads through an indexed
// batch holding them over the store.
func (l *ShardLog) Scan(t Table, r Range) ([]Record, error) {
	rd, done, err := l.reader(t)
	if err != nil {
		return nil, err
	}
	defer done()
	return l.s.scan(rd, l.shard, l.sc, t, r)
}

// reader returns what a scan of tables reads: the store, or, with
// entries pending on any of them, an indexed batch holding those entries
// over the store. done releases it.
func (l *ShardLog) reader(tables ...Table) (pebble.Reader, func(), error) {
	pend := l.overlay()
	if !touches(pend, tables) {
		return l.s.db, func() {}, nil
	}
	if err := l.s.enter(); err != nil {
		return nil, nil, err
	}
	b := l.s.db.NewIndexedBatch()
	l.s.leave()
	for _, e := range pend {
		if err := writeOps(b, l.shard, l.sc, e.Ops); err != nil {
			b.Close()
			return nil, nil, err
		}
	}
	return b, func() { b.Close() }, nil
}

// touches reports whether a pending entry writes to one of tables.
func touches(pend []*Entry, tables []Table) bool {
	for _, e := range pend {
		for _, op := range e.Ops {
			if slices.Contains(tables, op.Table) {
				return true
			}
		}
	}
	return false
}
