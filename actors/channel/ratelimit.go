package channel

import (
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Rate limit and slow mode, both answered with rate_limited and a
// retry_after_ms > 0. Moderators are exempt from both, and their messages
// do not count. The state lives in memory and is bounded:
//
//   - the rate limit (channel.rate_limit {count, window_ms}: at most count
//     messages and reaction changes in any window_ms from all senders
//     together — both are events every reader gets) keeps the times of the
//     newest count counted ones — at most maxRateCount;
//   - slow mode (channel.slow_mode_ms: one message per user per interval)
//     keeps each user's last send while it still restricts them, at most
//     maxSlowUsers of them (the oldest go first). A member's last send is
//     also in its record (last_send_at), so for members slow mode holds
//     across restarts; for live viewers, who have no record, it restarts
//     with the channel's activation, as the rate limit does.

const (
	maxRateCount = 10000
	maxSlowUsers = 1 << 16
	// maxRateWindowMS and maxSlowModeMS bound the settings (24 h and
	// 6 h): longer ones would serve no purpose a channel mute does not,
	// and far longer ones would overflow a time.Duration.
	maxRateWindowMS = 24 * 60 * 60 * 1000
	maxSlowModeMS   = 6 * 60 * 60 * 1000
)

type sendLimits struct {
	// sends are the times of the newest counted sends.
	sends ring
	// last is each user's last counted send; order lists them oldest
	// first (an entry is stale when last has a newer time for its user).
	last  map[string]time.Time
	order []userSend
}

type userSend struct {
	user string
	at   time.Time
}

func newSendLimits() sendLimits { return sendLimits{last: make(map[string]time.Time)} }

// check refuses a send that the rate limit or slow mode do not allow now.
// It changes nothing: noteSend records a send once it is accepted.
func (l *sendLimits) check(s *State, c Caller, m *memberRecord, now time.Time) *protocol.Error {
	ch := &s.meta.Channel
	if ch.SlowModeMS > 0 {
		last, ok := l.last[c.User]
		if m != nil && m.LastSendAt.After(last) {
			last, ok = m.LastSendAt, true
		}
		if next := last.Add(time.Duration(ch.SlowModeMS) * time.Millisecond); ok && now.Before(next) {
			e := protocol.Errorf(protocol.CodeRateLimited, "slow mode in %s: one message every %d ms", s.id, ch.SlowModeMS)
			e.RetryAfterMS = retryMS(next.Sub(now))
			return e
		}
	}
	return l.checkRate(s, now)
}

// checkRate refuses a message or reaction change over the rate limit.
func (l *sendLimits) checkRate(s *State, now time.Time) *protocol.Error {
	if rl := s.meta.Channel.RateLimit; rl != nil && rl.Count > 0 {
		window := time.Duration(rl.WindowMS) * time.Millisecond
		if n := l.sends.n; n >= rl.Count {
			// The send rl.Count back must have left the window.
			oldest := l.sends.at(n - rl.Count)
			if next := oldest.Add(window); now.Before(next) {
				e := protocol.Errorf(protocol.CodeRateLimited, "%s allows %d messages and reactions per %d ms", s.id, rl.Count, rl.WindowMS)
				e.RetryAfterMS = retryMS(next.Sub(now))
				return e
			}
		}
	}
	return nil
}

// noteSend records an accepted send of a non-moderator.
func (s *State) noteSend(c Caller, m *memberRecord, now time.Time) {
	if s.isModerator(c, m) {
		return
	}
	s.noteRate(now)
	l := &s.mod.limits
	ch := &s.meta.Channel
	if ch.SlowModeMS <= 0 {
		if len(l.last) > 0 {
			l.last, l.order = make(map[string]time.Time), nil
		}
		return
	}
	slow := time.Duration(ch.SlowModeMS) * time.Millisecond
	l.last[c.User] = now
	l.order = append(l.order, userSend{c.User, now})
	// Forget users whose last send no longer restricts them, and the
	// oldest ones past the bound.
	drop := 0
	for drop < len(l.order) {
		e := l.order[drop]
		if at, ok := l.last[e.user]; ok && at.Equal(e.at) {
			if !now.After(e.at.Add(slow)) && len(l.last) <= maxSlowUsers {
				break
			}
			delete(l.last, e.user)
		}
		drop++
	}
	l.order = l.order[drop:]
}

// noteRate counts an accepted message or reaction change of a
// non-moderator against the rate limit.
func (s *State) noteRate(now time.Time) {
	l := &s.mod.limits
	if rl := s.meta.Channel.RateLimit; rl != nil && rl.Count > 0 {
		l.sends.push(now, rl.Count)
	} else {
		l.sends = ring{}
	}
}

// ring holds the newest times pushed, at most its capacity.
type ring struct {
	buf      []time.Time
	start, n int
}

// at returns the i-th oldest time held.
func (r *ring) at(i int) time.Time { return r.buf[(r.start+i)%len(r.buf)] }

// push adds t, keeping at most capacity times (the newest).
func (r *ring) push(t time.Time, capacity int) {
	if len(r.buf) != capacity {
		keep := min(r.n, capacity)
		buf := make([]time.Time, capacity)
		for i := range keep {
			buf[i] = r.at(r.n - keep + i)
		}
		r.buf, r.start, r.n = buf, 0, keep
	}
	if r.n < capacity {
		r.buf[(r.start+r.n)%capacity] = t
		r.n++
		return
	}
	r.buf[r.start] = t
	r.start = (r.start + 1) % capacity
}
