package persistence

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The crash test runs many pipelining appenders over many scopes on a
// crashable in-memory filesystem, records every entry acknowledged with
// done(nil), and at a random moment clones the filesystem as a crash would
// leave it. The store reopened on the clone must hold every entry
// acknowledged before the clone, and each scope's entries must be a
// contiguous prefix of what was appended.

const (
	crashScopes = 50
	crashWindow = 4 // entries each appender keeps in flight, as an actor pipelines
)

func TestCrashKeepsAcknowledgedEntries(t *testing.T) {
	variants := []struct {
		name     string
		unsynced int // CrashCloneCfg.UnsyncedDataPercent
	}{
		{"synced-only", 0},
		{"some-unsynced", 50},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			for round := range 4 {
				seed := uint64(1000*v.unsynced + round + 1)
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					crashRound(t, seed, v.unsynced)
				})
			}
		})
	}
}

func crashRound(t *testing.T, seed uint64, unsyncedPercent int) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	mem := vfs.NewCrashableMem()
	fs := newWALFS(mem)
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	for i := range crashScopes {
		mustFence(t, s.Channel(crashID(i)), 1)
	}

	crashAt := 300 + rng.IntN(2000)
	flushAt := 1 + rng.IntN(crashAt-1)
	// In gated rounds the WAL's syncs are held from the crash point on until
	// every appender has its window full, so the clone is taken with entries
	// applied to Pebble but not synced: an acknowledgement sent before the
	// sync would show up as a lost entry.
	gated := rng.IntN(2) == 0
	acks := newAckSet(crashScopes, flushAt, crashAt)
	stop := make(chan struct{})
	errs := make(chan error, crashScopes*crashWindow+1)
	var appenders, flusher sync.WaitGroup
	stopped := false
	shutdown := func() {
		if stopped {
			return
		}
		stopped = true
		fs.open()
		close(stop)
		appenders.Wait()
		flusher.Wait()
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	t.Cleanup(shutdown)
	for i := range crashScopes {
		appenders.Go(func() { crashAppender(s.Channel(crashID(i)), i, stop, acks, errs) })
	}
	// A memtable flush in the middle of the run moves data from the WAL to
	// sstables and the manifest; the crash must not lose it either.
	flusher.Go(func() {
		select {
		case <-acks.reached[0]:
			if err := s.db.Flush(); err != nil {
				select {
				case errs <- fmt.Errorf("flush: %w", err):
				default:
				}
			}
		case <-stop:
		}
	})

	select {
	case <-acks.reached[1]:
	case err := <-errs:
		t.Fatalf("before the crash: %v", err)
	case <-time.After(waitLimit):
		t.Fatalf("only %d acknowledgements within %v", acks.count(), waitLimit)
	}
	if gated {
		// A flush rotates the WAL, which waits for the old WAL's sync while
		// holding Pebble's commit lock: let it finish before holding syncs.
		flusher.Wait()
		fs.shut()
		eventually(t, "a WAL sync to reach the gate", func() bool { return fs.held() > 0 })
		base := acks.count()
		eventually(t, "every window to fill", func() bool {
			return acks.inflight.Load() == crashScopes*crashWindow || acks.count() > base
		})
	}
	acked := acks.snapshot() // strictly before the clone
	cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPercent}
	if unsyncedPercent > 0 {
		cfg.RNG = rand.New(rand.NewPCG(seed, 0xc1a5))
	}
	crashed := mem.CrashClone(cfg)
	shutdown()
	close(errs)
	for err := range errs {
		t.Errorf("appender: %v", err)
	}

	r, err := Open("db", Options{FS: crashed})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Errorf("close reopened: %v", err)
		}
	}()
	nAcked, nKept := 0, 0
	for i := range crashScopes {
		nAcked += len(acked[i])
		nKept += checkCrashedScope(t, r.Channel(crashID(i)), i, acked[i])
	}
	t.Logf("crash after %d acks (flush at %d, gated %v): %d acked before the clone, %d entries recovered",
		crashAt, flushAt, gated, nAcked, nKept)
}

func crashID(i int) string { return fmt.Sprintf("room-%02d", i) }

