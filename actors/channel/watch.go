package channel

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// watchers are the sessions that receive the channel's events, grouped by
// the gateway that holds them: the channel sends each event once per
// gateway and the gateway fans it out.
type watchers struct {
	byGateway map[string]map[string]string // gateway → session → user
	byUser    map[string]int               // user → watching sessions
	n         int
	// perms are the join-token grants of watching sessions (perms.go).
	perms map[watchKey][]string
}

type watchKey struct{ gateway, session string }

func newWatchers() watchers {
	return watchers{byGateway: make(map[string]map[string]string), byUser: make(map[string]int), perms: make(map[watchKey][]string)}
}

func (w *watchers) add(gw, session, user string) {
	ss := w.byGateway[gw]
	if ss == nil {
		ss = make(map[string]string)
		w.byGateway[gw] = ss
	}
	if _, ok := ss[session]; ok {
		return
	}
	ss[session] = user
	w.byUser[user]++
	w.n++
}

func (w *watchers) has(gw, session string) bool {
	_, ok := w.byGateway[gw][session]
	return ok
}

func (w *watchers) remove(gw, session string) {
	ss := w.byGateway[gw]
	user, ok := ss[session]
	if !ok {
		return
	}
	delete(ss, session)
	delete(w.perms, watchKey{gw, session})
	if len(ss) == 0 {
		delete(w.byGateway, gw)
	}
	if w.byUser[user]--; w.byUser[user] <= 0 {
		delete(w.byUser, user)
	}
	w.n--
}

// removeUser stops every session of user and returns what each gateway must
// drop.
func (w *watchers) removeUser(user string) []WatchChange {
	if w.byUser[user] == 0 {
		return nil
	}
	var out []WatchChange
	for gw, ss := range w.byGateway {
		var gone []string
		for session, u := range ss {
			if u == user {
				gone = append(gone, session)
			}
		}
		if len(gone) > 0 {
			out = append(out, WatchChange{Gateway: gw, Sessions: gone})
			for _, session := range gone {
				w.remove(gw, session)
			}
		}
	}
	return out
}

// removeAll stops every session.
func (w *watchers) removeAll() []WatchChange {
	var out []WatchChange
	for gw, ss := range w.byGateway {
		wc := WatchChange{Gateway: gw}
		for session := range ss {
			wc.Sessions = append(wc.Sessions, session)
		}
		out = append(out, wc)
	}
	*w = newWatchers()
	return out
}

// Gateways returns the gateways that have watching sessions.
func (s *State) Gateways() []string {
	out := make([]string, 0, len(s.watchers.byGateway))
	for gw := range s.watchers.byGateway {
		out = append(out, gw)
	}
	return out
}

// Watchers returns how many sessions watch the channel.
func (s *State) Watchers() int { return s.watchers.n }

// DropSession forgets a session its gateway reports closed.
func (s *State) DropSession(gw, session string) { s.watchers.remove(gw, session) }

// DropGateway forgets every session of a gateway that is gone and
// reports whether it had any.
func (s *State) DropGateway(gw string) bool {
	had := len(s.watchers.byGateway[gw]) > 0
	for session := range s.watchers.byGateway[gw] {
		s.watchers.remove(gw, session)
	}
	return had
}

// watch makes the caller's session a watcher.
func (s *State) watch(c Caller) *protocol.Error {
	if c.Session == "" || c.Gateway == "" {
		return badRequest("only a session can watch a channel")
	}
	if !s.watchers.has(c.Gateway, c.Session) && s.watchers.n >= s.cfg.MaxWatchers {
		return protocol.Errorf(protocol.CodeUnavailable, "channel %s has reached its %d watchers", s.id, s.cfg.MaxWatchers)
	}
	s.watchers.add(c.Gateway, c.Session, c.User)
	s.watchers.setPerms(c.Gateway, c.Session, c.Perms)
	s.cur.Watching = true
	return nil
}

// watchIfSession makes the caller's session a watcher, when a session
// asks: a create or join over the HTTP API watches nothing.
func (s *State) watchIfSession(c Caller) *protocol.Error {
	if c.Session == "" && c.Gateway == "" {
		return nil
	}
	return s.watch(c)
}

