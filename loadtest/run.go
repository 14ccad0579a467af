package loadtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// runner is one run's state. Its origin is the monotonic time every
// offset (intended times, drops) is measured from.
type runner struct {
	cfg    Config
	runID  string
	layout *Layout
	rec    *recorder
	orc    *oracle
	chans  []*chanOracle
	origin time.Time
	// sendStart is when the schedule's time zero falls, from origin; set
	// before the first send.
	sendStart atomic.Int64
	text      string

	sessions []*session
	// hc dials every session (and scrapes /metrics), sharing cfg.TLS.
	hc *http.Client
	// poller reads every session's connection (nil: each session reads
	// its own; see client.Poller).
	poller  *client.Poller
	created []chan struct{} // closed when each channel's create was answered
	// targets are each channel's newest acknowledged message, for
	// reactions (nil entries until one is).
	targets []atomic.Pointer[target]

	// Scheduled operations by kind, each settled once.
	sends, histories, reactions tally
	// retries are the resends in flight (see request).
	retries sync.WaitGroup
	ctx     context.Context // the run's, for resends

	// Counters.
	sent, resent                    atomic.Int64
	measuredSent, measuredAcks      atomic.Int64
	lastAck                         atomic.Int64 // ns from origin
	delivery                        deliveryCounts
	resumed, connected, setupFailed atomic.Int64
	ops                             opCounts
	checks                          opCounts // the final checks' requests

	series []Point
	memory []MemorySample
}

// target is a message reactions can go to.
type target struct {
	id      string
	segment uint64
}

// tally accounts for one kind of scheduled operation: each is settled
// exactly once, as ok, rate_limited, failed or skipped; those still
// outstanding when the drain ended are unanswered.
type tally struct {
	scheduled, ok, rateLimited, failed, skipped, outstanding atomic.Int64
	unanswered                                               int64 // outstanding when the drain ended
}

func (t *tally) report() Tally {
	return Tally{Scheduled: t.scheduled.Load(), OK: t.ok.Load(), RateLimited: t.rateLimited.Load(),
		Failed: t.failed.Load(), Skipped: t.skipped.Load(), Unanswered: t.unanswered}
}

// opCounts counts replies by op and result code.
type opCounts struct {
	mu sync.Mutex // guards m
	m  map[string]map[string]int64
}

func (c *opCounts) add(op, code string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]map[string]int64)
	}
	byCode := c.m[op]
	if byCode == nil {
		byCode = make(map[string]int64)
		c.m[op] = byCode
	}
	byCode[code]++
	c.mu.Unlock()
}

func (c *opCounts) snapshot() (out map[string]map[string]int64, errors int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out = make(map[string]map[string]int64, len(c.m))
	for op, byCode := range c.m {
		cp := make(map[string]int64, len(byCode))
		for code, n := range byCode {
			cp[code] = n
			if code != "ok" {
				errors += n
			}
		}
		out[op] = cp
	}
	return out, errors
}

// codeOf names an error for the counts: a wire code, or what the client
// saw.
func codeOf(err error) string {
	var pe *protocol.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &pe):
		return string(pe.Code)
	case errors.Is(err, client.ErrNotConnected):
		return "not_connected"
	case errors.Is(err, client.ErrDisconnected):
		return "disconnected"
	case errors.Is(err, client.ErrClosed):
		return "closed"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "transport"
}

