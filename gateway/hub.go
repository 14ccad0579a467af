package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// hub performs what the gateway's watch table (watchtable.go) decides: it
// feeds the table what arrives — channel events and notices (it is the
// node's cluster.Handler, through eventRouter), watch replies, view
// changes, rewatch replies, its own retry timer — and carries out the
// effects: frames queued on sessions, sessions closed, channels told,
// rewatch requests sent. Every method runs on the cluster inbox goroutine
// (Handler calls, reply callbacks, cluster.Do), so the table needs no
// lock, and a watch reply is always applied before the events the channel
// sent after it.
type hub struct {
	g *Gateway
	t *watchTable[*session]
	// frames frames each event once for all its sessions; wake collects
	// the sessions a fan-out woke, handed to the writers at once.
	frames frameCache
	wake   []*session
	// flushes is when each channel's events were last handed to the
	// writers, or will be (CoalesceWindow).
	flushes map[string]time.Time
	// viewPending coalesces view changes: one is queued at a time.
	viewPending atomic.Bool
	// timer ticks the table at timerAt for its retries; timerGen tells a
	// tick of a replaced timer, which does nothing.
	timer    *time.Timer
	timerAt  time.Time
	timerGen uint64
}

func newHub(g *Gateway) *hub {
	h := &hub{g: g, flushes: make(map[string]time.Time)}
	h.t = newWatchTable(func(s *session) string { return s.id }, h.ownerOf, channel.MaxRewatchSessions)
	return h
}

// ownerOf returns the current owner of ch — its shard's leader — and
// whether it is known and alive.
func (h *hub) ownerOf(ch string) (ownerRef, bool) {
	v := h.g.cl.View()
	name, term := h.g.cl.LeaderOf(kindChannel, ch)
	m, _ := v.Member(name)
	return ownerRef{node: name, incarnation: m.Meta.Incarnation, term: term, returns: m.Returns}, name != "" && m.State == cluster.StateAlive
}

// apply carries out the table's effects, in their order; why names the
// input, for the debug log of the rewatches and closes it caused.
func (h *hub) apply(why string, fx *watchEffects[*session]) { h.applyFrom(why, "", fx) }

// applyFrom is apply for the effects of ch's events (ch: "" for any
// other input): their deliveries are written once ch's coalescing
// window allows (coalesce).
func (h *hub) applyFrom(why, ch string, fx *watchEffects[*session]) {
	if len(fx.Close)+len(fx.Rewatch) > 0 {
		h.logWatch(why, fx)
	}
	for _, d := range fx.Deliver {
		if d.s.queue(h.frames.message(d.frame)) {
			h.wake = append(h.wake, d.s)
		}
	}
	if len(h.wake) > 0 {
		if at := h.coalesce(ch, time.Now()); at.IsZero() {
			h.g.writers.addAll(h.wake)
		} else {
			h.g.writers.addAt(h.wake, at)
		}
		clear(h.wake)
		h.wake = h.wake[:0]
	}
	for _, s := range fx.Close {
		s.end(reasonResync)
	}
	for _, d := range fx.Drop {
		h.g.sessionsClosed(d.ch, d.s.id)
	}
	for _, r := range fx.Rewatch {
		h.request(r)
	}
	if !fx.WakeAt.IsZero() && (h.timer == nil || fx.WakeAt.Before(h.timerAt)) {
		h.wakeAt(fx.WakeAt)
	}
}

// opened and closed add and remove a session; watch and unwatch apply a
// join's or watch's reply and an unwatch's or leave's.
func (h *hub) opened(s *session)                       { h.t.Open(s) }
func (h *hub) closed(s *session)                       { h.apply("closed", h.t.Close(s)) }
func (h *hub) watch(s *session, ch string, seq uint64) { h.apply("watched", h.t.Watched(s, ch, seq)) }
func (h *hub) unwatch(s *session, ch string)           { h.t.Unwatched(s, ch) }

// Unwatch, WatchLost and EventsShed are the channels' and the inbox's
// notices (cluster.Handler).
func (h *hub) Unwatch(u *clusterpb.Unwatch) { h.t.Removed(u.Channel, u.Sessions) }
func (h *hub) EventsShed(channels []string, all bool) {
	h.apply("events shed", h.t.Shed(channels, all))
}

// WatchLost re-watches the channel named, or with Node set every channel
// that node owns (its host had declared this gateway dead).
func (h *hub) WatchLost(w *clusterpb.WatchLost) {
	if w.Node != "" {
		h.apply("owner lost this gateway: "+w.Node, h.t.LostNode(w.Node))
		return
	}
	h.apply("watch lost", h.t.Lost(w.Channel))
}

