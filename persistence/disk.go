package persistence

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A full disk.
//
// Pebble does not survive a failed write of its write-ahead log: the log
// writer keeps the error, every later sync fails with it, and the next
// write that needs a new log block or a new log file panics. So the store
// keeps Pebble from ever meeting a full disk, and refuses writes itself
// while the disk is (nearly) full:
//
//   - Writes are refused (ErrUnwritable) while the disk has less than
//     reserve/2 bytes free: checked before each group commit against the
//     free space last measured minus what was written since, and measured
//     again when that estimate runs low.
//   - A ballast file of reserve/2 bytes (BALLAST in the store's
//     directory) holds space back. Should a write find the disk full
//     anyway — another program filled it between two checks — Pebble's
//     disk-full hook (vfs.OnDiskFull) deletes the ballast and retries the
//     write once, which then succeeds; the store refuses writes from then
//     on.
//   - While writes are refused, the store measures the disk every
//     CheckEvery. Once there is room for the ballast and reserve/2 free
//     beyond it (and a half more, so a disk that hovers at the line does
//     not flap), it puts the ballast back and takes writes again. No
//     restart is needed.
//   - Should Pebble's log fail all the same (the ballast was not enough,
//     or an I/O error), the store refuses writes until the node restarts:
//     the raft engine cannot go on over a log that lost a write it had
//     asked for (it stops, and the node with it), and re-opening the
//     database replays the log up to its last whole record, which holds
//     every acknowledged write (a write is acknowledged only after its
//     sync succeeded).
//
// Reads go on throughout.

// ErrUnwritable means the store refuses writes for now (the disk is
// full, or its log failed and the node must restart); reads still work.
// Retry later: writes resume by themselves once the disk has room.
var ErrUnwritable = errors.New("persistence: store refuses writes")

// RetryAfter is how long a caller refused with ErrUnwritable should wait
// before retrying.
const RetryAfter = time.Second

// ballastName is the ballast file in the store's directory.
const ballastName = "BALLAST"

// diskGuard watches the free space of the store's disk.
type diskGuard struct {
	fs      vfs.FS // the filesystem under Pebble's disk-full hook
	dir     string
	ballast int64 // bytes; 0: no guard
	minFree int64

	// poke tells the store's monitor that the refusal changed; it tells
	// the store's owner (Options.OnWritable), in order, off every lock
	// and off Pebble's write path.
	poke chan struct{}

	mu       sync.Mutex // guards the fields below
	free     int64      // free bytes when last measured
	written  int64      // bytes committed since
	refusing error      // why writes are refused (nil: they are not)
	files    int64      // bytes admitted to files not yet written (admitFile)
	// poisoned is set when Pebble's log failed: the database must be
	// re-opened before writes resume.
	poisoned error

	stall stallGate // holds every write while the disk is stalled (stall.go)
}

// newDiskGuard measures the disk of dir and puts the ballast in place,
// or reports that the disk is too full to start. A reserve of 0, or a
// filesystem that cannot measure its disk, guards nothing.
func newDiskGuard(fs vfs.FS, dir string, reserve int64) (*diskGuard, error) {
	g := &diskGuard{fs: fs, dir: dir, poke: make(chan struct{}, 1)}
	if reserve <= 0 {
		return g, nil
	}
	free, err := g.measure()
	if errors.Is(err, vfs.ErrUnsupported) {
		return g, nil
	}
	if err != nil {
		return nil, fmt.Errorf("measure the disk of %s: %w", dir, err)
	}
	g.ballast, g.minFree, g.free = reserve/2, reserve-reserve/2, free
	missing := g.ballast - g.ballastSize()
	if free-missing < g.minFree {
		hint := ""
		if missing <= 0 {
			hint = fmt.Sprintf(" (in an emergency, deleting %s frees %d bytes)", g.fs.PathJoin(dir, ballastName), g.ballast)
		}
		return nil, fmt.Errorf("%w: disk full: %s has %d bytes free; the store needs %d more for its ballast and %d free beyond it (--disk-reserve %d): free space on the disk%s",
			ErrUnwritable, dir, free, max(missing, 0), g.minFree, reserve, hint)
	}
	if missing > 0 {
		if err := g.putBallast(); err != nil {
			return nil, fmt.Errorf("create %s: %w", g.fs.PathJoin(dir, ballastName), err)
		}
		g.free -= missing
	}
	return g, nil
}

