package cluster

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// Handler receives what channels send to this node's gateway. Calls come
// from one goroutine, in the order the node received them; a Reply
// callback passed to Request runs on that same goroutine, so a reply and
// the events a channel sent after it are handled in that order.
type Handler interface {
	Events(ev *clusterpb.Events)
	Unwatch(u *clusterpb.Unwatch)
	WatchLost(w *clusterpb.WatchLost)
	// EventsShed names the channels some of whose persisted events the
	// inbox shed because it was full (see eventBound); all means more
	// channels than it keeps names of: every channel may have lost some.
	EventsShed(channels []string, all bool)
	// Sheddable says whether the inbox may shed ev, a batch that does not
	// fit. It is called on the transport's goroutines, not the inbox's,
	// so it must only look at ev.
	Sheddable(ev *clusterpb.Events) bool
}

// SetHandler installs the gateway's handler. Call it before serving.
func (c *Cluster) SetHandler(h Handler) { c.handler.Store(&h) }

// Do runs fn on the inbox goroutine, after everything the inbox has
// already received. State touched only by Handler calls, reply callbacks
// and Do needs no lock.
func (c *Cluster) Do(fn func()) { c.system.Root.Send(c.inbox, inboxFunc(fn)) }

type inboxFunc func()

// inboxActor is the node's single receiving point for replies and events.
type inboxActor struct{ c *Cluster }

// inboxProps makes the inbox. Its mailbox is protoactor's unbounded one,
// and the bound is put on what can grow in it:
//   - replies, at most one per request this node has outstanding, which
//     Config.MaxPending bounds;
//   - functions the node posts through Do, each for a reply, a timer or a
//     membership change it made itself;
//   - channel events for fan-out, which arrive at the rate other nodes'
//     channels make them: these are bounded in bytes (eventBound).
//
// A bounded protoactor mailbox would not do: when full it either blocks
// the sender (the sender may be the remote transport's reader, shared by
// every message from a node, or the inbox itself posting through Do: a
// deadlock) or silently drops the oldest message (a lost reply or event
// batch, which no session would hear of).
func (c *Cluster) inboxProps() *actor.Props {
	opts := []actor.PropsOption{actor.WithMailbox(func() actor.Mailbox {
		return &inboxMailbox{Mailbox: actor.Unbounded(&c.inboxDepth)(), c: c}
	})}
	if c.cfg.Workers != nil {
		opts = append(opts, actor.WithDispatcher(c.cfg.Workers))
	}
	return actor.PropsFromProducer(func() actor.Actor { return &inboxActor{c: c} }, opts...)
}

// InboxDepth returns how many messages wait in the inbox's mailbox.
func (c *Cluster) InboxDepth() int64 { return c.inboxDepth.n.Load() }

// InboxEventBytes returns the bytes of channel events waiting in the inbox.
func (c *Cluster) InboxEventBytes() int64 { return c.events.queued.Load() }

// InboxShed returns how many event batches the inbox has shed.
func (c *Cluster) InboxShed() uint64 { return c.events.shed.Load() }

// inboxDepth counts the inbox's waiting messages: a mailbox middleware
// that sees each message posted and, once handled, received.
type inboxDepth struct{ n atomic.Int64 }

func (d *inboxDepth) MailboxStarted()     {}
func (d *inboxDepth) MessagePosted(any)   { d.n.Add(1) }
func (d *inboxDepth) MessageReceived(any) { d.n.Add(-1) }
func (d *inboxDepth) MailboxEmpty()       {}

// inboxMailbox admits channel events to the inbox within eventBound. An
// admitted batch goes in as a queuedEvents, which carries what it counts
// for, so the inbox neither unwraps nor measures it again.
type inboxMailbox struct {
	actor.Mailbox
	c *Cluster
}

func (m *inboxMailbox) PostUserMessage(msg any) {
	ev := eventsOf(msg)
	if ev == nil {
		m.Mailbox.PostUserMessage(msg)
		return
	}
	n := eventBytes(ev)
	if !m.c.events.admit(n) {
		if m.c.sheddable(ev) {
			if m.c.events.lose(ev) {
				m.Mailbox.PostUserMessage(inboxShed{})
			}
			return
		}
		m.c.events.queued.Add(n) // may not be shed: taken over the bound
	}
	m.Mailbox.PostUserMessage(queuedEvents{ev: ev, n: n})
}

