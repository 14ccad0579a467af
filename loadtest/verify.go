package loadtest

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

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
