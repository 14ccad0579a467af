package workers

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// maxKept is the tests' pool size.
const maxKept = 64

// TestWorkersNeverWait: a run that blocks holds up no other (Schedule
// starts a goroutine when no kept one is idle), and every run happens.
func TestWorkersNeverWait(t *testing.T) {
	t.Parallel()
	w := New(maxKept, 300)
	defer w.Close()
	release := make(chan struct{})
	var wg sync.WaitGroup
	const blocked = maxKept + 8 // more than are ever kept
	wg.Add(blocked)
	for range blocked {
		w.Schedule(func() { defer wg.Done(); <-release })
	}
	ran := make(chan struct{})
	w.Schedule(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("a run waited behind blocked ones")
	}
	close(release)
	wg.Wait()
	if w.Throughput() != 300 {
		t.Errorf("throughput %d", w.Throughput())
	}
}

// TestWorkersKeepGoroutines: runs one after another reuse the kept
// goroutines instead of starting one each, and close ends them.
func TestWorkersKeepGoroutines(t *testing.T) {
	t.Parallel()
	w := New(maxKept, 300)
	done := make(chan struct{})
	w.Schedule(func() { close(done) })
	<-done
	// Wait for the first goroutine to be kept and idle.
	deadline := time.Now().Add(10 * time.Second)
	for w.kept.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("kept %d goroutines, want 1", w.kept.Load())
		}
		runtime.Gosched()
	}
	const runs = 200
	for range runs {
		done := make(chan struct{})
		w.Schedule(func() { close(done) })
		<-done
		runtime.Gosched()
	}
	// Without reuse every run would have kept its goroutine, up to
	// maxKept.
	if k := w.kept.Load(); k < 1 || k >= maxKept/4 {
		t.Errorf("after %d runs one after another, %d goroutines kept; want a few", runs, k)
	}
	w.Close()
	for w.kept.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d kept goroutines after close", w.kept.Load())
		}
		runtime.Gosched()
	}
	// After close a run still runs, on a goroutine of its own.
	done = make(chan struct{})
	w.Schedule(func() { close(done) })
	<-done
}
