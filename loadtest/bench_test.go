package loadtest

import (
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkOracleEvent is the oracle's cost per delivery: many watchers of
// one channel recording in parallel, as a live room's read goroutines do.
func BenchmarkOracleEvent(b *testing.B) {
	o := newOracle()
	c := o.channel("room")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := c.watch("w")
		s.begin(0)
		seq := uint64(0)
		for pb.Next() {
			seq++
			s.event(seq, seq)
		}
	})
}

// BenchmarkRecord is the cost of one latency sample from many goroutines.
func BenchmarkRecord(b *testing.B) {
	r := newRecorder()
	var key atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		k := int(key.Add(1))
		for pb.Next() {
			r.record(MetricDelivered, k, 3*time.Millisecond)
		}
	})
}

// BenchmarkScheduleNext is the cost of drawing one step of the schedule.
func BenchmarkScheduleNext(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Sessions, cfg.Channels = 10000, 1000
	s := NewSchedule(1, 1e9, time.Hour, layoutFor(&cfg, "b"), Shares{})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Next(); !ok {
			b.Fatal("schedule ended")
		}
	}
}
