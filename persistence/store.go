// Package persistence keeps Switchboard's durable state in Pebble: one store
// per node, one Log per channel or user, and a commit pipeline that lets one
// fsync acknowledge the entries of many actors.
package persistence

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configure a Store.
type Options struct {
	// FS is the filesystem; nil means the OS filesystem. Tests pass
	// vfs.NewMem() or vfs.NewCrashableMem().
	FS vfs.FS
	// CacheBytes is the block cache size (default 64 MiB).
	CacheBytes int64
	// MaxQueued bounds entries waiting to be applied; Append blocks (back
	// pressure) when the queue is full. Default 16384.
	MaxQueued int
	// MaxBatch bounds entries merged into one Pebble batch. Default 1024.
	MaxBatch int
	// OnCommit, when set, is called after each group commit is durable with
	// the time from apply to sync and the number of requests (entries,
	// fences, restores) it carried; refused requests are not counted. A
	// group is one Pebble batch; Pebble may serve several groups with one
	// fsync. It runs on the store goroutine that calls done callbacks.
	OnCommit func(d time.Duration, entries int)
	// Logger receives Pebble's own log lines; nil discards them. A line
	// repeated within a minute is logged once, with a count.
	Logger *slog.Logger
	// DiskReserve is the free space the store keeps on its disk: writes
	// are refused (ErrUnwritable) while less than half of it is free, and
	// the other half is a ballast file released the moment a write finds
	// the disk full anyway (see disk.go). 0: the default, 64 MiB;
	// negative: none (the disk is not watched).
	DiskReserve int64
	// CheckEvery is how often the disk is measured (default 1 s); while
	// writes are refused, whether they may resume.
	CheckEvery time.Duration
	// OnWritable, when set, is told every change of whether the store
	// takes writes: nil when it does again, else why it refuses them.
	// Calls come in order, from one goroutine.
	OnWritable func(err error)
}

func (o *Options) withDefaults() {
	if o.CacheBytes <= 0 {
		o.CacheBytes = 64 << 20
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 16384
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.DiskReserve == 0 {
		o.DiskReserve = 64 << 20
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = time.Second
	}
}

// Store is one node's Pebble database.
type Store struct {
	dir   string
	opts  Options
	fs    vfs.FS // what Pebble writes through (see disk.go)
	c     *committer
	guard *diskGuard
	log   *pebbleLogger

	// Pebble panics on any use of a closed DB, so reads pass a gate: enter
	// fails once Close has begun (or while the database is re-opened),
	// and Close waits for the reads in flight before it closes the DB. mu
	// is never held across a read.
	mu        sync.Mutex     // guards db, closed, reopening and readers.Add
	db        *pebble.DB     // nil while a re-open failed
	closed    bool           // Close has begun
	reopening bool           // a re-open waits for the reads in flight
	readers   sync.WaitGroup // reads of db in flight

	stop    chan struct{} // ends the monitor
	monitor sync.WaitGroup
}

// Open opens (creating if needed) the store in dir. With too little free
// space on the disk to work (see Options.DiskReserve) it fails with an
// error that wraps ErrUnwritable.
func Open(dir string, opts Options) (*Store, error) {
	opts.withDefaults()
	base := opts.FS
	if base == nil {
		base = vfs.Default
	}
	if err := base.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	guard, err := newDiskGuard(base, dir, opts.DiskReserve)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{dir: dir, opts: opts, guard: guard, log: newPebbleLogger(opts.Logger), stop: make(chan struct{})}
	s.fs = watchFS{FS: vfs.OnDiskFull(base, guard.diskFull), g: guard}
	if s.db, err = s.openDB(); err != nil {
		return nil, err
	}
	s.c = newCommitter(s.db, opts, guard, s.reopenDB)
	s.monitor.Add(1)
	go func() { defer s.monitor.Done(); s.watch() }()
	return s, nil
}

// openDB opens the Pebble database.
func (s *Store) openDB() (*pebble.DB, error) {
	cache := pebble.NewCache(s.opts.CacheBytes)
	defer cache.Unref()
	popts := &pebble.Options{
		FS:           s.fs,
		Cache:        cache,
		MemTableSize: 32 << 20,
		Logger:       s.log,
	}
	// Bloom filters on every level: the idempotency check of each send is
	// a point lookup that almost always misses, and a miss should not read
	// a data block of every table it might be in.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(s.dir, popts)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", s.dir, err)
	}
	return db, nil
}

