package persistence

import "errors"

// Errors of the persistence layer.
var (
	// ErrFenced means a write carried an ownership epoch older than the
	// scope's current one: another activation owns the scope now.
	ErrFenced = errors.New("persistence: write fenced by a newer ownership epoch")
	// ErrNotFound means no record exists under the key.
	ErrNotFound = errors.New("persistence: not found")
	// ErrClosed means the store is closed or has failed.
	ErrClosed = errors.New("persistence: store closed")
	// ErrInvalid means the request itself is malformed (a scope id longer
	// than MaxIDLen, an entry that writes the fence, a nil entry or
	// snapshot). It changes nothing.
	ErrInvalid = errors.New("persistence: invalid request")
)

// Op is one change of an entry.
type Op struct {
	Table Table
	Key   []byte
	// Value is the new record; nil with Delete set removes the key.
	Value  []byte
	Delete bool
	// DeleteTo, when set with Delete, removes every key of the table in
	// [Key, DeleteTo).
	DeleteTo []byte
}

// Entry is one atomic change to a scope: every op lands, or none does.
type Entry struct {
	// Epoch is the ownership epoch of the activation that made the entry.
	// The entry is refused with ErrFenced unless it equals the scope's fence.
	Epoch uint64
	Ops   []Op
}

// Put appends a put to e.
func (e *Entry) Put(t Table, key, value []byte) {
	e.Ops = append(e.Ops, Op{Table: t, Key: key, Value: value})
}

// Del appends a delete to e.
func (e *Entry) Del(t Table, key []byte) {
	e.Ops = append(e.Ops, Op{Table: t, Key: key, Delete: true})
}

// DelRange appends a range delete of [from, to) to e. A nil from is the
// start of the table; to must not be nil (an Op with Delete set and a nil
// DeleteTo deletes the single key Key). A range with from >= to deletes
// nothing.
func (e *Entry) DelRange(t Table, from, to []byte) {
	e.Ops = append(e.Ops, Op{Table: t, Key: from, Delete: true, DeleteTo: to})
}

// Empty reports whether e changes nothing.
func (e *Entry) Empty() bool { return e == nil || len(e.Ops) == 0 }

// Record is one key and value read back from a table.
type Record struct {
	Key   []byte
	Value []byte
}

// Range selects keys of one table: those strictly above After (when set)
// and strictly below Before (when set), at most Limit of them (0 or less:
// no limit), in descending key order when Reverse is set. A nil bound is no
// bound; an empty, non-nil one is a bound (Before: []byte{} selects
// nothing).
type Range struct {
	After   []byte
	Before  []byte
	Limit   int
	Reverse bool
}

// Reader reads a scope's tables. Reads see every entry whose Append has
// returned, durable or not; callers that must not expose undurable data
// order their replies behind the acknowledgements of earlier entries.
type Reader interface {
	Get(t Table, key []byte) ([]byte, error)
	Scan(t Table, r Range) ([]Record, error)
}

// Snapshot is every record of one scope at one instant, with its fence.
type Snapshot struct {
	Scope   Scope
	Epoch   uint64
	Records []SnapshotRecord
}

// SnapshotRecord is one record of a snapshot.
type SnapshotRecord struct {
	Table Table
	Key   []byte
	Value []byte
}

// Log is the durable record of one scope (a channel or a user): its tables
// and the ordered stream of entries that change them. It is the seam for
// replication: a replicated implementation appends to the replicas too
// before it reports an entry durable.
type Log interface {
	Reader
	// Fence raises the scope's ownership epoch to epoch and calls done once
	// that is durable. It fails with ErrFenced when the scope's epoch is
	// already epoch or higher. Entries with an older epoch are refused from
	// then on.
	Fence(epoch uint64, done func(error))
	// Epoch returns the scope's current fence (0 for a scope never fenced).
	Epoch() (uint64, error)
	// Append applies e and calls done once it is durable (synced to disk) or
	// has failed. Entries of one scope complete in the order appended. The
	// log keeps e's keys and values until done is called; the caller must
	// not modify them before then.
	//
	// done runs on a store goroutine and must not block. It must not call
	// Close or Restore, nor Append or Fence on the same store: those block
	// (on a full queue, or until the pipeline stops) and the pipeline waits
	// for done to return. Post the result to a mailbox or channel instead.
	Append(e *Entry, done func(error))
	// Snapshot returns every record of the scope at one instant.
	Snapshot() (*Snapshot, error)
}
