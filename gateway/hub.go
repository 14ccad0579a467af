package gateway

import (
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// hub is the gateway's watcher table: for each channel, the local sessions
// watching it. A channel sends each event to this node once; the hub fans
// it out. Every method runs on the cluster inbox goroutine (Handler calls,
// reply callbacks, cluster.Do), so the table needs no lock, and a watch
// reply is always applied before the events the channel sent after it.
type hub struct {
	g        *Gateway
	channels map[string]map[*session]struct{}
	// owners records, per watched channel, which activation served it
	// when the watches were made; a different one has no watchers.
	owners map[string]ownerRef
	// rewatching marks channels with a rewatch in flight (pending counts
	// its requests); again asks for another once it ends.
	rewatching map[string]bool
	pending    map[string]int
	again      map[string]bool
	// retries marks channels with a re-watch retry scheduled.
	retries map[string]bool
	// viewPending coalesces view changes: one scan is queued at a time.
	viewPending atomic.Bool
}

// ownerRef is one activation's home: a node in one life.
type ownerRef struct {
	node        string
	incarnation int64
}

func newHub(g *Gateway) *hub {
	return &hub{g: g, channels: make(map[string]map[*session]struct{}), owners: make(map[string]ownerRef),
		rewatching: make(map[string]bool), pending: make(map[string]int), again: make(map[string]bool),
		retries: make(map[string]bool)}
}

// ownerOf returns the current owner of ch and whether it is alive.
func (h *hub) ownerOf(ch string) (ownerRef, bool) {
	v := h.g.cl.View()
	name := h.g.cl.OwnerOf(kindChannel, ch)
	m, _ := v.Member(name)
	return ownerRef{node: name, incarnation: m.Meta.Incarnation}, m.State == cluster.StateAlive
}

// viewChanged re-watches every channel whose owner is now another node,
// or the same node in a new life (restarted after a crash): the new
// activation does not know this gateway's sessions. Channels whose owner
// is down are re-watched when it is back.
func (h *hub) viewChanged() {
	h.viewPending.Store(false)
	for ch, ss := range h.channels {
		cur, alive := h.ownerOf(ch)
		if !alive || cur == h.owners[ch] {
			continue // down: re-watched once it is back; or unchanged
		}
		h.owners[ch] = cur
		if len(ss) > 0 {
			h.rewatch(ch, 0)
		}
	}
}

// watch records that s watches ch from position seq on.
func (h *hub) watch(s *session, ch string, seq uint64) {
	if s.gone {
		// The session ended before its watch was answered: the channel
		// holds a watcher nobody will remove otherwise.
		h.g.sessionsClosed(ch, s.id)
		return
	}
	ss := h.channels[ch]
	if ss == nil {
		ss = make(map[*session]struct{})
		h.channels[ch] = ss
	}
	ss[s] = struct{}{}
	if _, ok := h.owners[ch]; !ok {
		h.owners[ch], _ = h.ownerOf(ch)
	}
	if seq > s.watching[ch] {
		s.watching[ch] = seq
	} else if _, ok := s.watching[ch]; !ok {
		s.watching[ch] = seq
	}
}

func (h *hub) unwatch(s *session, ch string) {
	if ss := h.channels[ch]; ss != nil {
		delete(ss, s)
		if len(ss) == 0 {
			delete(h.channels, ch)
			delete(h.owners, ch)
		}
	}
	delete(s.watching, ch)
}

// Events fans a channel's events out to its local watchers. Each persisted
// event goes to a session at most once and in seq order: a session skips
// seqs at or below its position, and a gap (a seq beyond position+1) means
// the session missed something, so it re-watches from its position.
func (h *hub) Events(ev *clusterpb.Events) {
	if m := h.g.cfg.Metrics; m.ChannelEvents != nil {
		m.ChannelEvents(len(ev.Events))
	}
	ss := h.channels[ev.Channel]
	if len(ss) == 0 {
		return
	}
	delivered := 0
	for _, e := range ev.Events {
		for s := range ss {
			if e.Seq != 0 {
				pos := s.watching[ev.Channel]
				if e.Seq <= pos {
					continue
				}
				if e.Seq > pos+1 {
					h.rewatch(ev.Channel, 0) // this session missed some
					continue
				}
				s.watching[ev.Channel] = e.Seq
			}
			s.send(e.Frame)
			delivered++
		}
	}
	if m := h.g.cfg.Metrics; m.Deliveries != nil {
		m.Deliveries(delivered)
	}
}

// Unwatch stops sessions the channel removed (kick, ban, leave, delete).
func (h *hub) Unwatch(u *clusterpb.Unwatch) {
	ss := h.channels[u.Channel]
	if ss == nil {
		return
	}
	ids := make(map[string]bool, len(u.Sessions))
	for _, id := range u.Sessions {
		ids[id] = true
	}
	for s := range ss {
		if ids[s.id] {
			h.unwatch(s, u.Channel)
		}
	}
}

// WatchLost re-watches every local session of a channel whose activation
// ended, each from the last seq it got, so no event is lost or repeated.
func (h *hub) WatchLost(w *clusterpb.WatchLost) {
	h.rewatch(w.Channel, 0)
}

// EventsShed re-watches channels whose events the node's inbox shed for
// want of CPU (all: every watched channel), like WatchLost: each session
// gets what it missed from the last seq it got.
func (h *hub) EventsShed(channels []string, all bool) {
	if all {
		for ch := range h.channels {
			h.rewatch(ch, 0)
		}
		return
	}
	for _, ch := range channels {
		h.rewatch(ch, 0)
	}
}

// maxRewatchAttempts bounds retries of an unavailable channel (10.5 s in
// all with the backoff below: 50 ms more each time) before its sessions
// are told to reconnect.
const maxRewatchAttempts = 20

// retryLater re-watches ch after a backoff; one retry per channel is
// pending at a time, however many of its requests failed.
func (h *hub) retryLater(ch string, attempt int) {
	if h.retries[ch] {
		return
	}
	h.retries[ch] = true
	delay := min(time.Duration(50*attempt)*time.Millisecond, 2*time.Second)
	time.AfterFunc(delay, func() {
		h.g.cl.Do(func() {
			delete(h.retries, ch)
			h.rewatch(ch, attempt)
		})
	})
}

// rewatch watches a channel again for every local session of it, in one
// request per MaxRewatchSessions sessions, from the lowest position among
// them; each session then gets the replayed events after its own position.
// At most one rewatch per channel runs; a trigger meanwhile runs another
// when it ends.
func (h *hub) rewatch(ch string, attempt int) {
	ss := h.channels[ch]
	if len(ss) == 0 {
		return
	}
	if h.rewatching[ch] {
		h.again[ch] = true
		return
	}
	h.rewatching[ch] = true
	var batch []*session
	flush := func() {
		sessions := batch
		batch = nil
		h.pending[ch]++
		since := ^uint64(0)
		args := channel.RewatchArgs{Sessions: make([]channel.RewatchSession, len(sessions))}
		for i, s := range sessions {
			since = min(since, s.watching[ch])
			args.Sessions[i] = channel.RewatchSession{Session: s.id, User: s.user, Admin: s.admin, Perms: s.grants.get(ch)}
		}
		args.SinceSeq = since
		body, _ := json.Marshal(args)
		req := &clusterpb.Request{Kind: kindChannel, Target: ch, Op: channel.OpRewatch, Args: body,
			Caller: &clusterpb.Caller{Gateway: h.g.cl.Address()}}
		h.g.cl.Request(req, h.g.cfg.RequestTimeout, func(rep *clusterpb.Reply) {
			// Failures may be reported off the inbox goroutine: hop back.
			h.g.cl.Do(func() { h.rewatched(ch, sessions, attempt, rep) })
		})
	}
	for s := range ss {
		batch = append(batch, s)
		if len(batch) == channel.MaxRewatchSessions {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

func (h *hub) rewatched(ch string, sessions []*session, attempt int, rep *clusterpb.Reply) {
	if h.pending[ch]--; h.pending[ch] <= 0 {
		delete(h.pending, ch)
		delete(h.rewatching, ch)
		defer func() {
			if h.again[ch] {
				delete(h.again, ch)
				h.rewatch(ch, 0)
			}
		}()
	}
	if rep.Error != nil {
		code := protocol.Code(rep.Error.Code)
		if code == protocol.CodeUnavailable && attempt < maxRewatchAttempts {
			h.retryLater(ch, attempt+1)
			return
		}
		// The channel is gone (not_found: its watchers had channel.deleted)
		// or cannot take the sessions back: they stop watching, and unless
		// the channel is gone they are told to reconnect and resume rather
		// than wait for events that will not come.
		for _, s := range sessions {
			h.unwatch(s, ch)
			if code != protocol.CodeNotFound {
				s.out.close(reasonResync)
			}
		}
		return
	}
	var r channel.RewatchResult
	if err := json.Unmarshal(rep.Result, &r); err != nil {
		r.Reset = true
	}
	accepted := make(map[string]bool, len(r.Accepted))
	for _, id := range r.Accepted {
		accepted[id] = true
	}
	refused := make(map[string]*protocol.Error, len(r.Refused))
	for _, rs := range r.Refused {
		refused[rs.Session] = rs.Error
	}
	type framed struct {
		seq   uint64
		frame []byte
	}
	events := make([]framed, 0, len(r.Events))
	for _, f := range r.Events {
		var head struct {
			Seq uint64 `json:"seq"`
		}
		if json.Unmarshal(f, &head) == nil {
			events = append(events, framed{head.Seq, f})
		}
	}
	more := false
	for _, s := range sessions {
		if s.gone {
			if accepted[s.id] {
				h.g.sessionsClosed(ch, s.id) // ended while re-watched
			}
			continue
		}
		if _, ok := s.watching[ch]; !ok {
			continue // unwatched meanwhile
		}
		if r.Reset {
			h.unwatch(s, ch)
			s.out.close(reasonResync)
			continue
		}
		if !accepted[s.id] {
			// Told, so that it neither waits for events that will not
			// come nor tries to resume the watch.
			h.unwatch(s, ch)
			s.send(unwatchedFrame(ch, refused[s.id]))
			continue
		}
		for _, e := range events {
			if e.seq == s.watching[ch]+1 {
				s.watching[ch] = e.seq
				s.send(e.frame)
			}
		}
		if r.EventsHasMore {
			more = true
		} else if r.Seq > s.watching[ch] {
			s.watching[ch] = r.Seq
		}
	}
	if more {
		h.again[ch] = true
	}
}

// unwatchedFrame is the channel.unwatched event for why.
func unwatchedFrame(ch string, why *protocol.Error) []byte {
	if why == nil {
		why = protocol.Errorf(protocol.CodeForbidden, "channel %s did not take this session back", ch)
	}
	f, _ := protocol.EncodeEvent(protocol.EventChannelUnwatched, ch, 0, protocol.UnwatchedData{Error: why})
	return f
}

// removeSession forgets an ended session and tells each channel it watched.
func (h *hub) removeSession(s *session) {
	s.gone = true
	for ch := range s.watching {
		h.unwatch(s, ch)
		h.g.sessionsClosed(ch, s.id)
	}
}
