package persistence

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// faultFS fails writes of Pebble's log files (*.log) on demand: once with
// ENOSPC (a disk that filled up), or with EIO until healed.
type faultFS struct {
	vfs.FS
	enospc atomic.Bool // fail the next log write with ENOSPC
	eio    atomic.Bool // fail every log write and sync with EIO
}

func (fs *faultFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || len(name) < 4 || name[len(name)-4:] != ".log" {
		return f, err
	}
	return faultFile{File: f, fs: fs}, nil
}

func (fs *faultFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if fs.eio.Load() && len(name) > 4 && name[len(name)-4:] == ".log" {
		return nil, syscall.EIO
	}
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *faultFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

type faultFile struct {
	vfs.File
	fs *faultFS
}

func (f faultFile) Write(p []byte) (int, error) {
	if f.fs.enospc.CompareAndSwap(true, false) {
		return 0, syscall.ENOSPC
	}
	if f.fs.eio.Load() {
		return 0, syscall.EIO
	}
	return f.File.Write(p)
}

func (f faultFile) Sync() error {
	if f.fs.eio.Load() {
		return syscall.EIO
	}
	return f.File.Sync()
}

// guardedStore opens a store on a MemFS whose disk reports free bytes
// free, with a 1 MiB reserve (a 512 KiB ballast, 512 KiB kept free), and
// records what OnWritable is told.
func guardedStore(t *testing.T, fs vfs.FS, mem *vfs.MemFS, free uint64) (*Store, func() []error) {
	t.Helper()
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: free, TotalBytes: 4 << 30})
	var mu sync.Mutex
	var told []error
	s := openStore(t, fs, Options{DiskReserve: 1 << 20, CheckEvery: 10 * time.Millisecond, OnWritable: func(err error) {
		mu.Lock()
		told = append(told, err)
		mu.Unlock()
	}})
	return s, func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), told...)
	}
}

func setFree(mem *vfs.MemFS, free uint64) {
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: free, TotalBytes: 4 << 30})
}

// TestFullDiskRefusesWritesThenResumes: with less than the reserve free,
// writes are refused (and the refused entry breaks its epoch), barriers
// and reads go on; once there is room, writes resume by themselves.
func TestFullDiskRefusesWritesThenResumes(t *testing.T) {
	mem := vfs.NewMem()
	s, told := guardedStore(t, mem, mem, 1<<30)
	if fi, err := mem.Stat("db/" + ballastName); err != nil || fi.Size() != 512<<10 {
		t.Fatalf("ballast: %v %v", fi, err)
	}
	l := s.Channel("a")
	mustFence(t, l, 1)
	mustAppend(t, l, put(1, TableMessage, "k1", "v1"))

	setFree(mem, 100<<10)
	eventually(t, "the store to refuse writes", func() bool { return !s.Writable() })
	wantErr(t, "append on a full disk", appendWait(t, l, put(1, TableMessage, "k2", "v2")), ErrUnwritable)
	wantErr(t, "node record on a full disk", s.PutNode("x", []byte("y")), ErrUnwritable)
	done, ch := callback()
	s.Barrier(done)
	wantErr(t, "barrier on a full disk", wait(t, ch), nil)
	if got := mustGet(t, l, TableMessage, "k1"); got != "v1" {
		t.Fatalf("read on a full disk: %q", got)
	}
	if s.DiskFree() != 100<<10 {
		t.Errorf("DiskFree %d", s.DiskFree())
	}

	setFree(mem, 1<<30)
	eventually(t, "the store to take writes again", s.Writable)
	// The refused entry broke epoch 1: its successors would leave a hole.
	wantErr(t, "append after a refused entry", appendWait(t, l, put(1, TableMessage, "k3", "v3")), ErrFenced)
	mustFence(t, l, 2)
	mustAppend(t, l, put(2, TableMessage, "k4", "v4"))
	if _, err := l.Get(TableMessage, []byte("k2")); !errors.Is(err, ErrNotFound) {
		t.Errorf("the refused entry landed: %v", err)
	}
	got := told()
	if len(got) != 2 || !errors.Is(got[0], ErrUnwritable) || got[1] != nil {
		t.Errorf("OnWritable was told %v, want a refusal then nil", got)
	}
}

