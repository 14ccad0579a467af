package actors

import (
	"encoding/json"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/actors/user"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// userActor adapts user.State to the actor system.
type userActor struct {
	scopeActor
	state *user.State
	wake  wakeTimer
}

func newUserActor(id, key string, sh uint32, d *Deps) actor.Actor {
	a := &userActor{}
	a.scopeActor = newScopeActor(id, key, "user", persistence.Scope{Kind: persistence.KindUser, ID: id}, sh, d, a)
	return a
}

func (a *userActor) load(ctx actor.Context, log persistence.Log) error {
	st, err := user.Load(a.id, log, &a.d.User)
	if err != nil {
		return err
	}
	a.state = st
	return nil
}

func (a *userActor) request(ctx actor.Context, req *clusterpb.Request) { a.handle(ctx, req) }

func (a *userActor) committed(index uint64) { a.state.Committed(index) }

func (a *userActor) other(ctx actor.Context, msg any) {
	switch m := msg.(type) {
	case userWake:
		a.wake.fired()
		a.internal(ctx, user.OpTick, struct{}{})
	case *gatewayGone:
		a.internal(ctx, user.OpGatewayGone, user.GatewayGoneArgs{Gateway: m.addr})
	case *actor.Stopping:
		a.wake.disarm()
	case *actor.ReceiveTimeout:
		// Presence leases live in memory: an actor holding some stays.
		if a.state == nil || !a.state.Busy() {
			a.passivate(ctx)
		}
	}
}

func (a *userActor) handle(ctx actor.Context, req *clusterpb.Request) {
	c := user.Caller{}
	if req.Caller != nil {
		c = user.Caller{User: req.Caller.User, Admin: req.Caller.Admin, Session: req.Caller.Session, Gateway: req.Caller.Gateway}
	}
	eff := a.state.Handle(user.Command{Op: req.Op, Args: req.Args, Caller: c}, a.d.Clock())
	watchers := eff.EventsTo
	var sessions []string
	if len(eff.Notices) > 0 {
		sessions = a.state.SessionGateways()
	}
	if eff.Entry != nil {
		a.p.append(eff.Entry, eff.Index)
	}
	replied := false
	if eff.ReplyEarly && eff.Err == nil && req.ReplyTo != "" {
		ctx.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, eff.Result, nil))
		replied = true
	}
	a.p.push(queued{
		index: eff.Index,
		send: func() {
			if req.ReplyTo != "" && !replied {
				ctx.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, eff.Result, eff.Err))
			}
			sendPresence(ctx, a.id, watchers, eff.Events)
			sendFrames(ctx, user.NoticeTopic(a.id), sessions, eff.Notices)
		},
		fail: func(e *protocol.Error) {
			if !replied {
				replyError(ctx, req, e)
			}
		},
	})
	a.arm(ctx)
}

// notifyUserIndex tells a user's actor the user joined or left a channel
// (and, with a reason, to tell the user's sessions). It is a
// notification: if the user's node is down the index misses the change
// until the user next joins or leaves (see docs/operations.md), and the
// sessions miss the notice.
func notifyUserIndex(c Cluster, userID string, ix user.IndexArgs) {
	args, _ := json.Marshal(ix)
	c.Notify(&clusterpb.Request{Kind: clusterpb.Kind_KIND_USER, Target: userID, Op: user.OpIndex, Args: args})
}

func (a *userActor) readOnly(op string) bool { return user.ReadOnly(op) }
