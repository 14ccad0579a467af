package main

import (
	"runtime"
	rtmetrics "runtime/metrics"
	"testing"
	"time"
)

func TestHeapFloorPercent(t *testing.T) {
	h := &heapFloor{floor: 128 << 20, base: 100}
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 3100},              // below the runtime's 4 MiB minimum: as 4 MiB
		{4 << 20, 3100},        // 4 MiB × 32 = 128 MiB
		{32 << 20, 300},        // 32 MiB × 4
		{48 << 20, 166},        // 48 MiB × 2.66…: the goal rounds below the floor by under 1 %
		{64 << 20, 100},        // the floor is GOGC's own goal
		{100 << 20, 100},       // the floor would ask for less than GOGC
		{1 << 30, 100},         // far above the floor
		{1, 3100},              // tiny
		{128 << 20, 100},       // at the floor
		{(128 << 20) - 1, 100}, // just under it: 0.0000007 % more is still GOGC's
	} {
		if got := h.percent(c.live); got != c.want {
			t.Errorf("percent(%d) = %d, want %d", c.live, got, c.want)
		}
	}
	// A higher GOGC is kept; a huge floor is bounded.
	if got := (&heapFloor{floor: 128 << 20, base: 400}).percent(32 << 20); got != 400 {
		t.Errorf("base 400: percent = %d, want 400", got)
	}
	if got := (&heapFloor{floor: 1 << 50, base: 100}).percent(0); got != maxGCPercent {
		t.Errorf("huge floor: percent = %d, want %d", got, maxGCPercent)
	}
}

// TestHeapFloorFollowsCollections checks the floor is applied at start and
// again after collections, as the live heap changes.
func TestHeapFloorFollowsCollections(t *testing.T) {
	gogc := func() int {
		s := []rtmetrics.Sample{{Name: "/gc/gogc:percent"}}
		rtmetrics.Read(s)
		return int(s[0].Value.Uint64())
	}
	startHeapFloor(512 << 20)
	if got := gogc(); got <= 100 {
		t.Fatalf("GOGC after start = %d, want above 100 (a 512 MiB floor over a small heap)", got)
	}
	// Hold about 64 MiB live: after a collection the percent falls to
	// about 700 (64 MiB × 8 = 512 MiB).
	hold := make([][]byte, 64)
	for i := range hold {
		hold[i] = make([]byte, 1<<20)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if p := gogc(); p >= 600 && p <= 700 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("GOGC with 64 MiB live = %d, want about 700", p)
		}
		runtime.Gosched()
	}
	runtime.KeepAlive(hold)
}