// viewChanged applies a membership change (coalesced by viewPending).
func (h *hub) viewChanged() {
	h.viewPending.Store(false)
	h.apply("view changed", h.t.ViewChanged())
}

// Events fans a channel's events out to its local watchers.
func (h *hub) Events(ev *clusterpb.Events) {
	m := h.g.cfg.Metrics
	if m.ChannelEvents != nil {
		m.ChannelEvents(len(ev.Events))
	}
	fx := h.t.Events(ev.Channel, ev.Events)
	if m.Deliveries != nil && len(fx.Deliver) > 0 {
		m.Deliveries(len(fx.Deliver))
	}
	h.applyFrom("gap in events", ev.Channel, fx)
}

// coalesce returns when the sessions a batch of ch's events woke are to
// be written: now (zero) when ch's events were last written a
// CoalesceWindow ago or more; else when that window ends, so a busy
// channel's events go out at most once a window, several per write. A
// quiet channel's events are written at once. The sessions wait queued:
// what else they are sent meanwhile goes out in the same write.
func (h *hub) coalesce(ch string, now time.Time) time.Time {
	w := h.g.cfg.CoalesceWindow
	if ch == "" || w <= 0 {
		return time.Time{}
	}
	last, ok := h.flushes[ch]
	switch {
	case ok && now.Before(last): // a write of ch is due: join it
		return last
	case ok && now.Sub(last) < w:
		at := last.Add(w)
		h.flushes[ch] = at
		return at
	}
	if len(h.flushes) >= 1024 {
		for c, t := range h.flushes {
			if now.Sub(t) >= w {
				delete(h.flushes, c)
			}
		}
	}
	h.flushes[ch] = now
	return time.Time{}
}

// request sends one rewatch request; its reply comes back to the table.
func (h *hub) request(r rewatchRequest[*session]) {
	args := channel.RewatchArgs{SinceSeq: r.Since, Sessions: make([]channel.RewatchSession, len(r.Sessions))}
	for i, s := range r.Sessions {
		args.Sessions[i] = channel.RewatchSession{Session: s.id, User: s.user, Admin: s.admin, Perms: s.grants.get(r.Channel)}
	}
	body, _ := json.Marshal(args)
	req := &clusterpb.Request{Kind: kindChannel, Target: r.Channel, Op: channel.OpRewatch, Args: body,
		Caller: &clusterpb.Caller{Gateway: h.g.cl.Address()}}
	batch := r.Batch
	h.g.cl.Request(req, h.g.cfg.RequestTimeout, func(rep *clusterpb.Reply) {
		// Failures may be reported off the inbox goroutine: hop back.
		h.g.cl.Do(func() { h.rewatched(batch, rep) })
	})
}

func (h *hub) rewatched(batch uint64, rep *clusterpb.Reply) {
	if rep.Error != nil {
		e := &protocol.Error{Code: protocol.Code(rep.Error.Code), Message: rep.Error.Message}
		h.apply("rewatch failed: "+string(e.Code), h.t.Rewatched(batch, nil, e, time.Now()))
		return
	}
	var r channel.RewatchResult
	if err := json.Unmarshal(rep.Result, &r); err != nil {
		r = channel.RewatchResult{Reset: true}
	}
	h.apply("rewatched", h.t.Rewatched(batch, &r, nil, time.Now()))
}

// wakeAt arms the retry timer for at, replacing a later one.
func (h *hub) wakeAt(at time.Time) {
	if h.timer != nil {
		h.timer.Stop()
	}
	h.timerGen++
	gen := h.timerGen
	h.timerAt = at
	h.timer = time.AfterFunc(time.Until(at), func() {
		h.g.cl.Do(func() {
			if gen != h.timerGen {
				return // replaced
			}
			h.timer = nil
			h.apply("retry", h.t.Tick(time.Now()))
		})
	})
}

// logWatch logs the rewatches (at debug level) and the closes one input
// of the table caused, and why: the trail to follow when a session missed
// a channel's events. Closes are rare (a history that cannot replay, a
// channel that stayed unavailable), and each costs a client a reconnect.
func (h *hub) logWatch(why string, fx *watchEffects[*session]) {
	if len(fx.Close) > 0 {
		h.g.log.Info("watch: sessions closed to resync", "why", why, "sessions", len(fx.Close), "first", fx.Close[0].id)
	}
	if !h.g.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	for _, r := range fx.Rewatch {
		owner, alive := h.ownerOf(r.Channel)
		h.g.log.Debug("watch: rewatch", "why", why, "channel", r.Channel, "since", r.Since, "sessions", len(r.Sessions),
			"attempt", r.Attempt, "owner", owner.node, "term", owner.term, "owner_alive", alive)
	}
}
