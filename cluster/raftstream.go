package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/cluster/shard"
)

// Raft batches travel between nodes on a stream of their own, on the
// transport's port: one long-lived gRPC stream from each node to each
// other node it sends raft messages to, each message a RaftBatch. The
// transport's server hands it every stream protoactor does not know
// (remoteConfig), so the stream shares the listener, the mutual TLS that
// admits only the cluster's nodes and the stream interceptors.
//
// A batch goes out in one step: the engine's loop puts it in the
// destination's queue and returns; the destination's sender goroutine
// takes what is queued, joins batches of the same header into one
// RaftBatch and writes it to the stream. The receiving side decodes it and
// hands it to the engine. Before, each batch went as an actor envelope
// through protoactor's endpoint manager and writer, was encoded twice and
// decoded by type name into an actor's mailbox: two goroutine hops more on
// each side of every round.
//
// Nothing waits on a peer: a full queue, a peer whose stream just failed
// (until the next dial, backing off from raftRedialMin to raftRedialMax)
// or a peer not alive drops the batch and Send returns false; raft resends.
// A peer that answers the stream as unknown runs an older build: its
// batches go as actor envelopes, as before.
const (
	raftStreamMethod = "/switchboard.cluster.Raft/Batches"
	// raftQueueBatches and raftQueueBytes bound what waits for one peer.
	raftQueueBatches = 1024
	raftQueueBytes   = 64 << 20
	// raftCoalesceBytes bounds the messages joined into one RaftBatch (a
	// larger batch goes alone).
	raftCoalesceBytes = 4 << 20
	raftRedialMin     = 20 * time.Millisecond
	raftRedialMax     = time.Second
)

var raftStreamDesc = grpc.StreamDesc{StreamName: "Batches", ClientStreams: true}

// raftStreams is both ends of a node's raft streams.
type raftStreams struct {
	dial []grpc.DialOption // dialOptions: creds and all
	log  *slog.Logger
	// resolve returns the transport address of a node raft traffic may go
	// to (an alive or suspect member).
	resolve func(node string) (string, bool)
	// legacy sends a batch as an actor envelope (nil: dropped instead).
	legacy func(addr string, b *shard.Batch)

	recv atomic.Pointer[RaftReceiver]

	mu     sync.Mutex
	peers  map[string]*raftPeer // by node name
	closed bool
	wg     sync.WaitGroup
}

func newRaftStreams(dial []grpc.DialOption, log *slog.Logger, resolve func(string) (string, bool)) *raftStreams {
	return &raftStreams{dial: dial, log: log, resolve: resolve, peers: make(map[string]*raftPeer)}
}

// setReceiver makes r the receiver of incoming batches; until then they
// are dropped.
func (s *raftStreams) setReceiver(r RaftReceiver) { s.recv.Store(&r) }

// serve receives one incoming stream's batches. It is the transport
// server's handler of unknown streams, so it refuses any other method.
func (s *raftStreams) serve(_ any, ss grpc.ServerStream) error {
	if m, _ := grpc.MethodFromServerStream(ss); m != raftStreamMethod {
		return status.Errorf(codes.Unimplemented, "unknown method %s", m)
	}
	for {
		b := &clusterpb.RaftBatch{}
		if err := ss.RecvMsg(b); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if r := s.recv.Load(); r != nil {
			(*r).Receive(batchFromPB(b))
		}
	}
}

// Send queues b for node without waiting. It is the engine's
// shard.Transport.Send.
func (s *raftStreams) Send(node string, b *shard.Batch) bool {
	addr, ok := s.resolve(node)
	if !ok {
		return false
	}
	p := s.peer(node, addr)
	if p == nil {
		return false
	}
	if p.legacy.Load() {
		if s.legacy == nil {
			return false
		}
		s.legacy(addr, b)
		return true
	}
	if p.backoff.Load() {
		return false
	}
	n := batchBytes(b)
	if p.queued.Add(n) > raftQueueBytes {
		p.queued.Add(-n)
		return false
	}
	select {
	case p.q <- b:
		return true
	default:
		p.queued.Add(-n)
		return false
	}
}

// peer returns node's sender at addr, starting it (and stopping one at an
// older address). Nil: the streams are closed.
func (s *raftStreams) peer(node, addr string) *raftPeer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	p := s.peers[node]
	if p != nil && p.addr == addr {
		return p
	}
	if p != nil {
		p.stop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p = &raftPeer{node: node, addr: addr, q: make(chan *shard.Batch, raftQueueBatches), cancel: cancel}
	s.peers[node] = p
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(ctx, p)
	}()
	return p
}

