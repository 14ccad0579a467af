package actors

import (
	"encoding/json"
	"runtime/debug"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/actors/user"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// userActor adapts user.State to the actor system.
type userActor struct {
	boot      booting
	id, key   string
	d         *Deps
	state     *user.State
	p         pipeline
	processed uint64
	wake      wakeTimer
}

func newUserActor(id, key string, d *Deps) actor.Actor {
	return &userActor{id: id, key: key, d: d}
}

func (a *userActor) Receive(ctx actor.Context) {
	if !a.boot.hold(ctx, a.d.Store, ctx.Message()) {
		a.receive(ctx, ctx.Message())
	}
}

func (a *userActor) receive(ctx actor.Context, msg any) {
	defer func() {
		if r := recover(); r != nil {
			a.d.Logger.Error("user actor failed", "user", a.id, "panic", r, "stack", string(debug.Stack()))
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
		log := a.d.Store.User(a.id)
		st, err := user.Load(a.id, log, a.d.User)
		var epoch uint64
		if err == nil {
			epoch, err = log.Epoch()
		}
		if err != nil {
			a.d.Logger.Error("activate user", "user", a.id, "err", err)
			a.p.dead = true
			ctx.Stop(ctx.Self())
			return
		}
		a.state = st
		a.state.SetEpoch(epoch + 1)
		a.p.start(ctx, log, epoch+1, st.Exists())
		ctx.SetReceiveTimeout(a.d.PassivateAfter)
	case *releaseScope:
		a.p.handOver(ctx, a.d.Store, persistence.Scope{Kind: persistence.KindUser, ID: a.id}, m)
	case stopNow:
		ctx.Stop(ctx.Self())
	case *clusterpb.Envelope:
		a.processed++
		req := m.GetRequest()
		if req == nil {
			return
		}
		if a.p.handingOver {
			replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "user %s is moving to another node; retry", a.id))
			return
		}
		if a.p.dead {
			replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "user %s is restarting; retry", a.id))
			return
		}
		a.handle(ctx, req)
	case *committed:
		if err := a.p.onCommitted(ctx, m); err != nil {
			a.stop(ctx, storageError("user "+a.id, err))
			return
		}
		a.state.Committed(m.index)
	case userWake:
		a.wake.timer = nil
		a.internal(ctx, user.OpTick, struct{}{})
	case *gatewayGone:
		a.internal(ctx, user.OpGatewayGone, user.GatewayGoneArgs{Gateway: m.addr})
	case *actor.Stopping:
		a.disarm()
	case *fenced:
		if err := a.p.onFenced(ctx, m); err != nil {
			a.stop(ctx, storageError("user "+a.id, err))
		}
	case *actor.ReceiveTimeout:
		// Presence leases live in memory: an actor holding some stays.
		if !a.p.dead && a.p.idle() && (a.state == nil || !a.state.Busy()) {
			ctx.Send(ctx.Parent(), &passivate{key: a.key, processed: a.processed})
		}
	}
}

func (a *userActor) handle(ctx actor.Context, req *clusterpb.Request) {
	c := user.Caller{}
	if req.Caller != nil {
		c = user.Caller{User: req.Caller.User, Admin: req.Caller.Admin, Session: req.Caller.Session, Gateway: req.Caller.Gateway}
	}
	eff := a.state.Handle(user.Command{Op: req.Op, Args: req.Args, Caller: c}, a.d.Clock())
	var watchers []string
	if len(eff.Events) > 0 {
		watchers = a.state.PresenceGateways()
	}
	if eff.Entry != nil {
		a.p.append(ctx, eff.Entry, eff.Index)
	}
	a.p.push(ctx, queued{
		index: eff.Index,
		send: func(ctx actor.Context) {
			if req.ReplyTo != "" {
				ctx.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, eff.Result, eff.Err))
			}
			sendPresence(ctx, a.id, watchers, eff.Events)
		},
		fail: func(ctx actor.Context, e *protocol.Error) { replyError(ctx, req, e) },
	})
	a.arm(ctx)
}

func (a *userActor) stop(ctx actor.Context, e *protocol.Error) {
	if a.p.dead {
		return
	}
	a.p.fail(ctx, e)
	ctx.Stop(ctx.Self())
}

// notifyUserIndex tells a user's actor the user joined or left a channel.
// It is a notification: if the user's node is down the index misses the
// change until the user next joins or leaves (see docs/operations.md).
func notifyUserIndex(c *cluster.Cluster, userID, channelID string, member bool) {
	args, _ := json.Marshal(user.IndexArgs{Channel: channelID, Member: member})
	c.Notify(&clusterpb.Request{Kind: clusterpb.Kind_KIND_USER, Target: userID, Op: user.OpIndex, Args: args})
}