// Run performs one load test: it opens the sessions (ramped), sets up the
// scenario's channels, runs the schedule, drains, checks every channel
// with the oracle and returns the report. It returns an error only when
// the run could not take place (bad config, no session could connect);
// a run that found violations returns a report whose Oracle.OK is false.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := newRunner(ctx, cfg)
	rep := &Report{Started: time.Now().UTC()}
	// One poller reads every session: a few goroutines instead of one
	// per session, and a wake-up per batch of ready connections instead
	// of one per event, so the generator's own CPU and scheduling weigh
	// less on the latencies it measures.
	if p, err := client.NewPoller(client.PollerOptions{}); err == nil {
		r.poller = p
		defer p.Close()
	} else {
		cfg.Logger.Warn("loadtest: no poller; sessions read with a goroutine each", "err", err)
	}

	var bg sync.WaitGroup
	bgCtx, stopBG := context.WithCancel(ctx)
	defer func() { stopBG(); bg.Wait() }()
	bg.Go(func() { r.sample(bgCtx) })
	if cfg.Scenario == ScenarioSoak {
		bg.Go(func() { r.sampleMemory(bgCtx) })
	}

	setupStart := time.Now()
	r.connectAll(ctx)
	rep.Setup.Seconds = time.Since(setupStart).Seconds()
	rep.Setup.Connected = int(r.connected.Load())
	rep.Setup.Failed = int(r.setupFailed.Load())
	defer func() {
		r.closeAll()
		r.retries.Wait() // closed clients end them
	}()
	if r.connected.Load() == 0 {
		return nil, fmt.Errorf("no session could connect to %s", strings.Join(cfg.Targets, ", "))
	}
	if ctx.Err() == nil {
		r.phase(PhaseSending)
		r.sendAll(ctx)
		r.drain(ctx)
		r.phase(PhaseDrained)
	}
	for _, t := range []*tally{&r.sends, &r.histories, &r.reactions} {
		t.unanswered = max(t.outstanding.Load(), 0)
	}
	r.verify(ctx)
	stopBG()
	bg.Wait()
	r.finishReport(rep)
	return rep, nil
}

// newRunner lays out a run of a checked config.
func newRunner(ctx context.Context, cfg Config) *runner {
	runID := cfg.RunID
	if runID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		runID = hex.EncodeToString(b[:])
	}
	r := &runner{cfg: cfg, runID: runID, rec: newRecorder(), orc: newOracle(), origin: time.Now(), ctx: ctx,
		hc: client.HTTPClient(cfg.TLS)}
	r.layout = layoutFor(&r.cfg, runID)
	r.text = strings.Repeat("x", cfg.MessageBytes)
	for _, id := range r.layout.ChannelIDs {
		r.chans = append(r.chans, r.orc.channel(id))
		r.created = append(r.created, make(chan struct{}))
	}
	r.targets = make([]atomic.Pointer[target], len(r.chans))
	r.sessions = make([]*session, cfg.Sessions)
	return r
}

func (r *runner) phase(p string) {
	if r.cfg.OnPhase != nil {
		r.cfg.OnPhase(p)
	}
}

// now is the time since the run's origin.
func (r *runner) now() time.Duration { return time.Since(r.origin) }

// warmupEnd is when measurements start, from origin.
func (r *runner) warmupEnd() time.Duration {
	return time.Duration(r.sendStart.Load()) + r.cfg.Warmup
}

