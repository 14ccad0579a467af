package shard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// Snapshots (RAFT-NOTES §6). A MsgSnap never goes in a Batch: a stream
// sends it with the shard's state, read from a Pebble snapshot in chunks
// of SnapshotChunkBytes, one chunk in flight at a time. The receiver writes
// the chunks into an SST file and, once the last is in, hands the MsgSnap
// to its loop; raft then takes it or not. The sender tells its raft how it
// went (ReportSnapshot), without which the follower would stay paused.

// snapshotIdle is how long a stream may pause before either side drops it.
const snapshotIdle = 30 * time.Second

type snapshots struct {
	mu      sync.Mutex // guards the fields below
	sending int
	nextID  uint64
	recv    map[recvKey]*recvSession
	max     int // streams sent at once
	cancel  context.CancelFunc
	ctx     context.Context
}

type recvKey struct {
	store uint64
	id    uint64
}

type recvSession struct {
	w    *raftstore.SnapshotWriter
	msg  *pb.Message
	from raftstore.ReplicaDesc
	next uint64
	at   time.Time
}

func (s *snapshots) init(maxSends int) {
	s.max = maxSends
	s.recv = make(map[recvKey]*recvSession)
	s.ctx, s.cancel = context.WithCancel(context.Background())
}

// canSend tells raft whether this node may start another stream now.
func (s *snapshots) canSend() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sending < s.max
}

// send starts streaming a snapshot of shard to replica to at p. data is
// the MsgSnap raft emitted.
func (s *snapshots) send(e *Engine, shard uint32, to uint64, p raftstore.ReplicaDesc, data []byte) {
	s.mu.Lock()
	if s.sending >= s.max {
		s.mu.Unlock()
		e.report(shard, to, false)
		return
	}
	s.sending++
	s.nextID++
	id := s.nextID
	s.mu.Unlock()
	e.spawn(func() {
		err := e.streamSnapshot(s.ctx, id, shard, p, data)
		s.mu.Lock()
		s.sending--
		s.mu.Unlock()
		if err != nil {
			e.log.Info("snapshot not delivered", "shard", shard, "to", p.Node, "err", err)
		}
		e.report(shard, to, err == nil)
	})
}

// report queues the outcome of a stream for the loop.
func (e *Engine) report(shard uint32, to uint64, ok bool) {
	_ = e.push(func(in *inputs) bool {
		in.reports = append(in.reports, snapReport{shard: shard, to: to, ok: ok})
		return true
	})
}

// streamSnapshot sends the shard's state as it is now, with the MsgSnap's
// metadata rewritten to match what it sends.
func (e *Engine) streamSnapshot(ctx context.Context, id uint64, shard uint32, p raftstore.ReplicaDesc, data []byte) error {
	msg := &pb.Message{}
	if err := proto.Unmarshal(data, msg); err != nil {
		return err
	}
	snap := e.cfg.DB.NewSnapshot()
	defer snap.Close()
	applied, err := raftstore.ReadApplied(snap, shard)
	if err != nil {
		return err
	}
	// The state sent is the newest applied, which may be a configuration
	// that no longer has the replica (removed since raft asked for the
	// snapshot): it would refuse it, so it is not sent.
	if cs := applied.ConfState; !slices.Contains(cs.GetVoters(), msg.GetTo()) && !slices.Contains(cs.GetLearners(), msg.GetTo()) &&
		!slices.Contains(cs.GetVotersOutgoing(), msg.GetTo()) && !slices.Contains(cs.GetLearnersNext(), msg.GetTo()) {
		return fmt.Errorf("shard %d: replica %d is no longer in the configuration", shard, msg.GetTo())
	}
	msg.Snapshot = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index: new(applied.Index), Term: new(applied.Term), ConfState: applied.ConfState}}
	if data, err = proto.Marshal(msg); err != nil {
		return err
	}
	var after []byte
	for seq := uint64(0); ; seq++ {
		kvs, done, err := raftstore.ReadChunk(snap, shard, after, e.cfg.SnapshotChunkBytes)
		if err != nil {
			return err
		}
		c := &SnapshotChunk{Cluster: e.cfg.Cluster, FromNode: e.cfg.Node, FromStore: e.cfg.Store, ToStore: p.Store,
			ID: id, Shard: shard, Seq: seq, KVs: kvs, Final: done}
		if seq == 0 {
			c.Msg = data
		}
		cctx, cancel := context.WithTimeout(ctx, snapshotIdle)
		err = e.cfg.Transport.SendSnapshotChunk(cctx, p.Node, c)
		cancel()
		if err != nil {
			return err
		}
		e.status.snapshotBytesSent.Add(uint64(c.Size()))
		if done {
			e.status.snapshotsSent.Add(1)
			return nil
		}
		after = kvs[len(kvs)-1].Key
	}
}

