package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/switchboard-chat/switchboard/cluster/security"
	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// recorder is a RaftReceiver that keeps what arrives.
type recorder struct {
	mu      sync.Mutex
	batches []*shard.Batch
}

func (r *recorder) Receive(b *shard.Batch) {
	r.mu.Lock()
	r.batches = append(r.batches, b)
	r.mu.Unlock()
}

func (r *recorder) ReceiveSnapshotChunk(*shard.SnapshotChunk) error {
	return errors.New("no snapshots here")
}

// msgs returns the messages received so far, in order, and in how many
// batches they came.
func (r *recorder) msgs() ([]shard.Msg, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []shard.Msg
	for _, b := range r.batches {
		out = append(out, b.Msgs...)
	}
	return out, len(r.batches)
}

// addrBook resolves node names for a test's raftStreams.
type addrBook struct {
	mu    sync.Mutex
	addrs map[string]string
}

func (a *addrBook) set(node, addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.addrs == nil {
		a.addrs = make(map[string]string)
	}
	a.addrs[node] = addr
}

func (a *addrBook) resolve(node string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	addr, ok := a.addrs[node]
	return addr, ok
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// raftEnd is one node's raft streams, served by a gRPC server with the
// transport's options on loopback. (Not protoactor's remote: its Start
// sets gRPC's process-wide logger, a data race when several start in one
// process. The multi-process tests run the streams beside it.)
type raftEnd struct {
	s     *raftStreams
	addr  string
	srv   *grpc.Server
	once  sync.Once
	creds credentials.TransportCredentials // what it was started with
}

func startRaftEnd(t *testing.T, creds credentials.TransportCredentials, port int, book *addrBook, recv RaftReceiver) *raftEnd {
	t.Helper()
	e := &raftEnd{s: newRaftStreams(dialOptions(creds, nil), quietLog(), book.resolve), creds: creds}
	if recv != nil {
		e.s.setReceiver(recv)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	e.srv = grpc.NewServer(serverOptions(creds, quietLog(), e.s.serve)...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		e.stop()
		<-done
	})
	return e
}

func (e *raftEnd) stop() {
	e.once.Do(func() {
		e.s.close()
		e.srv.Stop()
	})
}

func testBatch(from string, n, first int) *shard.Batch {
	b := &shard.Batch{Cluster: "c1", FromNode: from, FromStore: 11, ToStore: 22}
	for i := range n {
		b.Msgs = append(b.Msgs, shard.Msg{Shard: uint32(first + i), From: 1, To: 2, Data: []byte("m" + strconv.Itoa(first+i))})
	}
	return b
}

// tlsCreds returns two nodes' mutual TLS credentials under one CA.
func tlsCreds(t *testing.T) (a, b credentials.TransportCredentials) {
	t.Helper()
	now := time.Now()
	ca, err := security.NewCA(security.KeyECDSA, security.CALifetime, now)
	if err != nil {
		t.Fatal(err)
	}
	load := func(name string) credentials.TransportCredentials {
		pair, err := security.Issue(ca.Cert, ca.Key, security.KindNode, name, []string{"127.0.0.1"}, security.KeyECDSA, security.LeafLifetime, now)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		cfg := security.IdentityConfig{CertFile: filepath.Join(dir, "node.crt"), KeyFile: filepath.Join(dir, "node.key"),
			CAFile: filepath.Join(dir, "ca.crt"), Node: true, Name: name}
		for p, b := range map[string][]byte{cfg.CertFile: pair.Cert, cfg.KeyFile: pair.Key, cfg.CAFile: ca.Cert} {
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		id, err := security.LoadIdentity(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return id.TransportCredentials(nil)
	}
	return load("a"), load("b")
}

// startRaftPair starts ends a (sending) and b (receiving into recv), with
// or without TLS, b in a's address book.
func startRaftPair(t *testing.T, secure bool) (a, b *raftEnd, book *addrBook, recv *recorder) {
	var credsA, credsB credentials.TransportCredentials
	if secure {
		credsA, credsB = tlsCreds(t)
	}
	book, recv = &addrBook{}, &recorder{}
	b = startRaftEnd(t, credsB, 0, book, recv)
	a = startRaftEnd(t, credsA, 0, book, nil)
	book.set("b", b.addr)
	return a, b, book, recv
}

func TestRaftStreamDeliversInOrder(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", secure), func(t *testing.T) {
			t.Parallel()
			a, _, _, recv := startRaftPair(t, secure)
			const batches, per = 50, 3
			for i := range batches {
				// A refused batch (the stream is still opening) is raft's to
				// resend; here the test resends it.
				waitUntil(t, 10*time.Second, "a batch accepted", func() bool { return a.s.Send("b", testBatch("a", per, i*per)) })
			}
			var got []shard.Msg
			waitUntil(t, 10*time.Second, "every message delivered", func() bool { got, _ = recv.msgs(); return len(got) == batches*per })
			for i, m := range got {
				if m.Shard != uint32(i) || string(m.Data) != "m"+strconv.Itoa(i) || m.From != 1 || m.To != 2 {
					t.Fatalf("message %d arrived as %+v", i, m)
				}
			}
			recv.mu.Lock()
			defer recv.mu.Unlock()
			for _, rb := range recv.batches {
				if rb.Cluster != "c1" || rb.FromNode != "a" || rb.FromStore != 11 || rb.ToStore != 22 {
					t.Fatalf("a batch arrived with the header %+v", rb)
				}
			}
		})
	}
}

