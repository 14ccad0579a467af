package gateway

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// watchTable is the gateway's table of which local sessions watch which
// channel, and the rules that keep each session's stream of a channel's
// persisted events complete, in seq order and without repeats whatever
// happens to the channel's activation: it moves, restarts, sheds, pages
// its replay, or refuses a session back.
//
// It does no I/O and reads no clock. Each method takes one input — a
// watch or unwatch answered, a batch of events, a channel's notice, a
// view change, a rewatch reply, a tick with the time — and returns what
// the adapter (hub.go) must do, in the order of watchEffects' fields. The
// effects are valid until the next call. The table is generic in its
// session handle so the adapter's *session needs no lookup on the hot
// path (fan-out), and the scripted tests in testdata/watchtable name
// sessions by strings.
//
// Every rule lives here; hub.go only performs. The positions: a session's
// position in a channel is the seq of the last event it got. An event at
// or below it is a repeat and skipped; one beyond position+1 means the
// session missed some, and the channel is re-watched (rewatched) from the
// lowest position of its sessions, each of which then gets the replayed
// events after its own position.
type watchTable[S comparable] struct {
	// id is a session's id on the wire.
	id func(S) string
	// ownerOf returns the current owner of a channel and whether it is
	// alive; a read of the membership view.
	ownerOf func(ch string) (ownerRef, bool)
	// batch bounds the sessions of one rewatch request; attempts bounds
	// the tries of an unavailable channel (maxRewatchAttempts).
	batch, attempts int

	channels map[string]*watchedChannel[S]
	// sessions maps each open session to the channels it watches; a
	// session not in it has ended.
	sessions  map[S]map[string]struct{}
	batches   map[uint64]*rewatchBatch[S] // rewatch requests in flight
	nextBatch uint64
	retrying  map[string]*watchedChannel[S] // channels with a retry set

	fx watchEffects[S]
}

// ownerRef is one activation's home: a node in one life, leading the
// channel's shard in one term. Another term is another activation, even
// on the same node. returns counts the node's returns from dead as this
// gateway saw them (cluster.Member.Returns): after one, the activation
// may have forgotten this gateway's watchers, having declared this
// gateway dead too (a partition, both ways).
type ownerRef struct {
	node        string
	incarnation int64
	term        uint64
	returns     int
}

// watchedChannel is one channel's watchers and rewatch state.
type watchedChannel[S comparable] struct {
	watchers []watcher[S] // in the order they came (a removal moves the last one)
	index    map[S]int
	// owner is the activation the watches were made with (known once a
	// session watches); another one has no watchers of this gateway.
	owner      ownerRef
	ownerKnown bool
	pending    int  // rewatch requests in flight
	again      bool // rewatch once they end
	// retryAt is when an unavailable channel is tried again (zero: no
	// retry is set), as attempt retryAttempt.
	retryAt      time.Time
	retryAttempt int
}

type watcher[S comparable] struct {
	s   S
	pos uint64
}

// rewatchBatch is one rewatch request in flight.
type rewatchBatch[S comparable] struct {
	ch       string
	sessions []S
	attempt  int
}

// watchEffects is what one input asks the adapter to do, in this order:
// queue each delivery on its session (a frame that is an event of the
// channel, or channel.unwatched), close each session in Close (it lost a
// stream it must resume by reconnecting), tell each channel in Drop that
// the session does not watch it (the channel forgets the watcher), send
// each rewatch request, and tick the table at WakeAt (if set and earlier
// than the tick already due).
type watchEffects[S comparable] struct {
	Deliver []delivery[S]
	Close   []S
	Drop    []dropWatch[S]
	Rewatch []rewatchRequest[S]
	WakeAt  time.Time
}

type delivery[S comparable] struct {
	s     S
	frame []byte
}

type dropWatch[S comparable] struct {
	ch string
	s  S
}

// rewatchRequest asks a channel to take back Sessions (which the adapter
// must not modify) and to replay its events after Since. Its reply goes
// to Rewatched with Batch.
type rewatchRequest[S comparable] struct {
	Batch    uint64
	Channel  string
	Since    uint64
	Sessions []S
	Attempt  int
}

// maxRewatchAttempts bounds retries of an unavailable channel (10.5 s in
// all with retryDelay's backoff) before its sessions are told to
// reconnect.
const maxRewatchAttempts = 20

// retryDelay is the wait before retry attempt n: 50 ms more each time, at
// most 2 s.
func retryDelay(attempt int) time.Duration {
	return min(time.Duration(50*attempt)*time.Millisecond, 2*time.Second)
}

