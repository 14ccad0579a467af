// Package persistence keeps Switchboard's durable state in Pebble: one
// store per node holding the state of every shard replica the node has
// (package raftstore lays out the raft side), one Log per channel or user
// whose entries go through the scope's shard, and the node's own records.
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

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// Options configure a Store.
type Options struct {
	// FS is the filesystem; nil means the OS filesystem. Tests pass
	// vfs.NewMem() or vfs.NewCrashableMem().
	FS vfs.FS
	// CacheBytes is the block cache size (default 64 MiB).
	CacheBytes int64
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
	if o.DiskReserve == 0 {
		o.DiskReserve = 64 << 20
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = time.Second
	}
}

// Store is one node's Pebble database.
type Store struct {
	db    *pebble.DB
	popts *pebble.Options
	dir   string
	opts  Options
	guard *diskGuard
	// stage1 is set when the store holds data of the unreplicated format
	// (see format.go); nothing of it is read as stage-2 data.
	stage1 bool

	// Pebble panics on any use of a closed DB, so reads pass a gate: enter
	// fails once Close has begun, and Close waits for the reads in flight
	// before it closes the DB. mu is never held across a read.
	mu      sync.Mutex     // guards closed and readers.Add
	closed  bool           // Close has begun
	readers sync.WaitGroup // reads of db in flight

	stop    chan struct{} // ends the monitor
	monitor sync.WaitGroup
}

// Open opens (creating if needed) the store in dir. A new store is
// stamped with this format and a store id of its own; a store of an
// unknown format is refused; one of the stage-1 format opens with Stage1
// set and must be migrated (MigrateStage1) or refused by the caller. With
// too little free space on the disk to work (see Options.DiskReserve) it
// fails with an error that wraps ErrUnwritable.
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
	cache := pebble.NewCache(opts.CacheBytes)
	defer cache.Unref()
	popts := &pebble.Options{
		FS:           watchFS{FS: vfs.OnDiskFull(base, guard.diskFull), g: guard},
		Cache:        cache,
		MemTableSize: 32 << 20,
		Logger:       newPebbleLogger(opts.Logger),
	}
	// Bloom filters on every level: the idempotency check of each send is
	// a point lookup that almost always misses, and a miss should not read
	// a data block of every table it might be in.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	popts.EnsureDefaults()
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{db: db, popts: popts, dir: dir, opts: opts, guard: guard, stop: make(chan struct{})}
	if err := s.checkFormat(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	s.monitor.Add(1)
	go func() { defer s.monitor.Done(); s.watch() }()
	return s, nil
}

// watch is the store's monitor: it measures the disk every CheckEvery and
// tells OnWritable of every change. A store whose log failed is not
// re-opened under the raft engine that writes it: it refuses writes until
// the node restarts (the engine stops the node when a write fails).
func (s *Store) watch() {
	t := time.NewTicker(s.opts.CheckEvery)
	defer t.Stop()
	var told error
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.guard.check(errRestart)
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

// errRestart is the re-open of a store whose log failed: only a restart
// of the node does it.
func errRestart() error { return errors.New("the store's log failed: restart the node") }

// WriteError reports why the store refuses writes now (wrapping
// ErrUnwritable), or nil when it takes them.
func (s *Store) WriteError() error { return s.guard.err() }

// Admit decides whether n more bytes may be written now: nil, or why not
// (wrapping ErrUnwritable). The raft engine asks it before it proposes.
func (s *Store) Admit(n int64) error { return s.guard.admit(n) }

// AdmitFile decides whether a file of up to n bytes may be written on
// the store's disk beside it (an upload): the disk must keep, after it,
// twice the free space the store keeps (its whole reserve, beyond the
// ballast), so that files never bring the store to refuse writes. A
// refused file gets ErrNoRoomForFiles; while the store refuses writes,
// files get its refusal (ErrUnwritable) too. An admitted file holds its n
// bytes against other files until release is called, once it is written
// (or given up).
func (s *Store) AdmitFile(n int64) (release func(), err error) { return s.guard.admitFile(n) }

// DiskFree is the free space on the store's disk when last measured (at
// most CheckEvery ago while idle), or -1 when the disk is not watched.
func (s *Store) DiskFree() int64 { return s.guard.lastFree() }

// Writable reports whether the store takes writes now.
func (s *Store) Writable() bool { return s.guard.err() == nil }

// Close closes the database once the reads in flight are done; later reads
// fail with ErrClosed. Whoever writes to the database (the raft engine)
// must have stopped. It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.monitor.Wait()
	s.readers.Wait()
	err := closeDB(s.db)
	if s.guard.needsReopen() {
		// Pebble's log failed: it cannot close cleanly; the next open
		// replays the log up to its last whole record.
		return nil
	}
	return err
}