func TestRaftStreamCoalescesQueuedBatches(t *testing.T) {
	t.Parallel()
	p := &raftPeer{q: make(chan *shard.Batch, 8)}
	first := testBatch("a", 2, 0)
	queue := []*shard.Batch{testBatch("a", 1, 2), testBatch("a", 3, 3)}
	other := testBatch("a", 1, 6)
	other.ToStore = 23 // the peer's next store: not joinable
	queue = append(queue, other, testBatch("a", 1, 7))
	for _, b := range append([]*shard.Batch{first}, queue...) {
		p.queued.Add(batchBytes(b))
	}
	for _, b := range queue {
		p.q <- b
	}
	out, held := p.coalesce(first)
	if len(out.Msgs) != 6 || out.ToStore != 22 {
		t.Fatalf("joined %d messages for store %d, want 6 for 22", len(out.Msgs), out.ToStore)
	}
	for i, m := range out.Msgs {
		if m.Shard != uint32(i) {
			t.Fatalf("message %d is of shard %d", i, m.Shard)
		}
	}
	if held != other {
		t.Fatalf("held %+v, want the batch for another store", held)
	}
	last := held
	out, held = p.coalesce(last)
	if len(out.Msgs) != 1 || out.ToStore != 23 || held == nil || held.ToStore != 22 {
		t.Fatalf("second message: %d messages for store %d, held %+v", len(out.Msgs), out.ToStore, held)
	}
	out, held = p.coalesce(held)
	if len(out.Msgs) != 1 || held != nil || len(p.q) != 0 || p.queued.Load() != 0 {
		t.Fatalf("last: %d messages, held %v, %d batches and %d bytes still counted", len(out.Msgs), held, len(p.q), p.queued.Load())
	}
}