func (s *State) handleJoin(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.WatchArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	grant := grantOf(c, args) // tokens.go
	if grant != nil {
		if perr := s.checkGrant(c.User, grant, now); perr != nil {
			return nil, perr
		}
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	joinAs, perr := s.planJoin(c, m) // membership.go
	if perr != nil {
		return nil, perr
	}
	// Read everything the reply needs before changing anything, so that
	// a failed read refuses the join cleanly.
	r, perr := s.prepareWatch(c, a.SinceSeq)
	if perr != nil {
		return nil, perr
	}
	if err := s.watchIfSession(c); err != nil {
		return nil, err
	}
	if joinAs != "" {
		var sys *protocol.Message
		m, sys = s.join(c.User, m, joinAs, protocol.ReasonJoined, now)
		if sys != nil {
			// The join's own system message belongs on the newest page.
			r.Messages = append(r.Messages, s.viewMessage(c, sys))
			if len(r.Messages) > s.cfg.Limits.DefaultHistoryLimit {
				r.Messages, r.HasMore = r.Messages[1:], true
			}
		}
	}
	if grant != nil {
		s.useGrant(grant, now)
	}
	return s.finishWatch(r, c.User, m, a.SinceSeq), nil
}

func (s *State) handleWatch(c Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a protocol.WatchArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if err := s.canRead(c, m); err != nil {
		return nil, err
	}
	r, perr := s.prepareWatch(c, a.SinceSeq)
	if perr != nil {
		return nil, perr
	}
	if err := s.watch(c); err != nil {
		return nil, err
	}
	return s.finishWatch(r, c.User, m, a.SinceSeq), nil
}

func (s *State) handleUnwatch(c Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a protocol.ChannelRef
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	s.watchers.remove(c.Gateway, c.Session)
	s.cur.Unwatching = true
	return struct{}{}, nil
}

func (s *State) handleLeave(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.ChannelRef
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	return s.leaveChannel(c, m, now) // membership.go
}

// memberEvent is the data of member.* events.
type memberEvent struct {
	User   string           `json:"user"`
	Member *protocol.Member `json:"member,omitempty"`
	Actor  string           `json:"actor,omitempty"`
	Reason string           `json:"reason,omitempty"`
}

// prepareWatch reads what the reply of a join or watch needs from the
// store: the newest page and, when resuming, the events after since. It
// runs before the command changes anything, so a failed read refuses it
// cleanly; finishWatch completes the reply afterwards.
func (s *State) prepareWatch(c Caller, since *uint64) (*protocol.WatchResult, *protocol.Error) {
	msgs, more, _, err := s.page(pageQuery{limit: s.cfg.Limits.DefaultHistoryLimit})
	if err != nil {
		return nil, internal(err)
	}
	view, perr := s.viewMessages(c, msgs)
	if perr != nil {
		return nil, perr
	}
	r := &protocol.WatchResult{Messages: view, HasMore: more, MessagesHasMore: more}
	if since != nil {
		events, more, reset, perr := s.replay(*since)
		if perr != nil {
			return nil, perr
		}
		if events == nil {
			events = []json.RawMessage{}
		}
		r.Events, r.EventsHasMore, r.Reset = events, more, reset
	}
	return r, nil
}

// finishWatch completes a reply prepared before the command: the channel
// and member as they are now, the current seq, and the events the command
// itself emitted (a join's member.joined), which follow since too. A
// join's system message is added to the page by handleJoin.
func (s *State) finishWatch(r *protocol.WatchResult, user string, m *memberRecord, since *uint64) *protocol.WatchResult {
	r.Channel = s.channelView()
	r.Member = s.memberView(m)
	if r.Member == nil {
		// A live viewer, or a reader of a public channel: no record, but
		// the caller's standing all the same.
		r.Member = &protocol.Member{User: user, Channel: s.id, Membership: protocol.MembershipViewer, Roles: []string{}}
	}
	r.Seq = s.meta.LastSeq
	if since != nil && !r.Reset && !r.EventsHasMore {
		b := s.replayBudget()
		for _, f := range r.Events {
			b.take(f)
		}
		for _, ev := range s.cur.Events {
			if ev.Seq == 0 {
				continue
			}
			if !b.take(ev.Frame) {
				r.EventsHasMore = true
				break
			}
			r.Events = append(r.Events, ev.Frame)
		}
	}
	if since != nil {
		r.HasMore = r.EventsHasMore // the contract's resume paging flag
	}
	return r
}

// checkSince decides how a resume from since is served.
func (s *State) checkSince(since uint64) (from uint64, none, reset bool, err *protocol.Error) {
	switch {
	case since > s.meta.LastSeq:
		// The client has seen events this channel never issued: its
		// state belongs to another life of the channel. Start over.
		return 0, false, true, nil
	case since == s.meta.LastSeq:
		return 0, true, false, nil
	case since+1 < s.meta.FirstSeq:
		return 0, false, true, nil
	}
	return since + 1, false, false, nil
}

// defaultReplayBytes bounds the events of one resume reply when
// Config.ReplayBytes does not. A session's outbound queue holds 4 MiB by
// default (gateway --queue-bytes) and the channel cannot know the queue of
// the gateway that asks, so the bound is fixed and well under it: a reply
// with 500 large events would otherwise fill the queue, the session would
// be cut off as a slow consumer, resume, and be cut off again, forever.
const defaultReplayBytes = 1 << 20

// replayBudget bounds the events of one resume reply: at most
// MaxEventsPerReplay of them and, but for the first, ReplayBytes of
// frames in all. The first event always fits, so paging always advances.
type replayBudget struct {
	n, bytes       int
	maxN, maxBytes int
}

func (s *State) replayBudget() *replayBudget {
	b := &replayBudget{maxN: s.cfg.Limits.MaxEventsPerReplay, maxBytes: s.cfg.ReplayBytes}
	if b.maxBytes <= 0 {
		b.maxBytes = defaultReplayBytes
	}
	return b
}

// take counts frame in and reports whether it fits.
func (b *replayBudget) take(frame []byte) bool {
	if b.n >= b.maxN || (b.n > 0 && b.bytes+len(frame) > b.maxBytes) {
		return false
	}
	b.n++
	b.bytes += len(frame)
	return true
}

// replay returns the persisted events after since, as many as one reply
// carries (replayBudget), from memory when it holds them and from the
// store otherwise (events not yet durable are always in memory).
func (s *State) replay(since uint64) ([]json.RawMessage, bool, bool, *protocol.Error) {
	from, none, reset, perr := s.checkSince(since)
	if perr != nil || none || reset {
		return nil, false, reset, perr
	}
	b := s.replayBudget()
	out := make([]json.RawMessage, 0, min(b.maxN, int(s.meta.LastSeq-since)))
	next := from
	full := false
	if len(s.recent) == 0 || s.recent[0].Seq > from {
		recs, err := s.log.Scan(persistence.TableEvent, persistence.Range{After: persistence.U64(since), Limit: b.maxN})
		if err != nil {
			return nil, false, false, internal(err)
		}
		for _, r := range recs {
			seq, _ := persistence.ParseU64(r.Key)
			if seq != next {
				break // the rest is in memory
			}
			frame, _ := splitEventRecord(r.Value)
			frame = protocol.Sanitize(frame) // see decodeMessage
			if full = !b.take(frame); full {
				break
			}
			out = append(out, frame)
			next++
		}
	}
	for _, ev := range s.recent {
		if full {
			break
		}
		if ev.Seq == next {
			if full = !b.take(ev.Frame); !full {
				out = append(out, ev.Frame)
				next++
			}
		}
	}
	if len(out) == 0 && next <= s.meta.LastSeq {
		// Neither memory nor the store holds the next event: it was
		// trimmed while we looked.
		return nil, false, true, nil
	}
	return out, next <= s.meta.LastSeq, false, nil
}

func internal(err error) *protocol.Error {
	return protocol.Errorf(protocol.CodeInternal, "storage read failed")
}
