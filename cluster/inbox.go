package cluster

import (
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
