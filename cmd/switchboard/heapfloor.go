package main

import (
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync"
)

// A node's heap grows in steps when sessions arrive: a connect storm
// takes a fresh node from a few MiB to tens of MiB of live sessions. With
// the garbage collector's default goal (twice the live heap) every
// doubling on the way costs a collection that marks the whole live heap
// again, about a quarter of the node's CPU in a storm of 5,000 connects
// (docs/benchmarks.md Notes). A heap floor keeps the goal at floor bytes
// or more: below it the node collects rarely, at the price of holding up
// to floor bytes of garbage; above it the collector paces as GOGC says.
// The cost is a fixed amount of memory, not a factor of the heap (as a
// higher GOGC would be), and GOMEMLIMIT, when set, still bounds it.

// heapFloor keeps the heap goal at floor bytes or more by setting the GC
// percent after every collection.
type heapFloor struct {
	floor uint64
	base  int // the GC percent (GOGC) when the floor started
}

var heapFloorOnce sync.Once

// startHeapFloor keeps the process's heap goal at floor bytes or more
// (nothing when floor ≤ 0 or GOGC=off). A process has one floor: later
// calls (several nodes in one test process) keep the first.
func startHeapFloor(floor int64) {
	if floor <= 0 {
		return
	}
	heapFloorOnce.Do(func() {
		base := debug.SetGCPercent(100)
		debug.SetGCPercent(base)
		if base < 0 {
			return // GOGC=off: the operator collects by GOMEMLIMIT alone
		}
		h := &heapFloor{floor: uint64(floor), base: base}
		h.tune(liveHeap())
		h.arm()
	})
}

// arm calls tune after the next collection (a cleanup runs once the
// collector found its object unreachable) and arms itself again.
func (h *heapFloor) arm() {
	runtime.AddCleanup(new(cycleMark), func(h *heapFloor) {
		h.tune(liveHeap())
		h.arm()
	}, h)
}

// cycleMark is a heap object that lives until the next collection (it
// holds a pointer so the allocator does not batch it with other tiny
// objects, which could keep it alive).
type cycleMark struct{ _ *int }

// minHeapGoal is the runtime's smallest heap goal at GOGC=100.
const minHeapGoal = 4 << 20

// maxGCPercent bounds the percent the floor sets.
const maxGCPercent = 100_000

// tune sets the GC percent for a live heap of live bytes.
func (h *heapFloor) tune(live uint64) {
	debug.SetGCPercent(h.percent(live))
}

// percent is the GC percent whose goal, live × (1 + percent/100), is the
// floor, or the base when that is higher.
func (h *heapFloor) percent(live uint64) int {
	live = max(live, minHeapGoal)
	if h.floor <= live {
		return h.base
	}
	p := min(h.floor/live*100+(h.floor%live)*100/live-100, maxGCPercent)
	return max(int(p), h.base)
}

func liveHeap() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