// reopenDB closes the database whose log failed and opens it again: the
// log is replayed up to its last whole record, which holds every entry
// acknowledged. Reads wait meanwhile (they fail with ErrUnwritable). It
// runs on the applier goroutine (see committer.reopenDB).
func (s *Store) reopenDB() (*pebble.DB, error) {
	s.mu.Lock()
	s.reopening = true
	old := s.db
	s.mu.Unlock()
	s.readers.Wait()
	if old != nil {
		if err := old.Close(); err != nil {
			s.log.Errorf("closing the store to re-open it: %v", err)
		}
	}
	db, err := s.openDB()
	s.mu.Lock()
	s.db, s.reopening = db, false
	s.mu.Unlock()
	if err != nil {
		s.log.Errorf("re-opening the store: %v", err)
		return nil, err
	}
	return db, nil
}

// watch is the store's monitor: it measures the disk every CheckEvery
// (re-opening the database when its log failed and the disk has room),
// and tells OnWritable of every change.
func (s *Store) watch() {
	t := time.NewTicker(s.opts.CheckEvery)
	defer t.Stop()
	var told error
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.guard.check(s.reopen)
		case <-s.guard.poke:
		}
		if err := s.guard.err(); (err == nil) != (told == nil) {
			told = err
			if s.opts.OnWritable != nil {
				s.opts.OnWritable(err)
			}
		}
	}
}

// reopen has the applier re-open the database, in its turn.
func (s *Store) reopen() error {
	done := make(chan error, 1)
	s.c.submit(&request{kind: reqReopen, done: func(err error) { done <- err }})
	return <-done
}

// WriteError reports why the store refuses writes now (wrapping
// ErrUnwritable), or nil when it takes them.
func (s *Store) WriteError() error { return s.guard.err() }

// DiskFree is the free space on the store's disk when last measured (at
// most CheckEvery ago while idle), or -1 when the disk is not watched.
func (s *Store) DiskFree() int64 { return s.guard.lastFree() }

// Writable reports whether the store takes writes now.
func (s *Store) Writable() bool { return s.guard.err() == nil }

// Close stops the commit pipeline and closes the database. Requests queued
// before Close are still applied and called back before it returns; later
// ones fail with ErrClosed, and so do reads. Close waits for reads in
// flight. It is safe to call more than once. It must not be called from a
// done callback or a Scopes function (it would wait for itself).
func (s *Store) Close() error {
	if !s.c.stop() {
		return nil
	}
	close(s.stop)
	s.monitor.Wait()
	s.mu.Lock()
	s.closed = true
	db := s.db
	s.mu.Unlock()
	s.readers.Wait()
	if db == nil || s.c.fatalErr() != nil {
		return nil // nothing open, or Pebble cannot close (see applyBatch)
	}
	return db.Close()
}

// enter admits one read of the database; every nil return must be paired
// with a call to leave.
func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.reopening || s.db == nil:
		return fmt.Errorf("%w: the store is re-opening", ErrUnwritable)
	}
	s.readers.Add(1)
	return nil
}

func (s *Store) leave() { s.readers.Done() }

// Channel returns the log of one channel.
func (s *Store) Channel(id string) Log { return s.Log(Scope{Kind: KindChannel, ID: id}) }

// User returns the log of one user.
func (s *Store) User(id string) Log { return s.Log(Scope{Kind: KindUser, ID: id}) }

// Log returns the log of any scope.
func (s *Store) Log(sc Scope) Log { return &pebbleLog{s: s, scope: sc} }

// Scopes calls fn for every scope of kind k that has a fence, that is, that
// some activation has owned. It stops early when fn returns false.
func (s *Store) Scopes(k Kind, fn func(id string, epoch uint64) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{byte(k)}, UpperBound: prefixEnd([]byte{byte(k)})})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; {
		key := it.Key()
		if len(key) < 2 || len(key) < 2+int(key[1]) {
			return fmt.Errorf("persistence: malformed key %q", key)
		}
		id := string(key[2 : 2+int(key[1])])
		sc := Scope{Kind: k, ID: id}
		fenceKey := sc.key(TableFence, nil)
		if it.SeekGE(fenceKey) && bytes.Equal(it.Key(), fenceKey) {
			fs, _ := parseFence(it.Value())
			if !fn(id, fs.epoch) {
				return nil
			}
		}
		_, upper := sc.scopeBounds()
		ok = it.SeekGE(upper)
	}
	return it.Error()
}

// Restore writes a snapshot taken from another store (a hand-off): it
// replaces every record of the scope with the snapshot's and sets the fence
// to epoch, durably, in one batch.
func (s *Store) Restore(snap *Snapshot, epoch uint64) error {
	if snap == nil {
		return fmt.Errorf("%w: nil snapshot", ErrInvalid)
	}
	done := make(chan error, 1)
	s.c.submit(&request{scope: snap.Scope, kind: reqImport, records: snap.Records, first: true, final: true, replace: true,
		epoch: epoch, done: func(err error) { done <- err }})
	return <-done
}

type pebbleLog struct {
	s     *Store
	scope Scope
}

// enter checks the scope and admits one read of the store.
func (l *pebbleLog) enter() error {
	if err := l.scope.check(); err != nil {
		return err
	}
	return l.s.enter()
}