// crashPayload is entry n's event of scope i; its length varies so that
// entries straddle the filesystem's blocks.
func crashPayload(i int, n uint64) []byte {
	return bytes.Repeat([]byte{byte('a' + (uint64(i)+n)%26)}, 8+int(n*37%300))
}

// crashAppender appends entries 1, 2, ... to l until stop, keeping up to
// crashWindow in flight, and waits for all of them before returning.
func crashAppender(l Log, i int, stop <-chan struct{}, acks *ackSet, errs chan<- error) {
	slots := make(chan struct{}, crashWindow)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for n := uint64(1); ; n++ {
		select {
		case <-stop:
			return
		case slots <- struct{}{}:
		}
		e := &Entry{Epoch: 1}
		e.Put(TableMeta, nil, U64(n))
		e.Put(TableEvent, U64(n), crashPayload(i, n))
		inflight.Add(1)
		acks.inflight.Add(1)
		l.Append(e, func(err error) {
			acks.inflight.Add(-1)
			switch {
			case err == nil:
				acks.add(i, n)
			case !errors.Is(err, ErrClosed):
				select { // the first few errors tell the story
				case errs <- fmt.Errorf("scope %d entry %d: %w", i, n, err):
				default:
				}
			}
			<-slots
			inflight.Done()
		})
	}
}

// checkCrashedScope checks one scope of the reopened store and returns how
// many entries it holds.
func checkCrashedScope(t *testing.T, l Log, i int, acked map[uint64]bool) int {
	t.Helper()
	if ep, err := l.Epoch(); err != nil || ep != 1 {
		t.Errorf("scope %d: epoch %d, %v; want 1", i, ep, err)
	}
	recs := mustScan(t, l, TableEvent, Range{})
	for j, rec := range recs {
		want := uint64(j + 1)
		if n, _ := ParseU64(rec.Key); n != want {
			t.Errorf("scope %d: hole: event %d follows event %d", i, n, j)
			break
		}
		if !bytes.Equal(rec.Value, crashPayload(i, want)) {
			t.Errorf("scope %d: event %d has a wrong value", i, want)
		}
	}
	kept := uint64(len(recs))
	counter, err := l.Get(TableMeta, nil)
	switch {
	case kept == 0 && !errors.Is(err, ErrNotFound):
		t.Errorf("scope %d: no events but counter %x, %v", i, counter, err)
	case kept > 0 && !bytes.Equal(counter, U64(kept)):
		t.Errorf("scope %d: %d events but counter %x, %v (entries not atomic)", i, kept, counter, err)
	}
	lost, first := 0, uint64(0)
	for n := range acked {
		if n > kept {
			lost++
			if first == 0 || n < first {
				first = n
			}
		}
	}
	if lost > 0 {
		t.Errorf("scope %d: %d acknowledged entries lost, from entry %d (recovered %d)", i, lost, first, kept)
	}
	// The recovered store goes on where the crash left it.
	next := &Entry{Epoch: 1}
	next.Put(TableEvent, U64(kept+1), crashPayload(i, kept+1))
	mustAppend(t, l, next)
	return int(kept)
}

// ackSet records acknowledged entries and signals when the total reaches
// each of its thresholds.
type ackSet struct {
	mu         sync.Mutex // guards the fields below
	acked      []map[uint64]bool
	total      int
	thresholds []int
	reached    []chan struct{}

	inflight atomic.Int64 // entries appended and not yet called back
}

func newAckSet(scopes int, thresholds ...int) *ackSet {
	a := &ackSet{acked: make([]map[uint64]bool, scopes), thresholds: thresholds}
	for i := range a.acked {
		a.acked[i] = make(map[uint64]bool)
	}
	for range thresholds {
		a.reached = append(a.reached, make(chan struct{}))
	}
	return a
}

func (a *ackSet) add(scope int, n uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acked[scope][n] = true
	a.total++
	for k, th := range a.thresholds {
		if a.total == th {
			close(a.reached[k])
		}
	}
}

func (a *ackSet) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}

func (a *ackSet) snapshot() []map[uint64]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]map[uint64]bool, len(a.acked))
	for i, m := range a.acked {
		out[i] = make(map[uint64]bool, len(m))
		for n := range m {
			out[i][n] = true
		}
	}
	return out
}
