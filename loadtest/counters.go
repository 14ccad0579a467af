package loadtest

import "sync/atomic"

// deliveryCounts are the per-delivery counters, sharded by watcher: every
// viewer of a live room counts each message at nearly the same moment,
// and one shared counter's cache line moving between cores for each of
// them was a visible part of the load generator's cost per delivery.
type deliveryCounts struct {
	shards [numShards]struct {
		all, measured atomic.Int64
		last          atomic.Int64 // the latest measured delivery, ns from origin
		_             [40]byte     // one cache line each
	}
}

// add counts one delivery to watcher key; measured ones at now.
func (d *deliveryCounts) add(key int, measured bool, now int64) {
	s := &d.shards[uint(key)%numShards]
	s.all.Add(1)
	if measured {
		s.measured.Add(1)
		storeMax(&s.last, now)
	}
}

// totals returns every delivery, the measured ones, and the latest
// measured one's time.
func (d *deliveryCounts) totals() (all, measured, last int64) {
	for i := range d.shards {
		s := &d.shards[i]
		all += s.all.Load()
		measured += s.measured.Load()
		last = max(last, s.last.Load())
	}
	return all, measured, last
}
