package loadtest

import (
	"sync"
	"testing"
	"time"
)

// TestIntendedOf reads a send's intended time back from its client id,
// and only from this run's ids.
func TestIntendedOf(t *testing.T) {
	r := &runner{runID: "r1"}
	for id, want := range map[string]time.Duration{"r1.42.1234567890": 1234567890, "r1.0.0": 0} {
		if got, ok := r.intendedOf([]byte(id)); !ok || got != want {
			t.Errorf("%s: %v %v", id, got, ok)
		}
	}
	for _, id := range []string{"r2.42.5", "r1", "r1.", "r1x42.5", "r1.42.", "r1.42.-5", "r1.42.9223372036854775808", "r1.42.1e3"} {
		if got, ok := r.intendedOf([]byte(id)); ok {
			t.Errorf("%s: read %v", id, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { r.intendedOf([]byte("r1.42.1234567890")) }); n != 0 {
		t.Errorf("%v allocations per delivery", n)
	}
}

// TestDeliveryCountsSumShards: counts from many watchers at once add up,
// and the latest measured delivery is the largest time counted.
func TestDeliveryCountsSumShards(t *testing.T) {
	var d deliveryCounts
	var wg sync.WaitGroup
	for w := range 50 {
		wg.Go(func() {
			for i := range 100 {
				d.add(w, i%2 == 0, int64(w*1000+i))
			}
		})
	}
	wg.Wait()
	all, measured, last := d.totals()
	if all != 5000 || measured != 2500 || last != 49*1000+98 {
		t.Fatalf("totals %d %d %d", all, measured, last)
	}
}
