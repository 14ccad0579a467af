package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// Raft batches go on raft streams (raftstream.go) when the transport is
// gRPC. Otherwise (an in-memory network, or a peer of an older build) they
// ride the actor transport, in the envelope every node registers: a
// round's messages to a node go as one RaftBatch to that node's "raft"
// actor, which hands it to the engine without waiting (the engine drops
// what does not fit its queue; raft resends). Snapshot chunks
// go one at a time to the "raftsnap" actor, each answered with a Reply
// that the sender's router matches like any request's, so a chunk to a
// node that dies fails at once.
const (
	raftName     = "raft"
	raftSnapName = "raftsnap"
)

// RaftReceiver is what takes this node's incoming raft traffic (a
// *shard.Engine).
type RaftReceiver interface {
	Receive(b *shard.Batch)
	ReceiveSnapshotChunk(c *shard.SnapshotChunk) error
}

// ServeRaft starts the actors that deliver incoming raft traffic to r.
func (c *Cluster) ServeRaft(r RaftReceiver) error {
	if c.raft != nil {
		c.raft.setReceiver(r)
	}
	if _, err := c.system.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		if env, ok := ctx.Message().(*clusterpb.Envelope); ok {
			if b := env.GetRaft(); b != nil {
				r.Receive(batchFromPB(b))
			}
		}
	}), raftName); err != nil {
		return err
	}
	_, err := c.system.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		env, ok := ctx.Message().(*clusterpb.Envelope)
		if !ok || env.GetSnapshotChunk() == nil {
			return
		}
		sc := env.GetSnapshotChunk()
		rep := &clusterpb.Reply{Id: sc.Call}
		if err := r.ReceiveSnapshotChunk(chunkFromPB(sc)); err != nil {
			rep.Error = &clusterpb.Error{Code: "unavailable", Message: err.Error()}
		}
		ctx.Send(InboxPID(sc.ReplyTo), clusterpb.Wrap(&clusterpb.Envelope_Reply{Reply: rep}))
	}), raftSnapName)
	return err
}

// RaftTransport returns the engine's transport: raft streams
// (raftstream.go) on the gRPC transport, actor envelopes on another.
func (c *Cluster) RaftTransport() shard.Transport {
	if c.raft != nil {
		return raftStreamNet{raftNet{c}, c.raft}
	}
	return raftNet{c}
}

// raftStreamNet sends batches on raft streams and snapshot chunks as
// actor envelopes.
type raftStreamNet struct {
	raftNet
	s *raftStreams
}

func (n raftStreamNet) Send(node string, b *shard.Batch) bool { return n.s.Send(node, b) }

type raftNet struct{ c *Cluster }

// remoteOf returns the remote address of an alive (or suspect) node.
func (n raftNet) remoteOf(node string) (string, bool) {
	m, ok := n.c.View().Member(node)
	if !ok || m.State == StateDead || m.State == StateLeft || m.Meta.Remote == "" {
		return "", false
	}
	return m.Meta.Remote, true
}

func (n raftNet) Send(node string, b *shard.Batch) bool {
	addr, ok := n.remoteOf(node)
	if !ok {
		return false
	}
	n.sendEnvelope(addr, b)
	return true
}

// sendEnvelope sends b to the raft actor at addr.
func (n raftNet) sendEnvelope(addr string, b *shard.Batch) {
	n.c.system.Root.Send(actor.NewPID(addr, raftName), clusterpb.Wrap(&clusterpb.Envelope_Raft{Raft: batchToPB(b)}))
}

var errNodeDown = errors.New("cluster: node down")

func (n raftNet) SendSnapshotChunk(ctx context.Context, node string, ch *shard.SnapshotChunk) error {
	addr, ok := n.remoteOf(node)
	if !ok {
		return fmt.Errorf("%w: %s", errNodeDown, node)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(n.c.cfg.RequestTimeout)
	}
	answer := make(chan *clusterpb.Reply, 1)
	id, ok := n.c.router.add(node, deadline, func(rep *clusterpb.Reply) { answer <- rep })
	if !ok {
		return errors.New("cluster: too many requests in flight")
	}
	pb := chunkToPB(ch)
	pb.Call, pb.ReplyTo = id, n.c.addr
	n.c.system.Root.Send(actor.NewPID(addr, raftSnapName), clusterpb.Wrap(&clusterpb.Envelope_SnapshotChunk{SnapshotChunk: pb}))
	select {
	case rep := <-answer:
		if rep.Error != nil {
			return fmt.Errorf("snapshot chunk refused by %s: %s", node, rep.Error.Message)
		}
		return nil
	case <-ctx.Done():
		if cl := n.c.router.take(id); cl == nil {
			<-answer // answered meanwhile
		}
		return ctx.Err()
	}
}

func batchToPB(b *shard.Batch) *clusterpb.RaftBatch {
	out := &clusterpb.RaftBatch{Cluster: b.Cluster, FromNode: b.FromNode, FromStore: b.FromStore, ToStore: b.ToStore,
		Msgs: make([]*clusterpb.RaftMessage, 0, len(b.Msgs))}
	appendMsgsPB(out, b.Msgs)
	return out
}

// appendMsgsPB adds msgs to out's messages.
func appendMsgsPB(out *clusterpb.RaftBatch, msgs []shard.Msg) {
	for _, m := range msgs {
		out.Msgs = append(out.Msgs, &clusterpb.RaftMessage{Shard: m.Shard, From: m.From, To: m.To, Data: m.Data})
	}
}

func batchFromPB(b *clusterpb.RaftBatch) *shard.Batch {
	out := &shard.Batch{Cluster: b.Cluster, FromNode: b.FromNode, FromStore: b.FromStore, ToStore: b.ToStore, Msgs: make([]shard.Msg, len(b.Msgs))}
	for i, m := range b.Msgs {
		out.Msgs[i] = shard.Msg{Shard: m.Shard, From: m.From, To: m.To, Data: m.Data}
	}
	return out
}

func chunkToPB(c *shard.SnapshotChunk) *clusterpb.SnapshotChunk {
	out := &clusterpb.SnapshotChunk{Cluster: c.Cluster, FromNode: c.FromNode, FromStore: c.FromStore, ToStore: c.ToStore,
		Id: c.ID, Shard: c.Shard, Seq: c.Seq, Msg: c.Msg, Final: c.Final, Kvs: make([]*clusterpb.KV, len(c.KVs))}
	for i, kv := range c.KVs {
		out.Kvs[i] = &clusterpb.KV{Key: kv.Key, Value: kv.Value}
	}
	return out
}

func chunkFromPB(c *clusterpb.SnapshotChunk) *shard.SnapshotChunk {
	out := &shard.SnapshotChunk{Cluster: c.Cluster, FromNode: c.FromNode, FromStore: c.FromStore, ToStore: c.ToStore,
		ID: c.Id, Shard: c.Shard, Seq: c.Seq, Msg: c.Msg, Final: c.Final, KVs: make([]raftstore.KV, len(c.Kvs))}
	for i, kv := range c.Kvs {
		out.KVs[i] = raftstore.KV{Key: kv.Key, Value: kv.Value}
	}
	return out
}
