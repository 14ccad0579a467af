package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
	hc      *http.Client
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
	sent, resent, deliveries                       atomic.Int64
	measuredSent, measuredAcks, measuredDeliveries atomic.Int64
	lastAck, lastDelivery                          atomic.Int64 // ns from origin
	resumed, connected, setupFailed                atomic.Int64
	ops                                            opCounts
	checks                                         opCounts // the final checks' requests

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

// connectAll dials every session at the ramp's pace and sets up its
// channels, with at most DialWorkers at a time.
func (r *runner) connectAll(ctx context.Context) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range r.cfg.DialWorkers {
		wg.Go(func() {
			for i := range next {
				r.setup(ctx, i)
			}
		})
	}
	start := time.Now()
	timer := time.NewTimer(0)
	<-timer.C
loop:
	for i := range r.cfg.Sessions {
		if r.cfg.Ramp > 0 {
			if wait := time.Until(start.Add(time.Duration(float64(i) / r.cfg.Ramp * float64(time.Second)))); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					break loop
				}
			}
		}
		select {
		case next <- i:
		case <-ctx.Done():
			break loop
		}
	}
	close(next)
	wg.Wait()
	// Channels whose creator failed were closed by it; nothing waits.
}

// setup dials session i and creates or joins its channels. The first
// dial tries every target in turn (starting with the session's own)
// before the session counts as failed; a failed session, or one whose
// create or join failed, counts in setupFailed.
func (r *runner) setup(ctx context.Context, i int) {
	s := &session{r: r, idx: i, user: r.layout.UserIDs[i]}
	for _, c := range r.layout.SessionChannels[i] {
		s.streams = append(s.streams, sessionStream{channel: r.layout.ChannelIDs[c], s: r.chans[c].watch(s.user)})
	}
	opts := client.Options{
		UserID:         s.user,
		OnEvent:        s.onEvent,
		OnResumed:      s.onResumed,
		RawEvents:      true,
		RequestTimeout: 15 * time.Second,
		StallTimeout:   r.cfg.StallTimeout,
		HTTPClient:     r.hc,
		Logger:         r.cfg.Logger,
	}
	if r.cfg.Token != nil {
		user := s.user
		opts.TokenFunc = func() (string, error) { return r.cfg.Token(user) }
	}
	var cl *client.Client
	var err error
	t0 := time.Now()
	for first := range r.cfg.Targets {
		// Reconnects then move on round-robin from the target that worked.
		opts.URLs = make([]string, 0, len(r.cfg.Targets))
		for k := range r.cfg.Targets {
			opts.URLs = append(opts.URLs, r.cfg.Targets[(i+first+k)%len(r.cfg.Targets)])
		}
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		cl, err = client.Dial(dctx, opts)
		cancel()
		r.ops.add(protocol.OpConnect, codeOf(err))
		if err == nil || ctx.Err() != nil {
			break
		}
		r.cfg.Logger.Debug("loadtest: dial failed", "session", i, "target", opts.URLs[0], "err", err)
	}
	if err != nil {
		r.setupFailed.Add(1)
		r.cfg.Logger.Warn("loadtest: session could not connect to any target", "session", i, "err", err)
		for _, c := range r.layout.SessionChannels[i] {
			if r.layout.Creator[c] == i {
				close(r.created[c])
			}
		}
		return
	}
	r.rec.record(MetricConnect, i, time.Since(t0))
	s.cl = cl
	s.reader.Store(cl)
	r.sessions[i] = s
	r.connected.Add(1)
	failed := false
	for k, c := range r.layout.SessionChannels[i] {
		st := s.streams[k].s
		if r.layout.Creator[c] == i {
			args := protocol.ChannelCreateArgs{ID: r.layout.ChannelIDs[c], Type: r.layout.ChannelTypes[c], Name: "load test " + r.runID}
			failed = r.call(ctx, s, protocol.OpChannelCreate, args, st) != nil || failed
			close(r.created[c])
			continue
		}
		select {
		case <-r.created[c]:
		case <-ctx.Done():
			return
		}
		failed = r.call(ctx, s, protocol.OpChannelJoin, protocol.JoinArgs{Channel: r.layout.ChannelIDs[c]}, st) != nil || failed
	}
	if failed {
		r.setupFailed.Add(1)
	}
}

// call makes a create or join and waits for it; the stream begins at the
// reply's seq on the read goroutine, before any later event. An
// unavailable reply (a shard changing leader, as happens while a cluster
// rebalances) is retried, as clients do, for up to setupRetry; a create
// retried after its first try landed answers invalid_state, and a join
// then begins the stream instead.
func (r *runner) call(ctx context.Context, s *session, op string, args any, st *stream) error {
	deadline := time.Now().Add(setupRetry)
	backoff := 50 * time.Millisecond
	retried := false
	for {
		err := r.callOnce(ctx, s, op, args, st)
		var pe *protocol.Error
		if retried && op == protocol.OpChannelCreate && errors.As(err, &pe) && pe.Code == protocol.CodeInvalidState {
			if a, ok := args.(protocol.ChannelCreateArgs); ok {
				op, args = protocol.OpChannelJoin, protocol.WatchArgs{Channel: a.ID}
				continue
			}
		}
		if err == nil || !errors.As(err, &pe) || pe.Code != protocol.CodeUnavailable || time.Now().After(deadline) {
			if err != nil {
				r.cfg.Logger.Warn("loadtest: setup call failed", "op", op, "session", s.idx, "err", err)
			}
			return err
		}
		retried = true
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, time.Second)
	}
}

// setupRetry bounds how long a setup call is retried through unavailable
// replies.
const setupRetry = 15 * time.Second

