package actors

import (
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
// directory.Prefix, so sharding, activation and replication treat it
// exactly like a channel; the host activates it through newChannelActor.
type directoryActor struct {
	scopeActor
	state *directory.State
}

func (a *directoryActor) load(ctx actor.Context, log persistence.Log) error {
	a.state = directory.Load(a.id, log)
	return nil
}

func (a *directoryActor) request(ctx actor.Context, req *clusterpb.Request) {
	eff := a.state.Handle(req.Op, req.Args, a.d.Clock())
	if eff.Entry != nil {
		a.p.append(eff.Entry, eff.Index)
	}
	a.p.push(queued{
		index: eff.Index,
		send: func() {
			if req.ReplyTo != "" {
				ctx.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, eff.Result, eff.Err))
			}
		},
		fail: func(e *protocol.Error) { replyError(ctx, req, e) },
	})
}

func (a *directoryActor) committed(index uint64) { a.state.Committed(index) }

func (a *directoryActor) other(ctx actor.Context, msg any) {
	if _, ok := msg.(*actor.ReceiveTimeout); ok && !a.state.Pending() {
		a.passivate(ctx)
	}
}

// notifyDirectory sends a channel's listing to directory shards. Like the
// user index, it is a notification: a shard whose node is down misses it,
// and the channel announces itself again when it next activates.
func notifyDirectory(c Cluster, notices []channel.DirNotice) {
	for _, n := range notices {
		c.Notify(&clusterpb.Request{Kind: clusterpb.Kind_KIND_CHANNEL, Target: n.Shard, Op: directory.OpPut, Args: n.Args})
	}
}

func (a *directoryActor) readOnly(op string) bool { return directory.ReadOnly(op) }