// drop stops node's sender, if any (the node died, left or restarted).
func (s *raftStreams) drop(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.peers[node]; p != nil {
		p.stop()
		delete(s.peers, node)
	}
}

// close stops every sender and waits for them.
func (s *raftStreams) close() {
	s.mu.Lock()
	s.closed = true
	for node, p := range s.peers {
		p.stop()
		delete(s.peers, node)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// raftPeer is the sender of one destination.
type raftPeer struct {
	node, addr string
	q          chan *shard.Batch
	queued     atomic.Int64 // bytes of messages in q
	backoff    atomic.Bool  // the stream failed; not redialled yet
	legacy     atomic.Bool  // the peer does not know the stream
	cancel     context.CancelFunc
}

func (p *raftPeer) stop() { p.cancel() }

// run dials p's node and keeps a stream to it open until ctx ends.
func (s *raftStreams) run(ctx context.Context, p *raftPeer) {
	// gRPC's own redial backoff starts at a second: too slow for a peer
	// that restarts at the same address.
	conn, err := grpc.Dial(p.addr, append(slices.Clip(s.dial), grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: backoff.Config{BaseDelay: raftRedialMin, Multiplier: 2, Jitter: 0.2, MaxDelay: raftRedialMax}, MinConnectTimeout: 5 * time.Second}))...)
	if err != nil { // a malformed address: nothing will ever go there
		s.log.Error("raft stream: cannot dial", "node", p.node, "addr", p.addr, "err", err)
		p.backoff.Store(true)
		<-ctx.Done()
		return
	}
	defer conn.Close()
	wait := raftRedialMin
	for {
		sent, err := s.stream(ctx, conn, p)
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.Unimplemented {
			s.log.Info("raft stream: the node does not know it (an older build); raft traffic to it goes as actor messages", "node", p.node)
			p.legacy.Store(true)
			p.discard()
			<-ctx.Done()
			return
		}
		p.backoff.Store(true)
		p.discard()
		if sent {
			wait = raftRedialMin
		}
		s.log.Debug("raft stream failed; redialling", "node", p.node, "addr", p.addr, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, raftRedialMax)
		p.backoff.Store(false)
	}
}

// discard empties p's queue.
func (p *raftPeer) discard() {
	for {
		select {
		case b := <-p.q:
			p.queued.Add(-batchBytes(b))
		default:
			return
		}
	}
}

// stream opens one stream on conn and writes p's queue to it until it
// fails or ctx ends. sent reports whether anything went.
func (s *raftStreams) stream(ctx context.Context, conn *grpc.ClientConn, p *raftPeer) (sent bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := conn.NewStream(sctx, &raftStreamDesc, raftStreamMethod)
	if err != nil {
		return false, err
	}
	var held *shard.Batch // taken from the queue, not joinable with the last
	defer func() {
		if held != nil {
			p.queued.Add(-batchBytes(held))
		}
	}()
	for {
		b := held
		if b == nil {
			select {
			case <-ctx.Done():
				return sent, ctx.Err()
			case b = <-p.q:
			}
		}
		var out *clusterpb.RaftBatch
		out, held = p.coalesce(b)
		if err := cs.SendMsg(out); err != nil {
			if errors.Is(err, io.EOF) { // the server ended the stream: why
				err = cs.RecvMsg(&clusterpb.RaftBatch{})
			}
			return sent, err
		}
		sent = true
	}
}

// coalesce joins b and the batches queued after it that have its header
// into one RaftBatch, up to raftCoalesceBytes. It returns the first batch
// taken that did not fit, if any.
func (p *raftPeer) coalesce(b *shard.Batch) (*clusterpb.RaftBatch, *shard.Batch) {
	size := batchBytes(b)
	p.queued.Add(-size)
	out := batchToPB(b)
	for size < raftCoalesceBytes {
		var next *shard.Batch
		select {
		case next = <-p.q:
		default:
			return out, nil
		}
		n := batchBytes(next)
		if next.Cluster != b.Cluster || next.FromNode != b.FromNode || next.FromStore != b.FromStore ||
			next.ToStore != b.ToStore || size+n > raftCoalesceBytes {
			return out, next // its bytes leave the count when it is sent
		}
		p.queued.Add(-n)
		size += n
		appendMsgsPB(out, next.Msgs)
	}
	return out, nil
}

// batchBytes is what a batch's messages hold.
func batchBytes(b *shard.Batch) int64 {
	var n int64
	for _, m := range b.Msgs {
		n += int64(len(m.Data)) + 16
	}
	return n
}
