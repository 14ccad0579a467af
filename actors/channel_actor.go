package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/actors/directory"
	"github.com/switchboard-chat/switchboard/actors/user"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// channelActor adapts channel.State to the actor system.
type channelActor struct {
	scopeActor
	state *channel.State
	wake  wakeTimer
	// self and root post to the actor from outside a message (commits).
	self *actor.PID
	root *actor.RootContext
}

func newChannelActor(id, key string, sh uint32, d *Deps) actor.Actor {
	sc := persistence.Scope{Kind: persistence.KindChannel, ID: id}
	if directory.IsShard(id) {
		// Directory shards are scopes of the channel kind with ids no
		// client can name (directory_actor.go).
		a := &directoryActor{}
		a.scopeActor = newScopeActor(id, key, "directory", sc, sh, d, a)
		return a
	}
	a := &channelActor{}
	a.scopeActor = newScopeActor(id, key, "channel", sc, sh, d, a)
	return a
}

func (a *channelActor) load(ctx actor.Context, log persistence.Log) error {
	st, err := channel.Load(a.id, log, a.d.Channel)
	if err != nil {
		return err
	}
	a.state = st
	notifyDirectory(a.d.Cluster, st.Announce())
	a.self, a.root = ctx.Self(), ctx.ActorSystem().Root
	a.webhookPending()
	ctx.Send(a.self, importDrive{}) // an import this activation must finish or drop
	return nil
}

func (a *channelActor) request(ctx actor.Context, req *clusterpb.Request) { a.handle(ctx, req) }

func (a *channelActor) committed(index uint64) {
	a.state.Committed(index)
	if _, ok := a.state.ImportOrphaned(); ok {
		a.root.Send(a.self, importDrive{})
	}
}

func (a *channelActor) other(ctx actor.Context, msg any) {
	switch m := msg.(type) {
	case *clusterpb.Envelope:
		if b := m.GetSessionsClosed(); b != nil {
			for _, s := range b.Sessions {
				a.state.DropSession(b.Gateway, s)
			}
		}
	case *gatewayGone:
		if a.state != nil && a.state.DropGateway(m.addr) {
			// If the gateway was only wrongly declared gone it is still
			// there, believing its sessions watch: tell it to watch again.
			ctx.Send(cluster.InboxPID(m.addr), clusterpb.Wrap(&clusterpb.Envelope_WatchLost{WatchLost: &clusterpb.WatchLost{Channel: a.id}}))
		}
	case *actor.ReceiveTimeout:
		// Watchers live in memory: a watched channel stays.
		if a.state != nil && !a.state.Pending() && a.state.Watchers() == 0 {
			a.passivate(ctx)
		}
	case channelWake:
		a.onWake(ctx)
	case importDrive:
		a.driveImport(ctx)
	case *actor.Stopping:
		a.wake.disarm()
		a.lostWatchers(ctx)
	}
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
		a.p.append(eff.Entry, eff.Index)
	}
	a.p.push(queued{
		index: eff.Index,
		send:  func() { a.send(ctx, req, eff, targets, seq) },
		fail:  func(e *protocol.Error) { replyError(ctx, req, e) },
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
		ix := user.IndexArgs{Channel: a.id, Member: n.Member, Reason: n.Reason}
		if n.Member {
			ix.View = eff.NoticeChannel
		}
		notifyUserIndex(a.d.Cluster, n.User, ix)
	}
	notifyDirectory(a.d.Cluster, eff.Directory)
	for _, e := range eff.Events {
		if e.Seq > 0 { // a persisted event: one for webhooks
			a.webhookPending()
			break
		}
	}
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

func (a *channelActor) readOnly(op string) bool { return channel.ReadOnly(op) }