func newWatchTable[S comparable](id func(S) string, ownerOf func(string) (ownerRef, bool), batch int) *watchTable[S] {
	return &watchTable[S]{id: id, ownerOf: ownerOf, batch: batch, attempts: maxRewatchAttempts, channels: make(map[string]*watchedChannel[S]),
		sessions: make(map[S]map[string]struct{}), batches: make(map[uint64]*rewatchBatch[S]),
		retrying: make(map[string]*watchedChannel[S])}
}

// begin empties the effects for a new input.
func (t *watchTable[S]) begin() *watchEffects[S] {
	clear(t.fx.Deliver) // let frames go
	t.fx.Deliver, t.fx.Close, t.fx.Drop, t.fx.Rewatch = t.fx.Deliver[:0], t.fx.Close[:0], t.fx.Drop[:0], t.fx.Rewatch[:0]
	t.fx.WakeAt = time.Time{}
	return &t.fx
}

// Open records a new session. It must come before any input about it.
func (t *watchTable[S]) Open(s S) { t.sessions[s] = make(map[string]struct{}) }

// Close forgets an ended session; each channel it watched is told.
func (t *watchTable[S]) Close(s S) *watchEffects[S] {
	fx := t.begin()
	chans := t.sessions[s]
	delete(t.sessions, s)
	for _, ch := range sortedKeys(chans) {
		t.remove(ch, t.channels[ch], s)
		fx.Drop = append(fx.Drop, dropWatch[S]{ch, s})
	}
	return fx
}

// Watched records that s watches ch from seq on (a join's or watch's
// reply). A session that ended before the reply came is dropped at the
// channel, which holds a watcher nobody would remove otherwise.
func (t *watchTable[S]) Watched(s S, ch string, seq uint64) *watchEffects[S] {
	fx := t.begin()
	chans, open := t.sessions[s]
	if !open {
		fx.Drop = append(fx.Drop, dropWatch[S]{ch, s})
		return fx
	}
	c := t.channels[ch]
	if c == nil {
		c = &watchedChannel[S]{index: make(map[S]int)}
		t.channels[ch] = c
	}
	if !c.ownerKnown {
		c.owner, _ = t.ownerOf(ch)
		c.ownerKnown = true
	}
	if i, ok := c.index[s]; ok {
		c.watchers[i].pos = max(c.watchers[i].pos, seq)
		return fx
	}
	c.index[s] = len(c.watchers)
	c.watchers = append(c.watchers, watcher[S]{s: s, pos: seq})
	chans[ch] = struct{}{}
	return fx
}

// Unwatched records that s stopped watching ch (an unwatch's or leave's
// reply).
func (t *watchTable[S]) Unwatched(s S, ch string) {
	if c := t.channels[ch]; c != nil {
		t.remove(ch, c, s)
	}
}

// Removed stops the sessions a channel removed itself (a kick, a ban, a
// leave, a delete): they got the event that says so.
func (t *watchTable[S]) Removed(ch string, ids []string) {
	c := t.channels[ch]
	if c == nil {
		return
	}
	gone := make(map[string]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
	}
	for _, w := range slices.Clone(c.watchers) {
		if gone[t.id(w.s)] {
			t.remove(ch, c, w.s)
		}
	}
}

// remove makes s stop watching ch, and forgets a channel nobody watches
// and nothing waits for.
func (t *watchTable[S]) remove(ch string, c *watchedChannel[S], s S) {
	if c == nil {
		return
	}
	i, ok := c.index[s]
	if !ok {
		return
	}
	last := len(c.watchers) - 1
	c.watchers[i] = c.watchers[last]
	c.index[c.watchers[i].s] = i
	c.watchers[last] = watcher[S]{}
	c.watchers = c.watchers[:last]
	delete(c.index, s)
	delete(t.sessions[s], ch)
	if len(c.watchers) == 0 {
		c.ownerKnown = false // the next watch is made with whoever owns it then
		t.forgetIdle(ch, c)
	}
}

// forgetIdle drops a channel's entry once nobody watches it and no
// rewatch request or retry of it is pending.
func (t *watchTable[S]) forgetIdle(ch string, c *watchedChannel[S]) {
	if len(c.watchers) == 0 && c.pending == 0 && c.retryAt.IsZero() {
		delete(t.channels, ch)
	}
}

// Events fans a channel's events out to its watchers. Each persisted
// event goes to a session at most once and in seq order; an event without
// a seq (typing, read) goes to every watcher. A gap re-watches the
// channel, and the sessions that missed something get it from the replay.
func (t *watchTable[S]) Events(ch string, evs []*clusterpb.Event) *watchEffects[S] {
	fx := t.begin()
	c := t.channels[ch]
	if c == nil || len(c.watchers) == 0 {
		return fx
	}
	gap := false
	for _, e := range evs {
		for i := range c.watchers {
			w := &c.watchers[i]
			if e.Seq != 0 {
				if e.Seq <= w.pos {
					continue
				}
				if e.Seq > w.pos+1 {
					gap = true
					continue
				}
				w.pos = e.Seq
			}
			fx.Deliver = append(fx.Deliver, delivery[S]{w.s, e.Frame})
		}
	}
	if gap {
		t.rewatch(ch, c, 0)
	}
	return fx
}

