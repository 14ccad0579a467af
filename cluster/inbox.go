package cluster

import (
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

// inboxProps makes the inbox. Its mailbox is unbounded, on purpose:
// protoactor-go's bounded mailboxes either block the sender when full
// (the sender may be the remote transport's reader, shared by every
// message from a node, or the inbox itself re-posting through Do: a
// deadlock) or silently drop the oldest message (a lost reply or event
// batch, which no session would hear of). The inbox does no I/O and never
// blocks — each session's own outbound queue is bounded and closes the
// session when full — so it only grows when the node lacks CPU for its
// fan-out; InboxDepth shows that.
func (c *Cluster) inboxProps() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &inboxActor{c: c} },
		actor.WithMailbox(actor.Unbounded(&c.inboxDepth)))
}

// InboxDepth returns how many messages wait in the inbox's mailbox.
func (c *Cluster) InboxDepth() int64 { return c.inboxDepth.n.Load() }

// inboxDepth counts the inbox's waiting messages: a mailbox middleware
// that sees each message posted and, once handled, received.
type inboxDepth struct{ n atomic.Int64 }

func (d *inboxDepth) MailboxStarted()     {}
func (d *inboxDepth) MessagePosted(any)   { d.n.Add(1) }
func (d *inboxDepth) MessageReceived(any) { d.n.Add(-1) }
func (d *inboxDepth) MailboxEmpty()       {}

func (a *inboxActor) Receive(ctx actor.Context) {
	var env *clusterpb.Envelope
	switch m := ctx.Message().(type) {
	case inboxFunc:
		m()
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
	}
	hp := a.c.handler.Load()
	if hp == nil {
		return
	}
	h := *hp
	switch b := env.Body.(type) {
	case *clusterpb.Envelope_Events:
		h.Events(b.Events)
	case *clusterpb.Envelope_Unwatch:
		h.Unwatch(b.Unwatch)
	case *clusterpb.Envelope_WatchLost:
		h.WatchLost(b.WatchLost)
	}
}
