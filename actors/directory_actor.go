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

// directoryActor adapts a directory shard (directory.State) to the actor
// system. A shard is a scope of the channel kind whose id starts with
// directory.Prefix, so placement, activation, fencing, hand-off and drain
// treat it exactly like a channel; the host activates it through
// newChannelActor.
type directoryActor struct {
	boot      booting
	id, key   string
	d         *Deps
	state     *directory.State
	p         pipeline
	processed uint64
}

func (a *directoryActor) Receive(ctx actor.Context) {
	if !a.boot.hold(ctx, a.d.Store, ctx.Message()) {
		a.receive(ctx, ctx.Message())
	}
}

func (a *directoryActor) receive(ctx actor.Context, msg any) {
	defer func() {
		if r := recover(); r != nil {
			a.d.Logger.Error("directory actor failed", "shard", a.id, "panic", r, "stack", string(debug.Stack()))
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
		log := a.d.Store.Channel(a.id)
		epoch, err := log.Epoch()
		if err != nil {
			a.d.Logger.Error("activate directory shard", "shard", a.id, "err", err)
			a.p.dead = true
			ctx.Stop(ctx.Self())
			return
		}
		a.state = directory.Load(a.id, log)
		a.state.SetEpoch(epoch + 1)
		a.p.start(ctx, log, epoch+1, true)
		ctx.SetReceiveTimeout(a.d.PassivateAfter)
	case *releaseScope:
		a.p.handOver(ctx, a.d.Store, persistence.Scope{Kind: persistence.KindChannel, ID: a.id}, m)
	case stopNow:
		ctx.Stop(ctx.Self())
	case *clusterpb.Envelope:
		a.processed++
		req := m.GetRequest()
		if req == nil {
			return
		}
		if a.p.handingOver || a.p.dead {
			replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "directory %s is moving or restarting; retry", a.id))
			return
		}
		eff := a.state.Handle(req.Op, req.Args, a.d.Clock())
		if eff.Entry != nil {
			a.p.append(ctx, eff.Entry, eff.Index)
		}
		a.p.push(ctx, queued{
			index: eff.Index,
			send: func(ctx actor.Context) {
				if req.ReplyTo != "" {
					ctx.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, eff.Result, eff.Err))
				}
			},
			fail: func(ctx actor.Context, e *protocol.Error) { replyError(ctx, req, e) },
		})
	case *committed:
		if err := a.p.onCommitted(ctx, m); err != nil {
			a.stop(ctx, storageError("directory "+a.id, err))
			return
		}
		a.state.Committed(m.index)
	case *fenced:
		if err := a.p.onFenced(ctx, m); err != nil {
			a.stop(ctx, storageError("directory "+a.id, err))
		}
	case *actor.ReceiveTimeout:
		if !a.p.dead && a.p.idle() && !a.state.Pending() {
			ctx.Send(ctx.Parent(), &passivate{key: a.key, processed: a.processed})
		}
	}
}

func (a *directoryActor) stop(ctx actor.Context, e *protocol.Error) {
	if a.p.dead {
		return
	}
	a.p.fail(ctx, e)
	ctx.Stop(ctx.Self())
}

// notifyDirectory sends a channel's listing to directory shards. Like the
// user index, it is a notification: a shard whose node is down misses it,
// and the channel announces itself again when it next activates.
func notifyDirectory(c *cluster.Cluster, notices []channel.DirNotice) {
	for _, n := range notices {
		c.Notify(&clusterpb.Request{Kind: clusterpb.Kind_KIND_CHANNEL, Target: n.Shard, Op: directory.OpPut, Args: n.Args})
	}
}