// Lost re-watches a channel whose activation ended (WatchLost): each
// session gets what it missed from its position.
func (t *watchTable[S]) Lost(ch string) *watchEffects[S] {
	fx := t.begin()
	if c := t.channels[ch]; c != nil {
		t.rewatch(ch, c, 0)
	}
	return fx
}

// LostNode re-watches every channel owned by node (as the table recorded
// or as the view now says), whose host forgot this gateway's watchers
// when it declared the gateway dead.
func (t *watchTable[S]) LostNode(node string) *watchEffects[S] {
	fx := t.begin()
	for _, ch := range sortedKeys(t.channels) {
		c := t.channels[ch]
		if cur, _ := t.ownerOf(ch); (c.ownerKnown && c.owner.node == node) || cur.node == node {
			t.rewatch(ch, c, 0)
		}
	}
	return fx
}

// Shed re-watches channels some of whose events the node's inbox shed
// (all: every watched channel), as Lost does.
func (t *watchTable[S]) Shed(channels []string, all bool) *watchEffects[S] {
	fx := t.begin()
	if all {
		channels = sortedKeys(t.channels)
	}
	for _, ch := range channels {
		if c := t.channels[ch]; c != nil {
			t.rewatch(ch, c, 0)
		}
	}
	return fx
}

// ViewChanged re-watches every channel whose owner is now another node,
// the same node in a new life (restarted after a crash), the same node
// leading in a new term (the new activation does not know this gateway's
// sessions), or the same node back from dead (see ownerRef). A channel whose owner is down or not known is re-watched once
// one is.
func (t *watchTable[S]) ViewChanged() *watchEffects[S] {
	fx := t.begin()
	var moved []string
	for ch, c := range t.channels {
		if len(c.watchers) == 0 {
			continue
		}
		cur, alive := t.ownerOf(ch)
		if !alive || (c.ownerKnown && cur == c.owner) {
			continue
		}
		c.owner, c.ownerKnown = cur, true
		moved = append(moved, ch)
	}
	slices.Sort(moved)
	for _, ch := range moved {
		t.rewatch(ch, t.channels[ch], 0)
	}
	return fx
}

// rewatch watches ch again for every local session of it, in requests of
// at most batch sessions, each from the lowest position among its
// sessions. At most one rewatch of a channel runs: a trigger meanwhile
// runs another once it ends. It replaces a retry that was set.
func (t *watchTable[S]) rewatch(ch string, c *watchedChannel[S], attempt int) {
	if len(c.watchers) == 0 {
		return
	}
	if c.pending > 0 {
		c.again = true
		return
	}
	if !c.retryAt.IsZero() {
		c.retryAt = time.Time{}
		delete(t.retrying, ch)
	}
	for start := 0; start < len(c.watchers); start += t.batch {
		ws := c.watchers[start:min(start+t.batch, len(c.watchers))]
		b := &rewatchBatch[S]{ch: ch, sessions: make([]S, len(ws)), attempt: attempt}
		since := ^uint64(0)
		for i, w := range ws {
			b.sessions[i] = w.s
			since = min(since, w.pos)
		}
		t.nextBatch++
		t.batches[t.nextBatch] = b
		c.pending++
		t.fx.Rewatch = append(t.fx.Rewatch, rewatchRequest[S]{Batch: t.nextBatch, Channel: ch, Since: since, Sessions: b.sessions, Attempt: attempt})
	}
}

// Rewatched applies the reply to a rewatch request: the result, or the
// error (r is then nil). An unavailable channel is retried, with backoff,
// up to maxRewatchAttempts times; any other error, or a channel whose history
// cannot replay the sessions' positions (Reset), ends the watches: unless
// the channel is gone (not_found: its watchers had channel.deleted) the
// sessions are closed, to reconnect and resume rather than wait for events
// that will not come. A session the channel refused is told with
// channel.unwatched. The others get the replayed events after their own
// positions; when the replay was cut short (EventsHasMore) another
// rewatch fetches the rest.
func (t *watchTable[S]) Rewatched(batch uint64, r *channel.RewatchResult, e *protocol.Error, now time.Time) *watchEffects[S] {
	fx := t.begin()
	b := t.batches[batch]
	if b == nil {
		return fx
	}
	delete(t.batches, batch)
	c := t.channels[b.ch] // kept while the request was pending
	c.pending--
	switch {
	case e != nil && e.Code == protocol.CodeUnavailable && b.attempt < t.attempts:
		t.retry(b.ch, c, b.attempt+1, now)
	case e != nil:
		for _, s := range b.sessions {
			if _, ok := c.index[s]; ok {
				t.remove(b.ch, c, s)
				if e.Code != protocol.CodeNotFound {
					fx.Close = append(fx.Close, s)
				}
			}
		}
	default:
		t.applyRewatch(b, c, r)
	}
	if c.pending == 0 && c.again {
		c.again = false
		t.rewatch(b.ch, c, 0)
		if c.retryAt.IsZero() {
			fx.WakeAt = time.Time{} // the retry just set was replaced
		}
	}
	t.forgetIdle(b.ch, c)
	return fx
}