func (l *pebbleLog) Get(t Table, key []byte) ([]byte, error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.s.leave()
	v, closer, err := l.s.db.Get(l.scope.key(t, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

func (l *pebbleLog) Scan(t Table, r Range) ([]Record, error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.s.leave()
	lower, upper := l.scope.tableBounds(t)
	prefixLen := len(lower)
	if r.After != nil {
		lower = append(l.scope.key(t, r.After), 0) // strictly above
	}
	if r.Before != nil {
		upper = l.scope.key(t, r.Before)
	}
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Record
	first, next := it.First, it.Next
	if r.Reverse {
		first, next = it.Last, it.Prev
	}
	for ok := first(); ok; ok = next() {
		out = append(out, Record{Key: bytes.Clone(it.Key()[prefixLen:]), Value: bytes.Clone(it.Value())})
		if r.Limit > 0 && len(out) >= r.Limit {
			break
		}
	}
	return out, it.Error()
}

func (l *pebbleLog) Epoch() (uint64, error) {
	v, err := l.Get(TableFence, nil)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	fs, ok := parseFence(v)
	e := fs.epoch
	if !ok {
		return 0, fmt.Errorf("persistence: malformed fence of %s", l.scope)
	}
	return e, nil
}

func (l *pebbleLog) Fence(epoch uint64, done func(error)) {
	l.s.c.submit(&request{scope: l.scope, epoch: epoch, fence: true, done: done})
}

func (l *pebbleLog) Append(e *Entry, done func(error)) {
	if e == nil {
		// Refused in its turn, so that callbacks stay in order.
		l.s.c.submit(&request{scope: l.scope, err: fmt.Errorf("%w: nil entry", ErrInvalid), done: done})
		return
	}
	l.s.c.submit(&request{scope: l.scope, epoch: e.Epoch, ops: e.Ops, done: done})
}

func (l *pebbleLog) Snapshot() (*Snapshot, error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.s.leave()
	snap := l.s.db.NewSnapshot()
	defer snap.Close()
	lower, upper := l.scope.scopeBounds()
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := &Snapshot{Scope: l.scope}
	prefixLen := len(lower)
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[prefixLen:]
		t := Table(k[0])
		if t == TableFence {
			fs, _ := parseFence(it.Value())
			out.Epoch = fs.epoch
			continue
		}
		out.Records = append(out.Records, SnapshotRecord{Table: t, Key: bytes.Clone(k[1:]), Value: bytes.Clone(it.Value())})
	}
	return out, it.Error()
}

// pebbleLogger adapts slog to Pebble's logger; Fatalf is logged as an
// error and then panics, as Pebble expects it not to return. Errors are
// rate-limited: one that repeats (a background job failing again and
// again on a full disk) is logged once a minute, with how many times it
// happened since.
type pebbleLogger struct {
	l *slog.Logger

	mu   sync.Mutex // guards seen
	seen map[string]*repeated
}

type repeated struct {
	at    time.Time
	count int
}

// repeatEvery is how often one repeated error is logged.
const repeatEvery = time.Minute

func newPebbleLogger(l *slog.Logger) *pebbleLogger {
	return &pebbleLogger{l: l, seen: make(map[string]*repeated)}
}

func (p *pebbleLogger) Infof(format string, args ...any) {
	if p.l != nil {
		p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

func (p *pebbleLogger) Errorf(format string, args ...any) {
	if p.l == nil {
		return
	}
	now := time.Now()
	p.mu.Lock()
	r := p.seen[format]
	if r != nil && now.Sub(r.at) < repeatEvery {
		r.count++
		p.mu.Unlock()
		return
	}
	if len(p.seen) > 1000 {
		clear(p.seen)
	}
	since := 0
	if r != nil {
		since = r.count
	}
	p.seen[format] = &repeated{at: now}
	p.mu.Unlock()
	if since > 0 {
		p.l.Error(fmt.Sprintf(format, args...), "component", "pebble", "repeated", since)
		return
	}
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p *pebbleLogger) Fatalf(format string, args ...any) {
	if p.l != nil {
		p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	}
	panic(fmt.Sprintf(format, args...))
}

// Node-local records (the cluster registry, the node's own settings) live
// in the node scope. They are neither fenced nor handed off.

// GetNode reads a node-local record.
func (s *Store) GetNode(key string) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	v, closer, err := s.db.Get(Scope{Kind: KindNode}.key(TableMeta, []byte(key)))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// PutNode writes a node-local record durably, through the commit
// pipeline (so the disk guard applies to it too).
func (s *Store) PutNode(key string, value []byte) error {
	done := make(chan error, 1)
	s.c.submit(&request{kind: reqNode, ops: []Op{{Table: TableMeta, Key: []byte(key), Value: value}},
		done: func(err error) { done <- err }})
	return <-done
}
