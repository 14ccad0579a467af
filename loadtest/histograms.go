package loadtest

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Metric is one measured latency.
type Metric int

// Measured latencies.
const (
	// MetricConnect: WebSocket dial until the connect reply.
	MetricConnect Metric = iota
	// MetricAck: a send's intended time until its reply.
	MetricAck
	// MetricDelivered: a send's intended time until one watcher got the
	// message (recorded once per watcher).
	MetricDelivered
	// MetricResume: a dropped connection until every watched channel was
	// resumed (storm).
	MetricResume
	// MetricLag: how late the generator dispatched a step after its
	// intended time (its own overload shows here).
	MetricLag
	numMetrics
)

var metricNames = [numMetrics]string{"connect", "send_ack", "send_delivered", "resume", "dispatch_lag"}

func (m Metric) String() string { return metricNames[m] }

// Histogram bounds: 1 µs to 10 min, 3 significant digits.
const (
	histMin   = 1
	histMax   = int64(10 * time.Minute / time.Microsecond)
	histDigit = 3
	numShards = 16
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigit) }

// recorder holds the run's histograms. Recording is sharded (callers pass
// any stable key, a session index say) so thousands of read goroutines do
// not contend on one lock; each shard holds the current interval, and
// flush folds the shards into the interval's and the run's distributions.
type recorder struct {
	shards [numShards]shard

	mu      sync.Mutex // guards the fields below; flush and totals take it
	scratch [numMetrics]*hdrhistogram.Histogram
	sofar   [numMetrics]*hdrhistogram.Histogram
}

type shard struct {
	mu     sync.Mutex // guards window
	window [numMetrics]*hdrhistogram.Histogram
	_      [64]byte // keep shards' locks on separate cache lines
}

func newRecorder() *recorder {
	r := &recorder{}
	for i := range r.shards {
		for m := range numMetrics {
			r.shards[i].window[m] = newHist()
		}
	}
	for m := range numMetrics {
		r.scratch[m] = newHist()
		r.sofar[m] = newHist()
	}
	return r
}

// record adds one latency.
func (r *recorder) record(m Metric, key int, d time.Duration) {
	us := max(int64(d/time.Microsecond), histMin)
	us = min(us, histMax)
	s := &r.shards[uint(key)%numShards]
	s.mu.Lock()
	_ = s.window[m].RecordValue(us)
	s.mu.Unlock()
}

// Summary is one latency distribution, in milliseconds.
type Summary struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func summarize(h *hdrhistogram.Histogram) Summary {
	if h.TotalCount() == 0 {
		return Summary{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	q := h.ValueAtPercentiles([]float64{50, 90, 99, 99.9})
	return Summary{
		Count: h.TotalCount(),
		Min:   ms(h.Min()),
		Mean:  h.Mean() / 1000,
		P50:   ms(q[50]),
		P90:   ms(q[90]),
		P99:   ms(q[99]),
		P999:  ms(q[99.9]),
		Max:   ms(h.Max()),
	}
}

// flush returns each metric's distribution over the interval just ended
// and starts the next interval.
func (r *recorder) flush() [numMetrics]Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	for m := range numMetrics {
		r.scratch[m].Reset()
	}
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for m := range numMetrics {
			r.scratch[m].Merge(s.window[m])
			s.window[m].Reset()
		}
		s.mu.Unlock()
	}
	var out [numMetrics]Summary
	for m := range numMetrics {
		r.sofar[m].Merge(r.scratch[m])
		out[m] = summarize(r.scratch[m])
	}
	return out
}

// totals returns each metric's distribution over the run so far, as of
// the last flush.
func (r *recorder) totals() [numMetrics]Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [numMetrics]Summary
	for m := range numMetrics {
		out[m] = summarize(r.sofar[m])
	}
	return out
}