// applyRewatch applies a rewatch result to the sessions of its batch.
func (t *watchTable[S]) applyRewatch(b *rewatchBatch[S], c *watchedChannel[S], r *channel.RewatchResult) {
	accepted := make(map[string]bool, len(r.Accepted))
	for _, id := range r.Accepted {
		accepted[id] = true
	}
	refused := make(map[string]*protocol.Error, len(r.Refused))
	for _, rs := range r.Refused {
		refused[rs.Session] = rs.Error
	}
	events := replayed(r.Events)
	more := false
	for _, s := range b.sessions {
		id := t.id(s)
		_, open := t.sessions[s]
		i, watching := c.index[s]
		switch {
		case !open || !watching:
			// Ended, or stopped watching, while the request was out: the
			// channel took back a watcher that must go.
			if accepted[id] {
				t.fx.Drop = append(t.fx.Drop, dropWatch[S]{b.ch, s})
			}
		case r.Reset:
			t.remove(b.ch, c, s)
			t.fx.Close = append(t.fx.Close, s)
		case !accepted[id]:
			// Told, so that it neither waits for events that will not
			// come nor tries to resume the watch.
			t.remove(b.ch, c, s)
			t.fx.Deliver = append(t.fx.Deliver, delivery[S]{s, unwatchedFrame(b.ch, refused[id])})
		default:
			w := &c.watchers[i]
			for _, e := range events {
				if e.Seq == w.pos+1 {
					w.pos = e.Seq
					t.fx.Deliver = append(t.fx.Deliver, delivery[S]{s, e.Frame})
				}
			}
			if r.EventsHasMore {
				more = true
			} else if r.Seq > w.pos {
				w.pos = r.Seq
			}
		}
	}
	if more {
		c.again = true
	}
}

// replayed reads the seq of each replayed event frame; a frame without
// one is skipped.
func replayed(frames []json.RawMessage) []*clusterpb.Event {
	evs := make([]*clusterpb.Event, 0, len(frames))
	for _, f := range frames {
		var head struct {
			Seq uint64 `json:"seq"`
		}
		if json.Unmarshal(f, &head) == nil && head.Seq != 0 {
			evs = append(evs, &clusterpb.Event{Seq: head.Seq, Frame: f})
		}
	}
	return evs
}

// retry sets a retry of ch as attempt at now plus its backoff; one retry
// per channel is set at a time, however many of its requests failed.
func (t *watchTable[S]) retry(ch string, c *watchedChannel[S], attempt int, now time.Time) {
	if !c.retryAt.IsZero() {
		return
	}
	c.retryAt, c.retryAttempt = now.Add(retryDelay(attempt)), attempt
	t.retrying[ch] = c
	if t.fx.WakeAt.IsZero() || c.retryAt.Before(t.fx.WakeAt) {
		t.fx.WakeAt = c.retryAt
	}
}

// Tick runs the retries due at now and says when the next one is.
func (t *watchTable[S]) Tick(now time.Time) *watchEffects[S] {
	fx := t.begin()
	var due []string
	for ch, c := range t.retrying {
		if !c.retryAt.After(now) {
			due = append(due, ch)
		}
	}
	slices.Sort(due)
	for _, ch := range due {
		c := t.retrying[ch]
		attempt := c.retryAttempt
		c.retryAt = time.Time{}
		delete(t.retrying, ch)
		t.rewatch(ch, c, attempt)
		t.forgetIdle(ch, c)
	}
	for _, c := range t.retrying {
		if fx.WakeAt.IsZero() || c.retryAt.Before(fx.WakeAt) {
			fx.WakeAt = c.retryAt
		}
	}
	return fx
}

// unwatchedFrame is the channel.unwatched event for why.
func unwatchedFrame(ch string, why *protocol.Error) []byte {
	if why == nil {
		why = protocol.Errorf(protocol.CodeForbidden, "channel %s did not take this session back", ch)
	}
	f, _ := protocol.EncodeEvent(protocol.EventChannelUnwatched, ch, 0, protocol.UnwatchedData{Error: why})
	return f
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