// TestRaftStreamCoalescesOnTheWire sends faster than one stream message
// per batch can go while the receiving node is paused: what queued
// meanwhile arrives in fewer messages than batches, all of it, in order.
func TestRaftStreamCoalescesOnTheWire(t *testing.T) {
	t.Parallel()
	book := &addrBook{}
	gate := &gatedRecorder{open: make(chan struct{})}
	b := startRaftEnd(t, nil, 0, book, gate)
	a := startRaftEnd(t, nil, 0, book, nil)
	book.set("b", b.addr)
	waitUntil(t, 10*time.Second, "the first batch accepted", func() bool { return a.s.Send("b", testBatch("a", 1, 0)) })
	waitUntil(t, 10*time.Second, "the receiving handler holding the first batch", func() bool { return gate.waiting() }) // b's handler holds the first
	const n = 200
	for i := 1; i <= n; i++ {
		if !a.s.Send("b", testBatch("a", 1, i)) {
			t.Fatalf("batch %d refused with %d queued", i, i-1)
		}
	}
	close(gate.open)
	var got []shard.Msg
	var msgs int
	waitUntil(t, 10*time.Second, "all messages delivered", func() bool { got, msgs = gate.msgs(); return len(got) == n+1 })
	for i, m := range got {
		if m.Shard != uint32(i) {
			t.Fatalf("message %d is of shard %d", i, m.Shard)
		}
	}
	if msgs >= n {
		t.Fatalf("%d batches arrived as %d stream messages: nothing joined", n+1, msgs)
	}
}

// gatedRecorder holds the first batch until open is closed.
type gatedRecorder struct {
	recorder
	open    chan struct{}
	mu2     sync.Mutex
	blocked bool
}

func (g *gatedRecorder) Receive(b *shard.Batch) {
	g.mu2.Lock()
	g.blocked = true
	g.mu2.Unlock()
	<-g.open
	g.recorder.Receive(b)
}

func (g *gatedRecorder) waiting() bool {
	g.mu2.Lock()
	defer g.mu2.Unlock()
	return g.blocked
}

// TestRaftStreamNeverWaitsForAPeer sends to a peer that accepts
// connections and never answers, and to an address nobody listens at:
// every Send returns, and once the queue is full (or the dial failed)
// they are refused.
func TestRaftStreamNeverWaitsForAPeer(t *testing.T) {
	t.Parallel()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // never accepts: TCP connects, nothing answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	book := &addrBook{}
	book.set("silent", silent.Addr().String())
	book.set("gone", closedAddr)
	a := startRaftEnd(t, nil, 0, book, nil)
	for _, node := range []string{"silent", "gone", "unknown"} {
		refused := 0
		for i := range 3 * raftQueueBatches {
			if !a.s.Send(node, testBatch("a", 1, i)) {
				refused++
			}
		}
		if refused < raftQueueBatches {
			t.Errorf("%s: %d of %d batches refused; a queue of %d cannot hold the rest", node, refused, 3*raftQueueBatches, raftQueueBatches)
		}
	}
	// The dial to the closed port fails: from then on it refuses at once.
	waitUntil(t, 10*time.Second, "the sender refusing during its redial backoff", func() bool {
		return !a.s.Send("gone", testBatch("a", 1, 0)) && len(a.s.peer("gone", closedAddr).q) == 0
	})
}

func TestRaftStreamReconnectsToARestartedPeer(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", secure), func(t *testing.T) {
			t.Parallel()
			a, b, book, recv := startRaftPair(t, secure)
			waitUntil(t, 10*time.Second, "the first batch accepted", func() bool { return a.s.Send("b", testBatch("a", 1, 0)) })
			waitUntil(t, 10*time.Second, "the first batch delivered", func() bool { got, _ := recv.msgs(); return len(got) == 1 })

			b.stop()
			_, port, _ := net.SplitHostPort(b.addr)
			p, _ := strconv.Atoi(port)
			recv2 := &recorder{}
			startRaftEnd(t, b.creds, p, book, recv2)
			// Batches sent while the stream is found broken are lost (raft
			// resends); the stream comes back by itself.
			i := 1
			waitUntil(t, 10*time.Second, "a batch delivered to the restarted node", func() bool {
				a.s.Send("b", testBatch("a", 1, i))
				i++
				got, _ := recv2.msgs()
				return len(got) > 0
			})
		})
	}
}