// sendAll runs the schedule: one goroutine waits for each step's intended
// time and hands it to the worker that owns its session.
func (r *runner) sendAll(ctx context.Context) {
	length := r.cfg.Warmup + r.cfg.Duration
	sched := NewSchedule(r.cfg.Seed, r.cfg.Rate, length, r.layout, r.shares())
	r.sendStart.Store(int64(r.now() + 50*time.Millisecond))
	start := time.Duration(r.sendStart.Load())

	queues := make([]chan Step, r.cfg.SendWorkers)
	var wg sync.WaitGroup
	for w := range queues {
		queues[w] = make(chan Step, 1024)
		wg.Go(func() {
			for st := range queues[w] {
				r.dispatch(st, start+st.At)
			}
		})
	}
	var stormAt time.Duration = -1
	if r.cfg.Scenario == ScenarioStorm {
		stormAt = start + r.cfg.Warmup + r.cfg.Duration/2
	}
	timer := time.NewTimer(0)
	<-timer.C
	wait := func(until time.Duration) bool {
		if d := until - r.now(); d > 20*time.Microsecond {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	for ctx.Err() == nil {
		st, ok := sched.Next()
		if !ok {
			break
		}
		due := start + st.At
		if stormAt >= 0 && due >= stormAt {
			if !wait(stormAt) {
				break
			}
			r.storm()
			stormAt = -1
		}
		if !wait(due) {
			break
		}
		select {
		case queues[st.Session%len(queues)] <- st:
		case <-ctx.Done():
		}
	}
	if stormAt >= 0 && ctx.Err() == nil && wait(stormAt) {
		r.storm() // a schedule with no step after the storm time
	}
	if ctx.Err() == nil {
		wait(start + length)
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
}

// shares are the scenario's operations that are not sends: history reads
// in soak, reactions in liveroom.
func (r *runner) shares() Shares {
	switch r.cfg.Scenario {
	case ScenarioSoak:
		return Shares{History: r.cfg.HistoryShare}
	case ScenarioLiveroom:
		return Shares{Reaction: r.cfg.ReactionShare}
	}
	return Shares{}
}

// storm drops every session's connection at once.
func (r *runner) storm() {
	at := int64(r.now())
	for _, s := range r.sessions {
		if s != nil {
			s.droppedAt.Store(at)
			s.cl.Drop()
		}
	}
	r.cfg.Logger.Info("loadtest: storm: dropped every connection")
}

// dispatch issues one step; due is its intended time from origin. Every
// step is settled once in its kind's tally (see request).
func (r *runner) dispatch(st Step, due time.Duration) {
	measured := due >= r.warmupEnd()
	if measured {
		r.rec.record(MetricLag, st.Session, r.now()-due)
	}
	t := r.tallyOf(st.Kind)
	t.scheduled.Add(1)
	op := opOf(st.Kind)
	s := r.sessions[st.Session]
	if s == nil {
		// The session's setup failed (and counted): its steps fail.
		r.ops.add(op, "no_session")
		t.failed.Add(1)
		if st.Kind == KindSend {
			r.sendOutcome(SendOutcome{Channel: r.layout.ChannelIDs[st.Channel], User: r.layout.UserIDs[st.Session],
				Intended: r.origin.Add(due), Settled: time.Now(), Code: "no_session"})
		}
		return
	}
	ch := r.layout.ChannelIDs[st.Channel]
	switch st.Kind {
	case KindHistory:
		lim := 20
		r.request(s, t, op, protocol.HistoryArgs{Channel: ch, Limit: &lim}, func(json.RawMessage, string) {})
		return
	case KindReaction:
		tg := r.targets[st.Channel].Load()
		if tg == nil {
			t.skipped.Add(1) // no message acknowledged yet to react to
			return
		}
		react := reaction{segment: tg.segment, user: s.user, name: "r" + strconv.FormatUint(st.Index%8, 10)}
		co := r.chans[st.Channel]
		r.request(s, t, op, protocol.ReactionArgs{Channel: ch, MessageID: tg.id, Name: react.name}, func(_ json.RawMessage, code string) {
			if code == "ok" {
				co.ackReaction(react)
			}
		})
		return
	}
	clientID := r.runID + "." + strconv.FormatUint(st.Index, 10) + "." + strconv.FormatInt(int64(due), 10)
	args := protocol.SendArgs{Channel: ch, ClientID: clientID, Text: r.text}
	co := r.chans[st.Channel]
	r.sent.Add(1)
	if measured {
		r.measuredSent.Add(1)
	}
	reacting := r.cfg.ReactionShare > 0
	issued := time.Now()
	r.request(s, t, op, args, func(res json.RawMessage, code string) {
		if code != "ok" {
			r.sendOutcome(SendOutcome{Channel: ch, User: s.user, ClientID: clientID, Intended: r.origin.Add(due),
				Issued: issued, Settled: time.Now(), Code: code})
			return
		}
		now := r.now()
		seg, ok := scanUint(res, `"segment":`)
		if ok {
			co.ack(seg, clientID)
		}
		id, found := scanString(res, `"id":"`)
		if ok && found && reacting {
			r.targets[st.Channel].Store(&target{id: id, segment: seg})
		}
		r.sendOutcome(SendOutcome{Channel: ch, User: s.user, ClientID: clientID, Intended: r.origin.Add(due),
			Issued: issued, Settled: r.origin.Add(now), Code: code, Segment: seg, MessageID: id})
		if measured {
			r.rec.record(MetricAck, st.Session, now-due)
			r.measuredAcks.Add(1)
			storeMax(&r.lastAck, int64(now))
		}
	})
}

// request issues one scheduled operation and settles it in t: ok,
// rate_limited, or failed; then done runs with the result and the code. It is written
// without waiting for the reply; when it could not be written (the
// session is between connections: a reconnect storm), the connection
// dropped before the reply, or the reply was unavailable, it is resent
// with the client's Call, which waits for the connection to be back and
// retries as a real client does (every scheduled op is safe to repeat: a
// send keeps its client_id). Latencies are measured from the step's
// intended time, so the time spent waiting for the reconnect counts.
func (r *runner) request(s *session, t *tally, op string, args any, done func(res json.RawMessage, code string)) {
	t.outstanding.Add(1)
	settle := func(res json.RawMessage, err error) {
		defer t.outstanding.Add(-1)
		code := codeOf(err)
		r.ops.add(op, code)
		switch code {
		case "ok":
			t.ok.Add(1)
		case string(protocol.CodeRateLimited):
			t.rateLimited.Add(1)
		default:
			t.failed.Add(1)
		}
		done(res, code)
	}
	resend := func(err error) bool {
		if !retryable(err) {
			return false
		}
		r.resent.Add(1)
		r.retries.Go(func() {
			var res json.RawMessage
			err := s.cl.Call(r.ctx, op, args, &res)
			settle(res, err)
		})
		return true
	}
	err := s.cl.CallAsync(op, args, func(res json.RawMessage, err error) {
		if err == nil || !resend(err) {
			settle(res, err)
		}
	})
	if err != nil && !resend(err) {
		settle(nil, err)
	}
}

// retryable reports whether a scheduled op that failed with err is resent:
// the connection was down or dropped, or the server was unavailable.
func retryable(err error) bool {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code == protocol.CodeUnavailable
	}
	return !errors.Is(err, client.ErrClosed) && !errors.Is(err, context.Canceled)
}

func (r *runner) tallyOf(kind int) *tally {
	switch kind {
	case KindHistory:
		return &r.histories
	case KindReaction:
		return &r.reactions
	}
	return &r.sends
}

func opOf(kind int) string {
	switch kind {
	case KindHistory:
		return protocol.OpMessagesHistory
	case KindReaction:
		return protocol.OpReactionAdd
	}
	return protocol.OpMessageSend
}

func storeMax(v *atomic.Int64, x int64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

// intendedOf reads a send's intended time back from its client id
// (run.index.intended-ns); ids of other runs report false.
// It runs for every delivery, so it allocates nothing.
func (r *runner) intendedOf(clientID []byte) (time.Duration, bool) {
	n := len(r.runID)
	if len(clientID) <= n || string(clientID[:n]) != r.runID || clientID[n] != '.' {
		return 0, false
	}
	rest := clientID[n+1:]
	i := bytes.LastIndexByte(rest, '.')
	if i < 0 {
		return 0, false
	}
	ns, ok := protocol.ParseUint(rest[i+1:])
	return time.Duration(ns), ok && ns <= math.MaxInt64
}

// delivered records one watcher receiving a message intended at intended.
func (r *runner) delivered(key int, intended time.Duration) {
	if intended < r.warmupEnd() {
		r.delivery.add(key, false, 0)
		return
	}
	now := r.now()
	r.rec.record(MetricDelivered, key, now-intended)
	r.delivery.add(key, true, int64(now))
}
