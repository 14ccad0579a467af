package shard

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// stepBatch steps the messages another node sent this one.
func (e *Engine) stepBatch(b *Batch, now time.Time) {
	if b.Cluster != e.cfg.Cluster || b.ToStore != e.cfg.Store {
		// Another cluster, or this node's previous data directory.
		e.status.dropped.Add(uint64(len(b.Msgs)))
		return
	}
	for _, m := range b.Msgs {
		msg := &pb.Message{}
		if err := proto.Unmarshal(m.Data, msg); err != nil || msg.GetTo() != m.To || msg.GetFrom() != m.From ||
			msg.GetType() == pb.MessageType_MsgSnap {
			e.status.dropped.Add(1)
			continue
		}
		g := e.replicaFor(m.Shard, m.To, msg.GetType())
		if g == nil {
			e.status.dropped.Add(1)
			continue
		}
		g.learn(raftstore.ReplicaDesc{ID: m.From, Node: b.FromNode, Store: b.FromStore})
		if fromLeader(msg.GetType()) {
			g.lastLeader = now
		}
		// Local message types and responses from unknown peers are refused
		// by raft (ErrStepLocalMsg, ErrStepPeerNotFound): dropped.
		_ = g.rn.Step(msg)
	}
}

// fromLeader reports whether a message type is sent only by a leader; such
// a message may create a replica here.
func fromLeader(t pb.MessageType) bool {
	return t == pb.MessageType_MsgApp || t == pb.MessageType_MsgHeartbeat || t == pb.MessageType_MsgSnap
}

// learn records where a replica that sent this node a message lives.
func (g *group) learn(r raftstore.ReplicaDesc) {
	if cur, ok := g.seen[r.ID]; ok && cur == r {
		return
	}
	if len(g.seen) >= 16 {
		clear(g.seen) // a cache: the applied config is authoritative
	}
	g.seen[r.ID] = r
}

// replicaFor returns the group a message to replica `to` of shard is for,
// creating an uninitialized replica when a leader addresses one this node
// does not hold yet (it was just added here), and destroying an older
// replica of the shard that the new one supersedes. Messages to replicas
// this node no longer holds, or to IDs below its tombstone, find none.
func (e *Engine) replicaFor(shard uint32, to uint64, t pb.MessageType) *group {
	g := e.groups[shard]
	switch {
	case g != nil && g.id == to:
		return g
	case g != nil && g.id > to, !fromLeader(t):
		return nil
	}
	ts, err := raftstore.Tombstone(e.cfg.DB, shard)
	if err != nil {
		e.fatal(err)
		return nil
	}
	if to < ts {
		return nil
	}
	b := e.cfg.DB.NewBatch()
	if g != nil {
		e.log.Info("replica superseded by a newer one of this node", "shard", shard, "old", g.id, "new", to)
		if err := e.destroy(b, g); err != nil {
			b.Close()
			e.fatal(err)
			return nil
		}
	}
	st, err := raftstore.Create(e.cfg.DB, b, shard, to)
	if err == nil {
		err = raftstore.Commit(b, false)
	} else {
		b.Close()
	}
	if err != nil {
		e.fatal(err)
		return nil
	}
	if g, err = e.newGroup(st); err != nil {
		e.fatal(err)
		return nil
	}
	e.log.Debug("replica created to receive the shard", "shard", shard, "replica", to)
	return g
}

// destroy removes a replica: its waiters fail, its data goes (in b) and a
// tombstone stays (but for a dropped replica, which held nothing).
func (e *Engine) destroy(b *pebble.Batch, g *group) error {
	g.failWaiters(ErrLost)
	if g.incoming != nil {
		g.incoming.discard(e)
		g.incoming = nil
	}
	delete(e.groups, g.shard)
	e.shardsStale = true
	e.status.remove(g.shard)
	return g.st.Destroy(b, !g.dropped)
}

// destroyRemoved destroys the replicas that applied a configuration
// without themselves.
func (e *Engine) destroyRemoved() {
	var gone []*group
	for _, g := range e.groups {
		if g.removed {
			gone = append(gone, g)
		}
	}
	if len(gone) == 0 {
		return
	}
	b := e.cfg.DB.NewBatch()
	for _, g := range gone {
		e.log.Debug("replica removed from its shard; deleting its data", "shard", g.shard, "replica", g.id)
		if err := e.destroy(b, g); err != nil {
			b.Close()
			e.fatal(err)
			return
		}
	}
	if err := raftstore.Commit(b, false); err != nil {
		e.fatal(err)
	}
}

// incoming is a snapshot whose data is in a file, ready to be stepped.
type incoming struct {
	shard uint32
	msg   *pb.Message
	path  string
	from  raftstore.ReplicaDesc
}

func (in *incoming) index() uint64 { return in.msg.GetSnapshot().GetMetadata().GetIndex() }

func (in *incoming) discard(e *Engine) { _ = e.cfg.Snapshots.FS.Remove(in.path) }

// stepSnapshot gives raft a received snapshot; if raft accepts it, the
// next Ready carries it and handle ingests the file.
func (e *Engine) stepSnapshot(in *incoming, now time.Time) {
	g := e.replicaFor(in.shard, in.msg.GetTo(), pb.MessageType_MsgSnap)
	if g == nil {
		in.discard(e)
		return
	}
	if g.incoming != nil {
		// One per group per round; the other waits for the next.
		e.in.mu.Lock()
		e.in.snaps = append(e.in.snaps, in)
		e.in.mu.Unlock()
		e.notify()
		return
	}
	g.learn(in.from)
	g.lastLeader = now
	g.incoming = in
	_ = g.rn.Step(in.msg)
}

// dropIncoming deletes the files of snapshots raft did not take.
func (e *Engine) dropIncoming() {
	for _, g := range e.groups {
		if g.incoming != nil {
			g.incoming.discard(e)
			g.incoming = nil
		}
	}
}

// ingest installs the snapshot a Ready carries.
func (e *Engine) ingest(g *group, rd raft.Ready) error {
	in := g.incoming
	meta := rd.Snapshot.GetMetadata()
	if in == nil || in.index() != meta.GetIndex() {
		return fmt.Errorf("shard %d: raft accepted snapshot %d without its data", g.shard, meta.GetIndex())
	}
	g.incoming = nil
	if err := g.st.IngestSnapshot(e.cfg.Snapshots, in.path, meta, rd.HardState); err != nil {
		return err
	}
	g.failWaiters(ErrLost)
	g.changed = true
	e.status.snapshotsApplied.Add(1)
	e.log.Debug("snapshot applied", "shard", g.shard, "replica", g.id, "index", meta.GetIndex(), "from", in.from.Node)
	return nil
}