// TestRaftStreamToAnOlderPeer: a node whose transport does not know the
// stream answers it as unknown; its batches then go the legacy way.
func TestRaftStreamToAnOlderPeer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer() // no raft stream
	go srv.Serve(ln)
	defer srv.Stop()
	book := &addrBook{}
	book.set("old", ln.Addr().String())
	a := startRaftEnd(t, nil, 0, book, nil)
	var mu sync.Mutex
	var legacy []string
	a.s.legacy = func(addr string, b *shard.Batch) {
		mu.Lock()
		legacy = append(legacy, addr)
		mu.Unlock()
	}
	waitUntil(t, 10*time.Second, "a batch sent the legacy way", func() bool {
		a.s.Send("old", testBatch("a", 1, 0))
		mu.Lock()
		defer mu.Unlock()
		return len(legacy) > 0
	})
	if legacy[0] != ln.Addr().String() {
		t.Fatalf("legacy send to %s", legacy[0])
	}
}

// TestRaftStreamServesOnlyItsMethod: another unknown method on the
// transport's port is refused, not read as raft batches.
func TestRaftStreamServesOnlyItsMethod(t *testing.T) {
	t.Parallel()
	recv := &recorder{}
	b := startRaftEnd(t, nil, 0, &addrBook{}, recv)
	conn, err := grpc.Dial(b.addr, dialOptions(nil, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cs, err := conn.NewStream(t.Context(), &raftStreamDesc, "/switchboard.cluster.Raft/Other")
	if err != nil {
		t.Fatal(err)
	}
	_ = cs.SendMsg(batchToPB(testBatch("x", 1, 0)))
	if err := cs.RecvMsg(batchToPB(&shard.Batch{})); status.Code(err) != codes.Unimplemented {
		t.Fatalf("another method: %v, want unimplemented", err)
	}
	if got, _ := recv.msgs(); len(got) != 0 {
		t.Fatalf("%d messages received from another method", len(got))
	}
}

// noCommands is a state machine for an engine that applies nothing.
type noCommands struct{}

func (noCommands) Apply(*pebble.Batch, uint32, []byte) error { return errors.New("no commands here") }

// TestRaftStreamWrongClusterOrStoreIsDropped delivers, through the
// stream, batches of another cluster and for another store to a real
// engine: it drops every message of them.
func TestRaftStreamWrongClusterOrStoreIsDropped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := pebble.Open(filepath.Join(dir, "db"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	popts := &pebble.Options{}
	popts.EnsureDefaults()
	book := &addrBook{}
	a := startRaftEnd(t, nil, 0, book, nil)
	b := startRaftEnd(t, nil, 0, book, nil)
	book.set("b", b.addr)
	eng, err := shard.New(shard.Config{DB: db, Cluster: "c1", Node: "b", Store: 22, Transport: raftStreamNet{s: b.s}, StateMachine: noCommands{},
		Snapshots: raftstore.Env{DB: db, FS: popts.FS, Dir: filepath.Join(dir, "snaps"), Writer: popts.MakeWriterOptions(0, db.TableFormat())},
		Logger:    quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	eng.Start()
	defer eng.Stop()
	b.s.setReceiver(eng)
	wrongCluster := testBatch("a", 2, 0)
	wrongCluster.Cluster = "c2"
	wrongStore := testBatch("a", 3, 0)
	wrongStore.ToStore = 21 // the node's previous data directory
	waitUntil(t, 10*time.Second, "the wrong cluster's batch accepted", func() bool { return a.s.Send("b", wrongCluster) })
	waitUntil(t, 10*time.Second, "the wrong cluster's messages dropped", func() bool { return eng.Stats().Dropped == 2 })
	if !a.s.Send("b", wrongStore) {
		t.Fatal("refused on an open stream")
	}
	waitUntil(t, 10*time.Second, "the wrong store's messages dropped", func() bool { return eng.Stats().Dropped == 5 })
}