func (g *diskGuard) enabled() bool { return g.ballast > 0 }

func (g *diskGuard) measure() (int64, error) {
	u, err := g.fs.GetDiskUsage(g.dir)
	if err != nil {
		return 0, err
	}
	return int64(min(u.AvailBytes, 1<<62)), nil
}

// ballastSize is the ballast's size on disk now (0: gone).
func (g *diskGuard) ballastSize() int64 {
	fi, err := g.fs.Stat(g.fs.PathJoin(g.dir, ballastName))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// putBallast (re)creates the ballast at its full size.
func (g *diskGuard) putBallast() error {
	path := g.fs.PathJoin(g.dir, ballastName)
	tmp := path + ".tmp"
	f, err := g.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if err := fill(f, g.ballast); err != nil {
		f.Close()
		_ = g.fs.Remove(tmp)
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		_ = g.fs.Remove(tmp)
		return err
	}
	return g.fs.Rename(tmp, path)
}

// fill makes f n bytes long, with its blocks allocated: preallocated
// where the filesystem can (allocate, per platform), else written.
func fill(f vfs.File, n int64) error {
	if allocate(f, n) == nil {
		return nil
	}
	zero := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(zero)))
		if _, err := f.Write(zero[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// lastFree is the free space last measured (-1: the disk is not watched).
func (g *diskGuard) lastFree() int64 {
	if !g.enabled() {
		return -1
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.free
}

// err is why writes are refused now (nil: they are not).
func (g *diskGuard) err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refusing
}

// refuse starts refusing writes for reason (kept if already refusing).
func (g *diskGuard) refuse(reason error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refuseLocked(reason)
}

func (g *diskGuard) refuseLocked(reason error) {
	if g.refusing != nil {
		return
	}
	g.refusing = fmt.Errorf("%w: %w", ErrUnwritable, reason)
	g.pokeMonitor()
}

func (g *diskGuard) pokeMonitor() {
	select {
	case g.poke <- struct{}{}:
	default:
	}
}

// resume takes writes again.
func (g *diskGuard) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refusing == nil {
		return
	}
	g.refusing = nil
	g.pokeMonitor()
}

// admit decides whether a group of n bytes may be committed.
func (g *diskGuard) admit(n int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refusing != nil {
		return g.refusing
	}
	if !g.enabled() {
		return nil
	}
	if g.free-g.written-n < g.minFree {
		free, err := g.measure()
		if err == nil {
			g.free, g.written = free, 0
		}
		if g.free-n < g.minFree {
			g.refuseLocked(fmt.Errorf("disk full: %d bytes free, the store keeps %d", g.free, g.minFree))
			return g.refusing
		}
	}
	g.written += n
	return nil
}

// ErrNoRoomForFiles means a file may not be written beside the store:
// the disk would be left with less than the store's whole reserve free.
// The store itself still takes writes.
var ErrNoRoomForFiles = errors.New("persistence: no room on the disk for files")

// admitFile decides whether a file of up to n bytes may be written on
// the disk beside the store (Store.AdmitFile). It measures the disk each
// time (a file is rarer than a commit, and the store's estimate does not
// see what Pebble preallocates), less the files admitted and not yet
// written.
func (g *diskGuard) admitFile(n int64) (release func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refusing != nil {
		return nil, g.refusing
	}
	if !g.enabled() {
		return func() {}, nil
	}
	if free, err := g.measure(); err == nil {
		g.free, g.written = free, 0
	}
	keep := 2 * g.minFree
	if g.free-g.files-n < keep {
		return nil, fmt.Errorf("%w: %d bytes free, %d promised to files being written, and a file of up to %d bytes would leave less than the %d kept for the store",
			ErrNoRoomForFiles, g.free, g.files, n, keep)
	}
	g.files += n
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.files -= n
			g.mu.Unlock()
		})
	}, nil
}