// Errors a snapshot receiver answers with.
var (
	errSnapRefused  = errors.New("shard: snapshot refused")
	errSnapSequence = errors.New("shard: snapshot chunk out of sequence")
)

// ReceiveSnapshotChunk takes one chunk of an incoming snapshot stream
// (the transport calls it and acknowledges the chunk when it returns nil).
// Chunks of one stream come one at a time.
func (e *Engine) ReceiveSnapshotChunk(c *SnapshotChunk) error {
	if c.Cluster != e.cfg.Cluster || c.ToStore != e.cfg.Store {
		return fmt.Errorf("%w: addressed to another cluster or store", errSnapRefused)
	}
	s := &e.snaps
	key := recvKey{store: c.FromStore, id: c.ID}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.recv[key]
	if c.Seq == 0 {
		if sess != nil {
			sess.w.Abort()
			delete(s.recv, key)
		}
		var err error
		if sess, err = e.openSession(c); err != nil {
			return err
		}
		s.recv[key] = sess
	} else if sess == nil || sess.next != c.Seq {
		return errSnapSequence
	}
	sess.next++
	sess.at = e.clock()
	if err := sess.w.Add(c.KVs); err != nil {
		sess.w.Abort()
		delete(s.recv, key)
		return err
	}
	if !c.Final {
		return nil
	}
	delete(s.recv, key)
	path, err := sess.w.Finish()
	if err != nil {
		return err
	}
	e.status.snapshotsReceived.Add(1)
	in := &incoming{shard: c.Shard, msg: sess.msg, path: path, from: sess.from}
	if err := e.push(func(q *inputs) bool {
		q.snaps = append(q.snaps, in)
		return true
	}); err != nil {
		in.discard(e)
		return err
	}
	return nil
}

// openSession checks the first chunk of a stream and opens its file.
// s.mu is held.
func (e *Engine) openSession(c *SnapshotChunk) (*recvSession, error) {
	s := &e.snaps
	if len(s.recv) >= e.cfg.MaxSnapshotReceives {
		return nil, fmt.Errorf("%w: %d snapshots arriving already", errSnapRefused, len(s.recv))
	}
	msg := &pb.Message{}
	if err := proto.Unmarshal(c.Msg, msg); err != nil || msg.GetType() != pb.MessageType_MsgSnap {
		return nil, fmt.Errorf("%w: the first chunk carries no snapshot message", errSnapRefused)
	}
	if st, ok := e.status.get(c.Shard); ok && st.ReplicaID == msg.GetTo() && st.Applied >= msg.GetSnapshot().GetMetadata().GetIndex() {
		return nil, fmt.Errorf("%w: shard %d has applied %d already", errSnapRefused, c.Shard, st.Applied)
	}
	w, err := raftstore.NewSnapshotWriter(e.cfg.Snapshots, c.Shard)
	if err != nil {
		return nil, err
	}
	return &recvSession{w: w, msg: msg, from: raftstore.ReplicaDesc{ID: msg.GetFrom(), Node: c.FromNode, Store: c.FromStore}}, nil
}

// sweepLoop drops incoming streams that stopped arriving.
func (s *snapshots) sweepLoop(e *Engine) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			now := e.clock()
			s.mu.Lock()
			for k, sess := range s.recv {
				if now.Sub(sess.at) > snapshotIdle {
					sess.w.Abort()
					delete(s.recv, k)
				}
			}
			s.mu.Unlock()
		}
	}
}

// abortAll drops every incoming stream.
func (s *snapshots) abortAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, sess := range s.recv {
		sess.w.Abort()
		delete(s.recv, k)
	}
}
