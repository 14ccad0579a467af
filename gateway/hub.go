package gateway

import (
	"encoding/json"
	"time"

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
}

// ownerRef is one activation's home: a node in one life.
type ownerRef struct {
	node        string
	incarnation int64
	alive       bool
}

func newHub(g *Gateway) *hub {
	return &hub{g: g, channels: make(map[string]map[*session]struct{}), owners: make(map[string]ownerRef)}
}

func (h *hub) ownerOf(ch string) ownerRef {
	v := h.g.cl.View()
	name := cluster.Owner(v.Placement(), cluster.ScopeKey(kindChannel, ch))
	m, _ := v.Member(name)
	return ownerRef{node: name, incarnation: m.Meta.Incarnation, alive: m.State == cluster.StateAlive}
}

// viewChanged re-watches every channel whose owner is now another node,
// or the same node in a new life (restarted after a crash): the new
// activation does not know this gateway's sessions. Channels whose owner
// is down are re-watched when it is back.
func (h *hub) viewChanged() {
	for ch, ss := range h.channels {
		cur := h.ownerOf(ch)
		old, ok := h.owners[ch]
		if ok && cur.node == old.node && cur.incarnation == old.incarnation && (cur.alive || !old.alive) {
			h.owners[ch] = cur
			continue
		}
		h.owners[ch] = cur
		if !cur.alive {
			continue
		}
		for s := range ss {
			h.rewatch(s, ch, 0)
		}
	}
}

// watch records that s watches ch from position seq on.
func (h *hub) watch(s *session, ch string, seq uint64) {
	if s.gone {
		return
	}
	ss := h.channels[ch]
	if ss == nil {
		ss = make(map[*session]struct{})
		h.channels[ch] = ss
	}
	ss[s] = struct{}{}
	if _, ok := h.owners[ch]; !ok {
		h.owners[ch] = h.ownerOf(ch)
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
					h.rewatch(s, ev.Channel, 0)
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
	for s := range h.channels[w.Channel] {
		h.rewatch(s, w.Channel, 0)
	}
}

// maxRewatchAttempts bounds retries of an unavailable channel (about 30 s
// with the backoff below) before the session is told to reconnect.
const maxRewatchAttempts = 20

// rewatch asks the channel to watch again for s from its position. The
// reply's missed events are delivered like live ones.
func (h *hub) rewatch(s *session, ch string, attempt int) {
	if s.gone {
		return
	}
	pos, ok := s.watching[ch]
	if !ok {
		return
	}
	args, _ := json.Marshal(protocol.WatchArgs{Channel: ch, SinceSeq: &pos})
	s.route(kindChannel, ch, protocol.OpChannelWatch, args, func(rep *clusterpb.Reply) {
		// Runs on the inbox goroutine for replies; failures may come from
		// another goroutine, so hop back before touching the table.
		h.g.cl.Do(func() { h.rewatched(s, ch, pos, attempt, rep) })
	})
}

func (h *hub) rewatched(s *session, ch string, pos uint64, attempt int, rep *clusterpb.Reply) {
	if s.gone {
		return
	}
	if cur, ok := s.watching[ch]; !ok || cur != pos {
		return // unwatched, or moved on by another path meanwhile
	}
	if rep.Error != nil {
		if protocol.Code(rep.Error.Code) == protocol.CodeUnavailable && attempt < maxRewatchAttempts {
			delay := time.Duration(50*(attempt+1)) * time.Millisecond
			time.AfterFunc(min(delay, 2*time.Second), func() {
				h.g.cl.Do(func() { h.rewatch(s, ch, attempt+1) })
			})
			return
		}
		h.unwatch(s, ch)
		if protocol.Code(rep.Error.Code) == protocol.CodeUnavailable {
			s.out.close(reasonResync)
		}
		return
	}
	var r struct {
		Events        []json.RawMessage `json:"events"`
		EventsHasMore bool              `json:"events_has_more"`
		Reset         bool              `json:"reset"`
	}
	if err := json.Unmarshal(rep.Result, &r); err != nil || r.Reset {
		h.unwatch(s, ch)
		s.out.close(reasonResync)
		return
	}
	for _, frame := range r.Events {
		var head struct {
			Seq uint64 `json:"seq"`
		}
		if json.Unmarshal(frame, &head) != nil || head.Seq <= s.watching[ch] {
			continue
		}
		s.watching[ch] = head.Seq
		s.send(frame)
	}
	if r.EventsHasMore {
		h.rewatch(s, ch, 0) // from the last event delivered
		return
	}
	h.watch(s, ch, rep.Seq)
}

// removeSession forgets an ended session and tells each channel it watched.
func (h *hub) removeSession(s *session) {
	s.gone = true
	for ch := range s.watching {
		h.unwatch(s, ch)
		h.g.sessionsClosed(ch, s.id)
	}
}
