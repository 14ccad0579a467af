package persistence

import "errors"

// Errors of the persistence layer.
var (
	// ErrNotFound means no record exists under the key.
	ErrNotFound = errors.New("persistence: not found")
	// ErrClosed means the store is closed.
	ErrClosed = errors.New("persistence: store closed")
	// ErrInvalid means the request itself is malformed (a scope id longer
	// than MaxIDLen, a nil entry, a command that does not decode). It
	// changes nothing.
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
	Ops []Op
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

// Reader reads a scope's tables.
type Reader interface {
	Get(t Table, key []byte) ([]byte, error)
	Scan(t Table, r Range) ([]Record, error)
}

// Log is the durable record of one scope (a channel or a user): its tables
// and the ordered stream of entries that change them. Reads see every entry
// whose Append has returned, durable or not; callers that must not expose
// undurable data order their replies behind the acknowledgements of
// earlier entries.
type Log interface {
	Reader
	// Append applies e and calls done once it is durable — replicated to a
	// majority of the scope's shard and applied here — or has failed.
	// Entries of one scope complete in the order appended. The log keeps
	// e's keys and values until done is called; the caller must not modify
	// them before then.
	//
	// done may run on another goroutine (or at once, on the caller's, when
	// the entry is refused) and must not block: post the result to a
	// mailbox or channel.
	Append(e *Entry, done func(error))
}
