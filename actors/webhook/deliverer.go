// Package webhook delivers channels' persisted events to an HTTP
// receiver (SERVER-API.md "Webhooks"): batches {"events": [...]} POSTed
// with an HMAC-SHA256 signature of the body, in seq order per channel, at
// least once, retried with backoff while the events are retained.
//
// A node runs one Deliverer for the channels it serves. Channels tell it
// when they have events the receiver has not acknowledged (Pending, which
// never blocks); it fetches them from the channel (Source), posts them,
// and on a 2xx reply moves the channel's acknowledged position, which the
// channel persists. Whoever serves the channel next continues from there.
// The receiver is not trusted: a reply is read up to a bound, it must come
// within the timeout, and redirects are not followed.
package webhook

import (
	"container/heap"
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/actors/channel"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Switchboard-Signature"

// GapEvent is the event a batch starts with when retention trimmed events
// of a channel before they were delivered. Data: GapData.
const GapEvent = "webhook.gap"

// GapData is the data of a webhook.gap event: the seqs lost.
type GapData struct {
	FromSeq uint64 `json:"from_seq"`
	ToSeq   uint64 `json:"to_seq"`
	Lost    uint64 `json:"lost"`
}

// Config configures a Deliverer. Zero fields take the defaults.
type Config struct {
	// URL receives the batches; Secret signs them.
	URL    string
	Secret string
	// Events are the event names delivered (nil: every persisted event).
	// webhook.gap is always delivered.
	Events []string
	// Timeout bounds one POST, reply included (default 5 s).
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a channel's next
	// try after a failure: it doubles from the first to the second
	// (defaults 1 s and 1 min).
	MinBackoff, MaxBackoff time.Duration
	// Workers is how many channels are delivered at once (default 8).
	Workers int
	// MaxReplyBytes is how much of a reply is read (default 64 KiB).
	MaxReplyBytes int64
	// MaxChannels bounds the channels tracked at once (default 100000);
	// past it a channel is dropped until its next event or the node's
	// next start.
	MaxChannels int
	// FetchTimeout bounds asking a channel for its events (default 10 s).
	FetchTimeout time.Duration
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
	Logger    *slog.Logger
	Metrics   *Metrics
}

// DefaultConfig returns the defaults (URL and Secret unset).
func DefaultConfig() Config {
	return Config{Timeout: 5 * time.Second, MinBackoff: time.Second, MaxBackoff: time.Minute, Workers: 8,
		MaxReplyBytes: 64 << 10, MaxChannels: 100000, FetchTimeout: 10 * time.Second}
}

func (c *Config) withDefaults() {
	d := DefaultConfig()
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = d.MinBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(d.MaxBackoff, c.MinBackoff)
	}
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.MaxReplyBytes <= 0 {
		c.MaxReplyBytes = d.MaxReplyBytes
	}
	if c.MaxChannels <= 0 {
		c.MaxChannels = d.MaxChannels
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = d.FetchTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = &Metrics{}
	}
}

// Metrics are optional hooks the node wires to Prometheus.
type Metrics struct {
	// Delivery counts one POST by result (ok, failed: a reply that is not
	// 2xx, timeout, error: no reply) and how long it took.
	Delivery func(result string, d time.Duration)
	// Gap counts events lost to retention before they were delivered.
	Gap func(lost uint64)
}

// Source reads and acknowledges a channel's events.
type Source interface {
	// Fetch returns the events after the channel's acknowledged position.
	Fetch(ctx context.Context, channel string) (*channel.WebhookBatch, error)
	// Ack moves the acknowledged position to seq.
	Ack(ctx context.Context, channel string, seq uint64) error
	// Owned reports whether this node serves the channel.
	Owned(channel string) bool
}

// Deliverer delivers the events of the channels that report them.
type Deliverer struct {
	cfg    Config
	src    Source
	client *http.Client
	events map[string]bool // nil: all

	// pending are the channels reported since the loop last looked,
	// with their newest event and acknowledged position.
	mu      sync.Mutex // guards pending
	pending map[string]pendingNote
	signal  chan struct{} // cap 1: pending has news

	work    chan string  // the loop hands a channel to a worker
	results chan outcome // a worker hands back what became of it
	backlog atomic.Int64 // events known undelivered, over the tracked channels

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

type pendingNote struct{ last, delivered uint64 }

// New starts a deliverer; Close stops it.
func New(cfg Config, src Source) *Deliverer {
	cfg.withDefaults()
	d := &Deliverer{cfg: cfg, src: src, pending: map[string]pendingNote{}, signal: make(chan struct{}, 1),
		work: make(chan string), results: make(chan outcome)}
	if cfg.Events != nil {
		d.events = map[string]bool{}
		for _, e := range cfg.Events {
			d.events[e] = true
		}
	}
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			MaxIdleConnsPerHost:   cfg.Workers,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   cfg.Timeout,
			ResponseHeaderTimeout: cfg.Timeout,
		}
	}
	d.client = &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		// A receiver's redirect is not followed: it counts as a failure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wg.Go(d.loop)
	for range cfg.Workers {
		d.wg.Go(d.worker)
	}
	return d
}

