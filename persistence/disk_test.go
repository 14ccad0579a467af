package persistence

import (
	"errors"
	"strings"
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

// eventually polls cond until it holds, failing the test at the deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func mustGetNode(t *testing.T, s *Store, key, want string) {
	t.Helper()
	v, err := s.GetNode(key)
	if err != nil || string(v) != want {
		t.Fatalf("node record %s: %q %v, want %q", key, v, err, want)
	}
}

// TestFullDiskRefusesWritesThenResumes: with less than the reserve free,
// writes are refused (Admit, which the raft engine asks before it
// proposes, and node records), reads go on; once there is room, writes
// resume by themselves.
func TestFullDiskRefusesWritesThenResumes(t *testing.T) {
	mem := vfs.NewMem()
	s, told := guardedStore(t, mem, mem, 1<<30)
	if fi, err := mem.Stat("db/" + ballastName); err != nil || fi.Size() != 512<<10 {
		t.Fatalf("ballast: %v %v", fi, err)
	}
	wantErr(t, "node record", s.PutNode("k1", []byte("v1")), nil)

	setFree(mem, 100<<10)
	eventually(t, "the store to refuse writes", func() bool { return !s.Writable() })
	wantErr(t, "node record on a full disk", s.PutNode("k2", []byte("v2")), ErrUnwritable)
	wantErr(t, "admit on a full disk", s.Admit(1), ErrUnwritable)
	wantErr(t, "write error on a full disk", s.WriteError(), ErrUnwritable)
	mustGetNode(t, s, "k1", "v1")
	if s.DiskFree() != 100<<10 {
		t.Errorf("DiskFree %d", s.DiskFree())
	}

	setFree(mem, 1<<30)
	eventually(t, "the store to take writes again", s.Writable)
	wantErr(t, "admit after the disk has room", s.Admit(1), nil)
	wantErr(t, "node record after the disk has room", s.PutNode("k3", []byte("v3")), nil)
	if _, err := s.GetNode("k2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the refused record landed: %v", err)
	}
	got := told()
	if len(got) != 2 || !errors.Is(got[0], ErrUnwritable) || got[1] != nil {
		t.Errorf("OnWritable was told %v, want a refusal then nil", got)
	}
}

// TestAdmitRefusesWhatWouldEatTheReserve: a write that would leave less
// than the reserve free is refused before anything reaches the disk.
func TestAdmitRefusesWhatWouldEatTheReserve(t *testing.T) {
	mem := vfs.NewMem()
	s, _ := guardedStore(t, mem, mem, 1<<30)
	wantErr(t, "a small write", s.Admit(1<<10), nil)
	wantErr(t, "a write as big as the disk", s.Admit(1<<30), ErrUnwritable)
	if s.Writable() {
		t.Fatal("the store takes writes after one would have filled the disk")
	}
}

// TestAdmitFileKeepsTheStoresReserve: a file is admitted only while the
// disk keeps, after it, the store's whole reserve free; a refused file
// leaves the store taking writes; while the store refuses writes, so are
// files.
func TestAdmitFileKeepsTheStoresReserve(t *testing.T) {
	mem := vfs.NewMem()
	// 1 MiB reserve: 512 KiB ballast, 512 KiB kept free; files keep 1 MiB.
	s, _ := guardedStore(t, mem, mem, 3<<20)
	admit := func(n int64) (func(), error) {
		release, err := s.AdmitFile(n)
		if (release == nil) != (err != nil) {
			t.Fatalf("AdmitFile(%d): release %v with error %v", n, release != nil, err)
		}
		return release, err
	}
	first, err := admit(1 << 20)
	wantErr(t, "a file leaving 2 MiB free", err, nil)
	_, err = admit(3 << 19)
	wantErr(t, "a second file while the first is written", err, ErrNoRoomForFiles)
	setFree(mem, 2<<20) // the first landed
	first()
	first() // once only
	_, err = admit(3 << 19)
	wantErr(t, "a file that would leave 512 KiB", err, ErrNoRoomForFiles)
	if !s.Writable() {
		t.Fatal("a refused file made the store refuse writes")
	}
	wantErr(t, "a store write beside it", s.Admit(1<<10), nil)
	_, err = admit(1 << 20)
	wantErr(t, "a file leaving exactly 1 MiB", err, nil)

	setFree(mem, 100<<10)
	eventually(t, "the store to refuse writes", func() bool { return !s.Writable() })
	_, err = admit(1)
	wantErr(t, "a file on a full disk", err, ErrUnwritable)
}

// TestWriteFindingTheDiskFullReleasesTheBallast: a log write that meets a
// full disk between two checks is retried with the ballast's space and
// lands; the store then refuses writes until there is room for the
// ballast again.
func TestWriteFindingTheDiskFullReleasesTheBallast(t *testing.T) {
	mem := vfs.NewMem()
	fs := &faultFS{FS: mem}
	s, _ := guardedStore(t, fs, mem, 1<<30)
	fs.enospc.Store(true)
	wantErr(t, "node record meeting a full disk", s.PutNode("k1", []byte("v1")), nil)
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
	wantErr(t, "node record after the ballast is back", s.PutNode("k2", []byte("v2")), nil)
	mustGetNode(t, s, "k1", "v1")
	mustGetNode(t, s, "k2", "v2")
}

// TestFailedLogRefusesWritesUntilRestart: when Pebble's log fails, the
// write is not acknowledged and the store refuses writes — even once the
// fault is gone, since the raft engine cannot go on over a database whose
// log failed; a restart replays the log, which holds every acknowledged
// write.
func TestFailedLogRefusesWritesUntilRestart(t *testing.T) {
	mem := vfs.NewMem()
	fs := &faultFS{FS: mem}
	s, _ := guardedStore(t, fs, mem, 1<<30)
	wantErr(t, "node record", s.PutNode("k1", []byte("v1")), nil)

	fs.eio.Store(true)
	if err := s.PutNode("k2", []byte("v2")); err == nil {
		t.Fatal("a record whose log write failed was acknowledged")
	}
	eventually(t, "the store to refuse writes", func() bool { return !s.Writable() })
	fs.eio.Store(false)
	setFree(mem, 1<<29)
	eventually(t, "the monitor to measure the disk again", func() bool { return s.DiskFree() == 1<<29 })
	if err := s.WriteError(); !errors.Is(err, ErrUnwritable) || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("after the log failed: %v, want a refusal until restart", err)
	}
	wantErr(t, "node record after the log failed", s.PutNode("k3", []byte("v3")), ErrUnwritable)
	mustGetNode(t, s, "k1", "v1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, mem, Options{})
	mustGetNode(t, s2, "k1", "v1")
	for _, k := range []string{"k2", "k3"} {
		if _, err := s2.GetNode(k); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s, never acknowledged, is there: %v", k, err)
		}
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