// queuedEvents is an admitted batch and what it counts for.
type queuedEvents struct {
	ev *clusterpb.Events
	n  int64
}

func eventsOf(msg any) *clusterpb.Events {
	if env, ok := actor.UnwrapEnvelopeMessage(msg).(*clusterpb.Envelope); ok {
		if b, ok := env.Body.(*clusterpb.Envelope_Events); ok {
			return b.Events
		}
	}
	return nil
}

func (c *Cluster) sheddable(ev *clusterpb.Events) bool {
	hp := c.handler.Load()
	return hp == nil || (*hp).Sheddable(ev)
}

// inboxShed asks the inbox to tell the handler which channels lost events.
type inboxShed struct{}

// maxShedNames bounds the channel names eventBound keeps between two
// reports; past it a report says every channel may have lost events.
const maxShedNames = 1 << 16

// eventBound bounds the bytes of channel events waiting in the inbox.
// When the node lacks the CPU to fan events out as fast as channels make
// them, a batch that would take the queue past the limit is shed instead
// of queued (a batch that finds the queue empty is always taken, whatever
// its size). Shedding loses nothing for good: persisted events carry seqs,
// and the channel of a shed batch is reported to the handler, after
// everything queued before it, so its watchers are re-watched from the
// last seq each got and the channel replays what they missed. Ephemeral
// events (typing, read) in a shed batch are gone, as events to a slow
// session are.
type eventBound struct {
	limit  int64
	queued atomic.Int64  // bytes of admitted batches not yet handled
	shed   atomic.Uint64 // batches shed

	mu     sync.Mutex
	lost   map[string]struct{} // channels that lost persisted events since the last report
	all    bool                // lost overflowed maxShedNames
	marked bool                // an inboxShed is queued
}

// eventBytes is what a batch counts for against the bound.
func eventBytes(ev *clusterpb.Events) int64 {
	n := int64(len(ev.Channel))
	for _, e := range ev.Events {
		n += int64(len(e.Frame)) + 16
	}
	return n
}

// admit counts n bytes in when they fit under the limit, or when nothing
// is queued.
func (b *eventBound) admit(n int64) bool {
	for {
		q := b.queued.Load()
		if q > 0 && q+n > b.limit {
			return false
		}
		if b.queued.CompareAndSwap(q, q+n) {
			return true
		}
	}
}

// lose records a shed batch; it returns true when a report must be queued.
func (b *eventBound) lose(ev *clusterpb.Events) bool {
	b.shed.Add(1)
	persisted := false
	for _, e := range ev.Events {
		persisted = persisted || e.Seq != 0
	}
	if !persisted {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.all {
		if len(b.lost) >= maxShedNames {
			b.all, b.lost = true, nil
		} else {
			if b.lost == nil {
				b.lost = make(map[string]struct{})
			}
			b.lost[ev.Channel] = struct{}{}
		}
	}
	if b.marked {
		return false
	}
	b.marked = true
	return true
}

// report takes the channels recorded since the last report.
func (b *eventBound) report() (channels []string, all bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.lost {
		channels = append(channels, ch)
	}
	all = b.all
	b.lost, b.all, b.marked = nil, false, false
	return channels, all
}

func (a *inboxActor) Receive(ctx actor.Context) {
	var env *clusterpb.Envelope
	switch m := ctx.Message().(type) {
	case inboxFunc:
		m()
		return
	case queuedEvents:
		defer a.c.events.queued.Add(-m.n)
		if hp := a.c.handler.Load(); hp != nil {
			(*hp).Events(m.ev)
		}
		return
	case inboxShed:
		channels, all := a.c.events.report()
		if hp := a.c.handler.Load(); hp != nil && (len(channels) > 0 || all) {
			(*hp).EventsShed(channels, all)
		}
		return
	case *clusterpb.Envelope:
		env = m
	default:
		return
	}
	switch b := env.Body.(type) {
	case *clusterpb.Envelope_Reply:
		a.c.router.deliver(b.Reply)
		return
	case *clusterpb.Envelope_Shards:
		a.c.heardShards(b.Shards)
		return
	}
	hp := a.c.handler.Load()
	if hp == nil {
		return
	}
	h := *hp
	switch b := env.Body.(type) {
	case *clusterpb.Envelope_Unwatch:
		h.Unwatch(b.Unwatch)
	case *clusterpb.Envelope_WatchLost:
		h.WatchLost(b.WatchLost)
	}
}