// callOnce makes one try of call.
func (r *runner) callOnce(ctx context.Context, s *session, op string, args any, st *stream) error {
	done := make(chan error, 1)
	err := s.cl.CallAsync(op, args, func(res json.RawMessage, err error) {
		if err == nil {
			seq, ok := scanTopSeq(res)
			if !ok {
				err = fmt.Errorf("%s: reply without seq", op)
			} else {
				st.begin(seq)
			}
		}
		done <- err
	})
	if err == nil {
		select {
		case err = <-done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	r.ops.add(op, codeOf(err))
	return err
}

// scanTopSeq reads the top-level "seq" of a join, watch or create result.
func scanTopSeq(res json.RawMessage) (uint64, bool) {
	var r struct {
		Seq *uint64 `json:"seq"`
	}
	if json.Unmarshal(res, &r) != nil || r.Seq == nil {
		return 0, false
	}
	return *r.Seq, true
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
func (r *runner) intendedOf(clientID string) (time.Duration, bool) {
	rest, ok := strings.CutPrefix(clientID, r.runID+".")
	if !ok {
		return 0, false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return 0, false
	}
	ns, err := strconv.ParseInt(rest[i+1:], 10, 64)
	return time.Duration(ns), err == nil
}

// delivered records one watcher receiving a message intended at intended.
func (r *runner) delivered(key int, intended time.Duration) {
	r.deliveries.Add(1)
	if intended < r.warmupEnd() {
		return
	}
	now := r.now()
	r.rec.record(MetricDelivered, key, now-intended)
	r.measuredDeliveries.Add(1)
	storeMax(&r.lastDelivery, int64(now))
}

// drain waits (up to Drain) for every outstanding request to be answered
// and, after a storm, for every dropped session to have resumed.
func (r *runner) drain(ctx context.Context) {
	pollUntil(ctx, r.cfg.Drain, func() bool {
		if r.sends.outstanding.Load()+r.histories.outstanding.Load()+r.reactions.outstanding.Load() > 0 {
			return false
		}
		for _, s := range r.sessions {
			if s != nil && s.droppedAt.Load() != 0 {
				return false
			}
		}
		return true
	})
}

// pollUntil polls cond every 20 ms until it holds, d passes or ctx ends.
func pollUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			return cond()
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// verify asks each channel for its final seq, waits for every watcher to
// catch up to it, re-reads history and lets the oracle judge. A channel
// it cannot read (no session to read it with, or the final watch or the
// re-read failed) is reported unverified, never skipped.
func (r *runner) verify(ctx context.Context) {
	type final struct {
		seq uint64
		ok  bool
	}
	finals := make([]final, len(r.chans))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for c, co := range r.chans {
		s := r.checker(c)
		if s == nil {
			co.unverified("no session of the run is connected to read it")
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, r.cfg.Drain)
			defer cancel()
			res, err := s.cl.Watch(cctx, r.layout.ChannelIDs[c], nil)
			r.checks.add(protocol.OpChannelWatch, codeOf(err))
			if err != nil {
				r.cfg.Logger.Warn("loadtest: final watch failed", "channel", r.layout.ChannelIDs[c], "err", err)
				co.unverified("the final channel.watch failed (" + codeOf(err) + "): " + err.Error())
				return
			}
			finals[c] = final{res.Seq, true}
		})
	}
	wg.Wait()
	// Every watcher should reach its channel's final seq.
	pollUntil(ctx, r.cfg.Drain, func() bool {
		for c, co := range r.chans {
			if !finals[c].ok {
				continue
			}
			co.mu.Lock()
			streams := co.streams
			co.mu.Unlock()
			for _, st := range streams {
				if last, started := st.position(); started && last < finals[c].seq {
					return false
				}
			}
		}
		return true
	})
	for c, co := range r.chans {
		if !finals[c].ok {
			continue
		}
		s := r.checker(c)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			hist, err := r.history(ctx, s, r.layout.ChannelIDs[c])
			if err != nil {
				r.cfg.Logger.Warn("loadtest: history re-read failed", "channel", r.layout.ChannelIDs[c], "err", err)
				co.unverified("the history re-read failed (" + codeOf(err) + "): " + err.Error())
				hist = nil
			}
			co.finish(finals[c].seq, hist)
		})
	}
	wg.Wait()
}

// checker returns a connected session to read channel c with: its creator
// if possible.
func (r *runner) checker(c int) *session {
	if s := r.sessions[r.layout.Creator[c]]; s != nil {
		return s
	}
	for _, i := range r.layout.Members[c] {
		if s := r.sessions[i]; s != nil {
			return s
		}
	}
	return nil
}

// history reads every message of a channel in ascending segment order.
func (r *runner) history(ctx context.Context, s *session, ch string) ([]histMsg, error) {
	var out []histMsg
	after := uint64(0)
	limit := 100
	for {
		cctx, cancel := context.WithTimeout(ctx, r.cfg.Drain)
		res, err := s.cl.History(cctx, protocol.HistoryArgs{Channel: ch, After: &after, Limit: &limit})
		cancel()
		r.checks.add(protocol.OpMessagesHistory, codeOf(err))
		if err != nil {
			return nil, err
		}
		for _, m := range res.Messages {
			h := histMsg{Segment: m.Segment, ClientID: m.ClientID}
			if len(m.Reactions) > 0 {
				h.Reactions = m.Reactions
			}
			out = append(out, h)
		}
		if !res.HasMore || len(res.Messages) == 0 {
			return out, nil
		}
		after = res.Messages[len(res.Messages)-1].Segment
	}
}

// closeAll closes every session, a few hundred at a time.
func (r *runner) closeAll() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, s := range r.sessions {
		if s == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.cl.Close()
		})
	}
	wg.Wait()
}
