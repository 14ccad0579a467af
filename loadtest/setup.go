package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

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
		Poller:         r.poller,
		Logger:         r.cfg.Logger,
	}
	if r.cfg.Token != nil {
		user := s.user
		opts.TokenFunc = func() (string, error) { return r.cfg.Token(user) }
	}
	// A session that creates none of its channels joins them with its
	// connect, in the same round trip (a live room's viewers), once they
	// exist; joins answered otherwise than ok are made again below.
	joined, ok := r.joinsFirst(ctx, s, &opts)
	if !ok {
		return
	}
	// Sessions start on the targets in turn; Dial moves on to the next
	// target when one cannot take the session, and reconnects go on
	// round-robin from there.
	opts.URLs = make([]string, 0, len(r.cfg.Targets))
	for k := range r.cfg.Targets {
		opts.URLs = append(opts.URLs, r.cfg.Targets[(i+k)%len(r.cfg.Targets)])
	}
	t0 := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	cl, err := client.Dial(dctx, opts)
	cancel()
	r.ops.add(protocol.OpConnect, codeOf(err))
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
		if joined != nil {
			var err error
			select {
			case err = <-joined[k]:
			case <-ctx.Done():
				return
			}
			if err == nil {
				continue
			}
			if !unavailable(err) {
				r.cfg.Logger.Warn("loadtest: setup call failed", "op", protocol.OpChannelJoin, "session", s.idx, "err", err)
				failed = true
				continue
			}
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

// joinsFirst puts the joins of a session that creates none of its
// channels into opts.First, once every one of them is created, and
// returns where each join's outcome arrives (nil: no joins go with the
// connect). It reports false when ctx ended first.
func (r *runner) joinsFirst(ctx context.Context, s *session, opts *client.Options) ([]chan error, bool) {
	chans := r.layout.SessionChannels[s.idx]
	for _, c := range chans {
		if r.layout.Creator[c] == s.idx {
			return nil, true
		}
	}
	joined := make([]chan error, len(chans))
	for k, c := range chans {
		select {
		case <-r.created[c]:
		case <-ctx.Done():
			return nil, false
		}
		st, done := s.streams[k].s, make(chan error, 1)
		joined[k] = done
		opts.First = append(opts.First, client.Request{
			Op: protocol.OpChannelJoin, Args: protocol.JoinArgs{Channel: r.layout.ChannelIDs[c]},
			Done: func(res json.RawMessage, err error) {
				err = began(protocol.OpChannelJoin, res, err, st)
				r.ops.add(protocol.OpChannelJoin, codeOf(err))
				done <- err
			},
		})
	}
	return joined, true
}

// began begins st at a create's or join's result.
func began(op string, res json.RawMessage, err error, st *stream) error {
	if err == nil {
		if seq, ok := scanTopSeq(res); ok {
			st.begin(seq)
		} else {
			err = fmt.Errorf("%s: reply without seq", op)
		}
	}
	return err
}

// unavailable reports whether err is an unavailable reply (a shard
// changing leader), after which a setup call is made again.
func unavailable(err error) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Code == protocol.CodeUnavailable
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
		if err == nil || !unavailable(err) || time.Now().After(deadline) {
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
		done <- began(op, res, err, st)
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

// scanTopSeq reads the top-level "seq" of a join, watch or create result
// without decoding the rest (the client has read what it needs of it).
func scanTopSeq(res json.RawMessage) (uint64, bool) {
	return protocol.MemberUint(res, "seq")
}
