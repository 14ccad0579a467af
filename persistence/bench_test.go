package persistence

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// BenchmarkAppendParallel appends small entries (one 100-byte event each)
// from many scopes at once on the real filesystem, each scope keeping a
// window of entries in flight as an actor pipelines. It reports the
// acknowledged (fsync'd) entries per second, the entries each WAL fsync
// acknowledged, and the entries per Pebble batch (group commit) as seen by
// Options.OnCommit.
func BenchmarkAppendParallel(b *testing.B) {
	for _, c := range []struct{ scopes, window int }{{64, 1}, {256, 1}, {256, 8}} {
		b.Run(fmt.Sprintf("scopes=%d/window=%d", c.scopes, c.window), func(b *testing.B) {
			benchAppend(b, c.scopes, c.window)
		})
	}
}

func benchAppend(b *testing.B, scopes, window int) {
	fs := newWALFS(vfs.Default)
	var batches, batched atomic.Int64
	s, err := Open(b.TempDir(), Options{FS: fs, OnCommit: func(_ time.Duration, n int) {
		batches.Add(1)
		batched.Add(int64(n))
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	logs := make([]Log, scopes)
	for i := range logs {
		logs[i] = s.Channel(fmt.Sprintf("bench-%d", i))
		mustFence(b, logs[i], 1)
	}
	payload := make([]byte, 100)
	batches.Store(0)
	batched.Store(0)
	syncs0 := fs.syncs.Load()

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, l := range logs {
		count := b.N / scopes
		if i < b.N%scopes {
			count++
		}
		wg.Go(func() {
			slots := make(chan struct{}, window)
			var pending sync.WaitGroup
			defer pending.Wait()
			for n := range count {
				slots <- struct{}{}
				pending.Add(1)
				e := &Entry{Epoch: 1}
				e.Put(TableEvent, U64(uint64(n)), payload)
				l.Append(e, func(err error) {
					if err != nil {
						b.Errorf("append: %v", err)
					}
					<-slots
					pending.Done()
				})
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
	if n := fs.syncs.Load() - syncs0; n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "entries/fsync")
	}
	if n := batches.Load(); n > 0 {
		b.ReportMetric(float64(batched.Load())/float64(n), "entries/batch")
	}
}
