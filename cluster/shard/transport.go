package shard

import (
	"context"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// Transport carries raft traffic between nodes. The engine calls it from
// its loop (Send) and from snapshot senders (SendSnapshotChunk).
type Transport interface {
	// Send hands one node's raft messages of a round to the network. It must
	// not block: a transport with a full queue, or that knows the node is
	// down, drops the batch and returns false (raft retries; the engine
	// reports the replicas unreachable).
	Send(node string, b *Batch) bool
	// SendSnapshotChunk delivers one chunk of a snapshot to node and waits
	// for its acknowledgement (or ctx, or a failure). A snapshot's chunks go
	// one at a time, so memory stays bounded on both sides.
	SendSnapshotChunk(ctx context.Context, node string, c *SnapshotChunk) error
}

// Batch is one round's raft messages from one node to another.
type Batch struct {
	// Cluster is the sender's cluster id: batches of another cluster are
	// dropped.
	Cluster   string
	FromNode  string
	FromStore uint64
	// ToStore is the store the sender addresses: a node whose data
	// directory was wiped has a new store and drops messages for the old.
	ToStore uint64
	Msgs    []Msg
}

// Msg is one raft message of a shard, marshalled.
type Msg struct {
	Shard    uint32
	From, To uint64 // replica IDs
	Data     []byte // a raftpb.Message
}

// SnapshotChunk is one piece of a snapshot stream. The first (Seq 0)
// carries the MsgSnap; the last has Final set.
type SnapshotChunk struct {
	Cluster   string
	FromNode  string
	FromStore uint64
	ToStore   uint64
	// ID identifies the stream on the sending node.
	ID    uint64
	Shard uint32
	Seq   uint64
	Msg   []byte // the raftpb.Message of type MsgSnap, first chunk only
	KVs   []raftstore.KV
	Final bool
}

// Size returns the bytes of keys and values the chunk carries.
func (c *SnapshotChunk) Size() int {
	n := len(c.Msg)
	for _, kv := range c.KVs {
		n += len(kv.Key) + len(kv.Value)
	}
	return n
}