// closeDB closes db, turning a panic of Pebble (whose log failed) into an
// error.
func closeDB(db *pebble.DB) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("close the store: %v", p)
		}
	}()
	return db.Close()
}

// enter admits one read of the database; every nil return must be paired
// with a call to leave.
func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.readers.Add(1)
	return nil
}

func (s *Store) leave() { s.readers.Done() }

// DB returns the database, for the raft engine that writes it.
func (s *Store) DB() *pebble.DB { return s.db }

// SnapshotEnv returns where incoming shard snapshots are built.
func (s *Store) SnapshotEnv() raftstore.Env {
	fs := s.popts.FS
	return raftstore.Env{DB: s.db, FS: fs, Dir: fs.PathJoin(s.dir, "snapshots"),
		Writer: s.popts.MakeWriterOptions(0, s.db.TableFormat())}
}

// Reader returns a read-only view of scope sc in shard: what this node's
// replica has applied.
func (s *Store) Reader(shard uint32, sc Scope) Reader { return &view{s: s, shard: shard, sc: sc} }

// view reads one scope from the store.
type view struct {
	s     *Store
	shard uint32
	sc    Scope
}

func (v *view) Get(t Table, key []byte) ([]byte, error) {
	return v.s.get(v.s.db, v.shard, v.sc, t, key)
}

func (v *view) Scan(t Table, r Range) ([]Record, error) {
	return v.s.scan(v.s.db, v.shard, v.sc, t, r)
}

func (s *Store) get(r pebble.Reader, shard uint32, sc Scope, t Table, key []byte) ([]byte, error) {
	if err := sc.check(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	v, closer, err := r.Get(sc.key(shard, t, key))
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

func (s *Store) scan(r pebble.Reader, shard uint32, sc Scope, t Table, rg Range) ([]Record, error) {
	if err := sc.check(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	lower, upper := sc.tableBounds(shard, t)
	prefixLen := len(lower)
	if rg.After != nil {
		lower = append(sc.key(shard, t, rg.After), 0) // strictly above
	}
	if rg.Before != nil {
		upper = sc.key(shard, t, rg.Before)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Record
	first, next := it.First, it.Next
	if rg.Reverse {
		first, next = it.Last, it.Prev
	}
	for ok := first(); ok; ok = next() {
		out = append(out, Record{Key: bytes.Clone(it.Key()[prefixLen:]), Value: bytes.Clone(it.Value())})
		if rg.Limit > 0 && len(out) >= rg.Limit {
			break
		}
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

// GetNode reads a node-local record.
func (s *Store) GetNode(key string) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	v, closer, err := s.db.Get(raftstore.NodeKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// PutNode writes a node-local record durably (refused, like any write,
// while the disk guard refuses writes).
func (s *Store) PutNode(key string, value []byte) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	k := raftstore.NodeKey(key)
	if err := s.guard.admit(int64(len(k) + len(value))); err != nil {
		return err
	}
	b := s.db.NewBatch()
	if err := b.Set(k, value, nil); err != nil {
		b.Close()
		return err
	}
	return raftstore.Commit(b, true)
}
