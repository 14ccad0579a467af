package persistence

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// walFS wraps a filesystem to watch the syncs of Pebble's write-ahead log
// (files named *.log): it counts them, and while its gate is shut it holds
// them, so a test can keep applied entries unsynced for as long as it needs.
type walFS struct {
	vfs.FS
	syncs atomic.Int64 // completed full syncs of WAL files

	mu      sync.Mutex    // guards the fields below
	gate    chan struct{} // non-nil while shut; closed to open
	waiting int           // syncs held at the gate
}

func newWALFS(fs vfs.FS) *walFS { return &walFS{FS: fs} }

// shut makes every later WAL sync wait until open is called.
func (fs *walFS) shut() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.gate == nil {
		fs.gate = make(chan struct{})
	}
}

// open releases the held syncs and lets later ones through.
func (fs *walFS) open() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.gate != nil {
		close(fs.gate)
		fs.gate = nil
	}
}

// held reports how many syncs wait at the gate.
func (fs *walFS) held() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.waiting
}

func (fs *walFS) pass() {
	fs.mu.Lock()
	g := fs.gate
	if g != nil {
		fs.waiting++
	}
	fs.mu.Unlock()
	if g == nil {
		return
	}
	<-g
	fs.mu.Lock()
	fs.waiting--
	fs.mu.Unlock()
}

func (fs *walFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &walFile{File: f, fs: fs}, nil
}

func (fs *walFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *walFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

func (fs *walFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

type walFile struct {
	vfs.File
	fs *walFS
}

func (f *walFile) Sync() error {
	f.fs.pass()
	err := f.File.Sync()
	f.fs.syncs.Add(1)
	return err
}

func (f *walFile) SyncData() error {
	f.fs.pass()
	err := f.File.SyncData()
	f.fs.syncs.Add(1)
	return err
}

func (f *walFile) SyncTo(length int64) (bool, error) {
	f.fs.pass()
	full, err := f.File.SyncTo(length)
	if full {
		f.fs.syncs.Add(1)
	}
	return full, err
}

// eventually polls cond until it holds, failing the test at the deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