// poison records that Pebble's log failed with err: writes are refused
// until the database is re-opened.
func (g *diskGuard) poison(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.poisoned == nil {
		g.poisoned = err
	}
	g.refuseLocked(fmt.Errorf("the store's log failed (restart the node): %w", err))
}

// needsReopen reports whether the database must be re-opened.
func (g *diskGuard) needsReopen() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.poisoned != nil
}

// writeFailed records a failed write to one of Pebble's files: a log
// file's failure poisons the database; any other (a flush, a compaction,
// which Pebble retries) refuses writes until the disk has room.
func (g *diskGuard) writeFailed(wal bool, err error) {
	if wal {
		g.poison(err)
		return
	}
	g.refuse(fmt.Errorf("a write to the disk failed: %w", err))
}

// diskFull is Pebble's disk-full hook: a write found no space. It gives
// the ballast's space to that write (which Pebble then retries once)
// and refuses writes from now on. Writes wait while it runs: it does
// little.
func (g *diskGuard) diskFull() {
	_ = g.fs.Remove(g.fs.PathJoin(g.dir, ballastName))
	g.refuse(errors.New("disk full: a write found no space (the ballast was released)"))
}

// check measures the disk: it starts refusing writes when too little is
// free, and while refusing puts the ballast back and resumes once there
// is room. When the log failed, reopen must succeed before writes resume.
// It runs on the store's monitor goroutine only.
func (g *diskGuard) check(reopen func() error) {
	if !g.needsReopen() {
		reopen = nil
	}
	if !g.enabled() {
		if g.err() != nil && (reopen == nil || reopen() == nil) {
			g.clearPoison()
			g.resume()
		}
		return
	}
	free, err := g.measure()
	if err != nil {
		return
	}
	g.mu.Lock()
	g.free, g.written = free, 0
	refusing := g.refusing != nil
	if !refusing && free < g.minFree {
		g.refuseLocked(fmt.Errorf("disk full: %d bytes free, the store keeps %d", free, g.minFree))
	}
	g.mu.Unlock()
	if !refusing {
		return
	}
	missing := max(g.ballast-g.ballastSize(), 0)
	if free-missing < g.minFree+g.minFree/2 {
		return // not yet
	}
	if missing > 0 {
		if err := g.putBallast(); err != nil {
			return
		}
	}
	if reopen != nil {
		if err := reopen(); err != nil {
			return
		}
		g.clearPoison()
	}
	g.mu.Lock()
	if f, err := g.measure(); err == nil {
		g.free, g.written = f, 0
	}
	g.mu.Unlock()
	g.resume()
}

func (g *diskGuard) clearPoison() {
	g.mu.Lock()
	g.poisoned = nil
	g.mu.Unlock()
}

// watchFS tells the guard of every failed write to Pebble's files.
type watchFS struct {
	vfs.FS
	g *diskGuard
}

func (fs watchFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return watchFile{File: f, g: fs.g, wal: strings.HasSuffix(name, ".log")}, nil
}

func (fs watchFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs watchFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

func (fs watchFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

type watchFile struct {
	vfs.File
	g   *diskGuard
	wal bool // a write-ahead log file
}

func (f watchFile) failed(err error) error {
	if err != nil {
		f.g.writeFailed(f.wal, err)
	}
	return err
}

func (f watchFile) Write(p []byte) (int, error) {
	f.g.stall.wait()
	n, err := f.File.Write(p)
	return n, f.failed(err)
}

func (f watchFile) WriteAt(p []byte, off int64) (int, error) {
	f.g.stall.wait()
	n, err := f.File.WriteAt(p, off)
	return n, f.failed(err)
}

func (f watchFile) Sync() error {
	f.g.stall.waitSync()
	return f.failed(f.File.Sync())
}

func (f watchFile) SyncData() error {
	f.g.stall.waitSync()
	return f.failed(f.File.SyncData())
}

func (f watchFile) SyncTo(length int64) (bool, error) {
	f.g.stall.waitSync()
	full, err := f.File.SyncTo(length)
	return full, f.failed(err)
}