// Close stops delivering and waits for the goroutines (a POST in flight is
// cut short; its events are delivered again later). Safe to call twice.
func (d *Deliverer) Close() {
	d.once.Do(func() {
		d.cancel()
		d.wg.Wait()
		if t, ok := d.client.Transport.(*http.Transport); ok {
			t.CloseIdleConnections()
		}
	})
}

// Pending reports a channel with events after delivered, up to last. It
// never blocks.
func (d *Deliverer) Pending(ch string, last, delivered uint64) {
	d.mu.Lock()
	n := d.pending[ch]
	if last > n.last {
		n.last = last
	}
	n.delivered = max(n.delivered, delivered)
	d.pending[ch] = n
	d.mu.Unlock()
	select {
	case d.signal <- struct{}{}:
	default:
	}
}

// Backlog returns the events known undelivered on the channels tracked.
func (d *Deliverer) Backlog() int64 { return d.backlog.Load() }

// chanState is what the loop knows of one channel.
type chanState struct {
	last, delivered uint64
	queued, busy    bool
	failures        int
	retryAt         time.Time
	index           int // in the retry heap, -1 when not in it
}

func (c *chanState) undelivered() int64 {
	if c.last > c.delivered {
		return int64(c.last - c.delivered)
	}
	return 0
}

// outcome is what a worker reports for one channel.
type outcome struct {
	ch string
	// ok: the batch was delivered (or there was none); delivered and
	// last are then the channel's positions. drop: the channel is not
	// served here (or is gone); forget it.
	ok, drop        bool
	delivered, last uint64
}

// loop owns the channels' states: it queues the channels with events,
// hands them to workers one at a time each, and schedules retries.
func (d *Deliverer) loop() {
	chans := map[string]*chanState{}
	var ready []string
	retries := &retryHeap{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	account := func(c *chanState, f func()) {
		before := c.undelivered()
		f()
		d.backlog.Add(c.undelivered() - before)
	}
	enqueue := func(ch string, c *chanState) {
		if !c.queued && !c.busy && c.index < 0 {
			c.queued = true
			ready = append(ready, ch)
		}
	}
	forget := func(ch string, c *chanState) {
		d.backlog.Add(-c.undelivered())
		delete(chans, ch)
	}
	for {
		var work chan string
		var next string
		if len(ready) > 0 {
			work, next = d.work, ready[0]
		}
		wait := time.Hour
		if retries.Len() > 0 {
			wait = max(time.Until((*retries)[0].retryAt), 0)
		}
		timer.Reset(wait)
		select {
		case <-d.ctx.Done():
			return
		case <-d.signal:
			d.mu.Lock()
			notes := d.pending
			d.pending = map[string]pendingNote{}
			d.mu.Unlock()
			for ch, n := range notes {
				c := chans[ch]
				if c == nil {
					if len(chans) >= d.cfg.MaxChannels {
						continue // its next event, or the next start, brings it back
					}
					c = &chanState{index: -1}
					chans[ch] = c
				}
				account(c, func() {
					c.last = max(c.last, n.last)
					c.delivered = max(c.delivered, n.delivered)
				})
				enqueue(ch, c)
			}
		case work <- next:
			ready = ready[1:]
			c := chans[next]
			c.queued, c.busy = false, true
		case o := <-d.results:
			c := chans[o.ch]
			c.busy = false
			switch {
			case o.drop:
				forget(o.ch, c)
			case o.ok:
				c.failures = 0
				account(c, func() {
					c.delivered = max(c.delivered, o.delivered)
					c.last = max(c.last, o.last)
				})
				if c.delivered < c.last {
					enqueue(o.ch, c)
				} else {
					forget(o.ch, c)
				}
			default:
				c.failures++
				c.retryAt = time.Now().Add(d.backoff(c.failures))
				heap.Push(retries, &retryItem{ch: o.ch, state: c, retryAt: c.retryAt})
			}
		case <-timer.C:
			now := time.Now()
			for retries.Len() > 0 && !(*retries)[0].retryAt.After(now) {
				it := heap.Pop(retries).(*retryItem)
				enqueue(it.ch, it.state)
			}
		}
	}
}

// backoff is the wait before try n+1 after n failures: doubling from
// MinBackoff, at most MaxBackoff, with ±20% jitter so channels that failed
// together do not retry together.
func (d *Deliverer) backoff(n int) time.Duration {
	b := d.cfg.MinBackoff
	for i := 1; i < n && b < d.cfg.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.cfg.MaxBackoff)
	j := time.Duration(float64(b) * (0.8 + 0.4*rand.Float64()))
	return min(j, d.cfg.MaxBackoff)
}

// retryHeap orders channels waiting to retry by time.
type retryHeap []*retryItem

type retryItem struct {
	ch      string
	state   *chanState
	retryAt time.Time
}

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].retryAt.Before(h[j].retryAt) }
func (h retryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].state.index, h[j].state.index = i, j
}
func (h *retryHeap) Push(x any) {
	it := x.(*retryItem)
	it.state.index = len(*h)
	*h = append(*h, it)
}
func (h *retryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.state.index = -1
	return it
}

// worker delivers the channels the loop hands it.
func (d *Deliverer) worker() {
	for {
		select {
		case <-d.ctx.Done():
			return
		case ch := <-d.work:
			o := d.deliver(ch)
			select {
			case d.results <- o:
			case <-d.ctx.Done():
				return
			}
		}
	}
}