// TestWriteFindingTheDiskFullReleasesTheBallast: a log write that meets a
// full disk between two checks is retried with the ballast's space and
// lands; the store then refuses writes until there is room for the
// ballast again.
func TestWriteFindingTheDiskFullReleasesTheBallast(t *testing.T) {
	mem := vfs.NewMem()
	fs := &faultFS{FS: mem}
	s, _ := guardedStore(t, fs, mem, 1<<30)
	l := s.Channel("a")
	mustFence(t, l, 1)
	fs.enospc.Store(true)
	mustAppend(t, l, put(1, TableMessage, "k1", "v1"))
	if fs.enospc.Load() {
		t.Fatal("no log write met the injected ENOSPC")
	}
	if _, err := mem.Stat("db/" + ballastName); err == nil {
		t.Fatal("the ballast survived a full disk")
	}
	if s.Writable() {
		t.Fatal("the store takes writes after a write found the disk full")
	}
	eventually(t, "the ballast to come back and writes to resume", func() bool {
		fi, err := mem.Stat("db/" + ballastName)
		return err == nil && fi.Size() == 512<<10 && s.Writable()
	})
	mustAppend(t, l, put(1, TableMessage, "k2", "v2"))
	for _, k := range []string{"k1", "k2"} {
		mustGet(t, l, TableMessage, k)
	}
}

// TestFailedLogReopensTheStore: when Pebble's log fails, nothing
// unpersisted is acknowledged, writes are refused (no entry after the
// failed one lands), and once the fault is gone the store re-opens the
// database without a restart; every acknowledged entry is there.
func TestFailedLogReopensTheStore(t *testing.T) {
	mem := vfs.NewMem()
	fs := &faultFS{FS: mem}
	s, told := guardedStore(t, fs, mem, 1<<30)
	l := s.Channel("a")
	mustFence(t, l, 1)
	mustAppend(t, l, put(1, TableMessage, "k1", "v1"))

	fs.eio.Store(true)
	if err := appendWait(t, l, put(1, TableMessage, "k2", "v2")); err == nil {
		t.Fatal("an entry whose log write failed was acknowledged")
	}
	eventually(t, "the store to refuse writes", func() bool { return !s.Writable() })
	wantErr(t, "append after the log failed", appendWait(t, l, put(1, TableMessage, "k3", "v3")), ErrUnwritable)

	fs.eio.Store(false)
	eventually(t, "the store to re-open and take writes", s.Writable)
	mustGet(t, l, TableMessage, "k1")
	wantErr(t, "append in the broken epoch", appendWait(t, l, put(1, TableMessage, "k4", "v4")), ErrFenced)
	mustFence(t, l, 2)
	mustAppend(t, l, put(2, TableMessage, "k5", "v5"))
	for _, k := range []string{"k2", "k3", "k4"} {
		if _, err := l.Get(TableMessage, []byte(k)); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s, never acknowledged, is there: %v", k, err)
		}
	}
	if got := told(); len(got) < 2 || got[len(got)-1] != nil {
		t.Errorf("OnWritable was told %v", got)
	}

	// What the re-opened store acknowledged survives a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, mem, Options{})
	for _, k := range []string{"k1", "k5"} {
		mustGet(t, s2.Channel("a"), TableMessage, k)
	}
}

// TestOpenOnAFullDisk: a store does not open with less free than its
// reserve needs, and says why.
func TestOpenOnAFullDisk(t *testing.T) {
	mem := vfs.NewMem()
	setFree(mem, 100<<10)
	_, err := Open("db", Options{FS: mem, DiskReserve: 1 << 20})
	if !errors.Is(err, ErrUnwritable) {
		t.Fatalf("open on a full disk: %v", err)
	}
}
