package actors

import (
	"runtime/debug"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/actors/directory"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// channelActor adapts channel.State to the actor system.
type channelActor struct {
	boot      booting
	id, key   string
	d         *Deps
	state     *channel.State
	p         pipeline
	processed uint64 // messages received from the host
	wake      wakeTimer
}

func newChannelActor(id, key string, d *Deps) actor.Actor {
	if directory.IsShard(id) {
		// Directory shards are scopes of the channel kind with ids no
		// client can name (directory_actor.go).
		return &directoryActor{id: id, key: key, d: d}
	}
	return &channelActor{id: id, key: key, d: d}
}

func (a *channelActor) Receive(ctx actor.Context) {
	if !a.boot.hold(ctx, a.d.Store, ctx.Message()) {
		a.receive(ctx, ctx.Message())
	}
}

func (a *channelActor) receive(ctx actor.Context, msg any) {
	defer func() {
		if r := recover(); r != nil {
			a.d.Logger.Error("channel actor failed", "channel", a.id, "panic", r, "stack", string(debug.Stack()))
			a.stop(ctx, protocol.Errorf(protocol.CodeInternal, "internal error"))
		}
	}()
	switch m := msg.(type) {
	case booted:
		// Held messages follow (answered "restarting" if this fails).
		defer a.boot.flush(func(msg any) { a.receive(ctx, msg) })
		if m.err != nil {
			a.d.Logger.Error("activation barrier failed", "scope", a.key, "err", m.err)
			a.p.dead = true
			ctx.Stop(ctx.Self())
			return
		}
		a.start(ctx)
	case *releaseScope:
		a.p.handOver(ctx, a.d.Store, persistence.Scope{Kind: persistence.KindChannel, ID: a.id}, m)
	case stopNow:
		ctx.Stop(ctx.Self())
	case *clusterpb.Envelope:
		a.processed++
		if a.p.handingOver {
			replyError(ctx, m.GetRequest(), protocol.Errorf(protocol.CodeUnavailable, "channel %s is moving to another node; retry", a.id))
			return
		}
		if a.p.dead {
			replyError(ctx, m.GetRequest(), protocol.Errorf(protocol.CodeUnavailable, "channel %s is restarting; retry", a.id))
			return
		}
		switch b := m.Body.(type) {
		case *clusterpb.Envelope_Request:
			a.handle(ctx, b.Request)
		case *clusterpb.Envelope_SessionsClosed:
			for _, s := range b.SessionsClosed.Sessions {
				a.state.DropSession(b.SessionsClosed.Gateway, s)
			}
		}
	case *committed:
		if err := a.p.onCommitted(ctx, m); err != nil {
			a.d.Logger.Error("channel commit failed", "channel", a.id, "err", err)
			a.stop(ctx, storageError("channel "+a.id, err))
			return
		}
		a.state.Committed(m.index)
	case *fenced:
		if err := a.p.onFenced(ctx, m); err != nil {
			a.stop(ctx, storageError("channel "+a.id, err))
		}
	case *gatewayGone:
		if a.state != nil && a.state.DropGateway(m.addr) {
			// If the gateway was only wrongly declared gone it is still
			// there, believing its sessions watch: tell it to watch again.
			ctx.Send(cluster.InboxPID(m.addr), clusterpb.Wrap(&clusterpb.Envelope_WatchLost{WatchLost: &clusterpb.WatchLost{Channel: a.id}}))
		}
	case *actor.ReceiveTimeout:
		a.maybePassivate(ctx)
	case channelWake:
		a.onWake(ctx)
	case *actor.Stopping:
		a.disarm()
		a.lostWatchers(ctx)
	}
}

// start loads the channel and fences a new epoch. Commands may be handled
// before the fence is durable: their outputs wait behind it.
func (a *channelActor) start(ctx actor.Context) {
	log := a.d.Store.Channel(a.id)
	st, err := channel.Load(a.id, log, a.d.Channel)
	if err == nil {
		var epoch uint64
		if epoch, err = log.Epoch(); err == nil {
			a.state = st
			a.state.SetEpoch(epoch + 1)
			a.p.start(ctx, log, epoch+1, st.Exists())
			ctx.SetReceiveTimeout(a.d.PassivateAfter)
			notifyDirectory(a.d.Cluster, st.Announce())
			return
		}
	}
	a.d.Logger.Error("activate channel", "channel", a.id, "err", err)
	a.p.dead = true
	ctx.Stop(ctx.Self())
}

func (a *channelActor) handle(ctx actor.Context, req *clusterpb.Request) {
	eff := a.state.Handle(channel.Command{Op: req.Op, Args: req.Args, Caller: callerOf(req.Caller)}, a.d.Clock())
	var targets []string
	if len(eff.Events) > 0 {
		targets = a.state.Gateways()
		// Sessions that stopped watching because of this command still
		// get the events it caused (their kick, their leave, the delete).
		for _, wc := range eff.Watch {
			targets = appendUnique(targets, wc.Gateway)
		}
	}
	seq := a.state.LastSeq()
	if eff.Entry != nil {
		a.p.append(ctx, eff.Entry, eff.Index)
	}
	a.p.push(ctx, queued{
		index: eff.Index,
		send:  func(ctx actor.Context) { a.send(ctx, req, eff, targets, seq) },
		fail:  func(ctx actor.Context, e *protocol.Error) { replyError(ctx, req, e) },
	})
	a.arm(ctx)
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func callerOf(c *clusterpb.Caller) channel.Caller {
	if c == nil {
		return channel.Caller{}
	}
	return channel.Caller{User: c.User, Admin: c.Admin, Session: c.Session, Gateway: c.Gateway, Perms: c.Perms}
}

// send delivers one command's output: events to each gateway that was
// watching, then watch changes, then the reply, then user notices. Events
// go before the reply so a joining session's position (the reply's seq)
// already covers the events its own join caused.
func (a *channelActor) send(ctx actor.Context, req *clusterpb.Request, eff *channel.Effects, targets []string, seq uint64) {
	if len(eff.Events) > 0 {
		evs := make([]*clusterpb.Event, len(eff.Events))
		for i, e := range eff.Events {
			evs[i] = &clusterpb.Event{Seq: e.Seq, Frame: e.Frame}
		}
		env := clusterpb.Wrap(&clusterpb.Envelope_Events{Events: &clusterpb.Events{Channel: a.id, Events: evs}})
		for _, gw := range targets {
			ctx.Send(cluster.InboxPID(gw), env)
		}
	}
	for _, wc := range eff.Watch {
		ctx.Send(cluster.InboxPID(wc.Gateway), clusterpb.Wrap(&clusterpb.Envelope_Unwatch{Unwatch: &clusterpb.Unwatch{Channel: a.id, Sessions: wc.Sessions}}))
	}
	if req.ReplyTo != "" {
		env := replyEnvelope(req, eff.Result, eff.Err)
		rep := env.GetReply()
		rep.Watching, rep.Unwatching, rep.Seq = eff.Watching, eff.Unwatching, seq
		ctx.Send(cluster.InboxPID(req.ReplyTo), env)
	}
	for _, n := range eff.Notices {
		notifyUserIndex(a.d.Cluster, n.User, a.id, n.Member)
	}
	notifyDirectory(a.d.Cluster, eff.Directory)
}

// stop answers everything waiting with e and stops: the next message
// activates the channel afresh from what is durable.
func (a *channelActor) stop(ctx actor.Context, e *protocol.Error) {
	if a.p.dead {
		return
	}
	a.p.fail(ctx, e)
	ctx.Stop(ctx.Self())
}

// lostWatchers tells each watching gateway to watch again: this
// activation is ending and its watcher table with it.
func (a *channelActor) lostWatchers(ctx actor.Context) {
	if a.state == nil {
		return
	}
	for _, gw := range a.state.Gateways() {
		ctx.Send(cluster.InboxPID(gw), clusterpb.Wrap(&clusterpb.Envelope_WatchLost{WatchLost: &clusterpb.WatchLost{Channel: a.id}}))
	}
}

// maybePassivate asks the host to stop this activation when nothing
// depends on it staying in memory.
func (a *channelActor) maybePassivate(ctx actor.Context) {
	if a.p.dead || a.state == nil || !a.p.idle() || a.state.Pending() || a.state.Watchers() > 0 {
		return
	}
	ctx.Send(ctx.Parent(), &passivate{key: a.key, processed: a.processed})
}
