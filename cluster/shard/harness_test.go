package shard

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// The harness runs several engines in one goroutine over a MemNetwork in
// manual mode, each on Pebble on its own in-memory filesystem: the test
// decides when rounds run, when messages arrive, when time passes (a fake
// clock advanced by ticks) and when snapshot streams run. Elections are
// started with Campaign; ticks past an election timeout are given only
// where a test wants one. After every step it checks the invariants of
// RAFT-NOTES §9: at most one leader per term, committed entries never
// change and are equal wherever they are held.

// kvSM is the test state machine: a command "k=v" sets k to v in the
// shard's state span; anything else is refused.
type kvSM struct{}

func (kvSM) Apply(b *pebble.Batch, shard uint32, cmd []byte) error {
	k, v, ok := bytes.Cut(cmd, []byte("="))
	if !ok || len(k) == 0 {
		return errors.New("not k=v")
	}
	return b.Set(kvKey(shard, string(k)), v, nil)
}

func kvKey(shard uint32, k string) []byte {
	return append(raftstore.StatePrefix(shard), append([]byte("c"), k...)...)
}

type testNode struct {
	name  string
	store uint64
	fs    vfs.FS
	db    *pebble.DB
	e     *Engine
}

type harness struct {
	t      *testing.T
	net    *MemNetwork
	nodes  map[string]*testNode
	order  []string
	now    time.Time
	jobs   []func()
	cfg    func(*Config)
	leader map[[2]uint64]string // (shard, term) → leader seen
	// committed holds every committed entry seen: (shard, index) → (term, data)
	committed map[[2]uint64]entryRecord
	nextStore uint64
}

type entryRecord struct {
	term uint64
	data string
}

const testTick = 10 * time.Millisecond

func newHarness(t *testing.T, names ...string) *harness {
	h := &harness{t: t, net: NewMemNetwork(1), nodes: make(map[string]*testNode), now: time.Unix(1_000_000, 0),
		leader: make(map[[2]uint64]string), committed: make(map[[2]uint64]entryRecord)}
	for _, n := range names {
		h.start(n, vfs.NewMem())
	}
	t.Cleanup(h.close)
	return h
}

// singleNode starts a harness of one node, "a", bootstraps it with
// shards and lets it elect itself.
func singleNode(t *testing.T, shards uint32) (*harness, *testNode) {
	t.Helper()
	h := newHarness(t, "a")
	a := h.node("a")
	if err := a.e.Bootstrap(shards); err != nil {
		t.Fatal(err)
	}
	h.settle()
	return h, a
}

// start runs an engine for node on fs (a fresh store on a new filesystem,
// or the node's own after a restart).
func (h *harness) start(name string, fs vfs.FS) *testNode {
	h.t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: quietPebble{}})
	if err != nil {
		h.t.Fatal(err)
	}
	n := &testNode{name: name, fs: fs, db: db}
	if old := h.nodes[name]; old != nil && old.fs == fs {
		n.store = old.store
	} else {
		h.nextStore++
		n.store = h.nextStore*1000 + 1
	}
	popts := &pebble.Options{}
	popts.EnsureDefaults()
	cfg := Config{
		DB:           db,
		Snapshots:    raftstore.Env{DB: db, FS: fs, Dir: "snaps", Writer: popts.MakeWriterOptions(0, db.TableFormat())},
		Cluster:      "test",
		Node:         name,
		Store:        n.store,
		Transport:    h.net.Transport(name),
		StateMachine: kvSM{},
		Timing:       Timing{Tick: testTick, HeartbeatTicks: 1, ElectionTicks: 10},
	}
	if h.cfg != nil {
		h.cfg(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	e.clock = func() time.Time { return h.now }
	e.spawn = func(fn func()) { h.jobs = append(h.jobs, fn) }
	n.e = e
	h.nodes[name] = n
	if !slices.Contains(h.order, name) {
		h.order = append(h.order, name)
	}
	h.net.Register(name, e)
	return n
}

// crash stops node's engine and closes its store without a clean
// shutdown of anything in flight; its filesystem stays for a restart.
func (h *harness) crash(name string) vfs.FS {
	n := h.nodes[name]
	h.net.Unregister(name)
	n.e.Stop()
	if err := n.db.Close(); err != nil {
		h.t.Fatal(err)
	}
	n.e = nil
	return n.fs
}

func (h *harness) close() {
	for _, n := range h.nodes {
		if n.e != nil {
			n.e.Stop()
			n.db.Close()
			n.e = nil
		}
	}
}

func (h *harness) node(name string) *testNode { return h.nodes[name] }

func (h *harness) live() []*testNode {
	var out []*testNode
	for _, name := range h.order {
		if n := h.nodes[name]; n.e != nil {
			out = append(out, n)
		}
	}
	return out
}

// step runs one round on every live node, delivers what they sent and
// runs the snapshot streams they started, then checks the invariants.
func (h *harness) step() {
	h.t.Helper()
	for _, n := range h.live() {
		n.e.round()
		if err := n.e.fatalErr; err != nil {
			h.t.Fatalf("%s: %v", n.name, err)
		}
	}
	h.net.Deliver()
	jobs := h.jobs
	h.jobs = nil
	for _, j := range jobs {
		j()
	}
	h.check()
}

// tick advances the clock by n ticks, one round each.
func (h *harness) tick(n int) {
	h.t.Helper()
	for range n {
		h.now = h.now.Add(testTick)
		for _, nd := range h.live() {
			nd.e.ticks++
		}
		h.step()
	}
}

// settle runs rounds until nothing is in flight, failing if it takes too
// many.
func (h *harness) settle() {
	h.t.Helper()
	for i := 0; i < 200; i++ {
		h.step()
		busy := h.net.Pending() > 0 || len(h.jobs) > 0
		for _, n := range h.live() {
			n.e.in.mu.Lock()
			q := n.e.in.queued
			n.e.in.mu.Unlock()
			if len(q.batches)+len(q.props)+len(q.reads)+len(q.snaps)+len(q.reports)+len(q.funcs)+len(q.leads) > 0 {
				busy = true
			}
			for _, g := range n.e.groups {
				if g.rn.HasReady() {
					busy = true
				}
			}
		}
		if !busy {
			return
		}
	}
	h.t.Fatal("the cluster did not settle")
}

// check asserts the invariants over every live node.
func (h *harness) check() {
	h.t.Helper()
	for _, n := range h.live() {
		for _, g := range n.e.groups {
			if g.leader {
				k := [2]uint64{uint64(g.shard), g.term}
				if other, ok := h.leader[k]; ok && other != n.name {
					h.t.Fatalf("shard %d term %d: two leaders, %s and %s", g.shard, g.term, other, n.name)
				}
				h.leader[k] = n.name
			}
			commit := g.st.HardState().GetCommit()
			first, _ := g.st.FirstIndex()
			if commit < first {
				continue
			}
			ents, err := g.st.Entries(first, commit+1, 1<<62)
			if err != nil {
				h.t.Fatalf("%s shard %d: entries [%d, %d]: %v", n.name, g.shard, first, commit, err)
			}
			for _, e := range ents {
				k := [2]uint64{uint64(g.shard), e.GetIndex()}
				rec := entryRecord{term: e.GetTerm(), data: string(e.GetData())}
				if prev, ok := h.committed[k]; ok && prev != rec {
					h.t.Fatalf("shard %d index %d: committed entry changed (term %d → %d) on %s", g.shard, e.GetIndex(), prev.term, rec.term, n.name)
				}
				h.committed[k] = rec
			}
		}
	}
}

// do runs fn on node's loop (at its next round).
func (h *harness) do(n *testNode, fn func()) {
	h.t.Helper()
	if err := n.e.Do(fn); err != nil {
		h.t.Fatal(err)
	}
}

// leaderOf returns the node leading shard, or nil.
func (h *harness) leaderOf(shard uint32) *testNode {
	for _, n := range h.live() {
		if g := n.e.groups[shard]; g != nil && g.leader {
			return n
		}
	}
	return nil
}

// awaitLeader ticks until some live node leads shard: elections may split
// votes (the library randomizes its timeouts), so a fixed number of ticks
// is not always enough.
func (h *harness) awaitLeader(shard uint32) *testNode {
	h.t.Helper()
	h.until(500, func() bool { return h.leaderOf(shard) != nil }, "shard %d elects a leader", shard)
	return h.leaderOf(shard)
}

// until ticks, one at a time, until cond holds, or fails the test after
// ticks ticks saying what it waited for.
func (h *harness) until(ticks int, cond func() bool, what string, args ...any) {
	h.t.Helper()
	for range ticks {
		if cond() {
			return
		}
		h.tick(1)
	}
	if !cond() {
		h.t.Fatalf("not within %d ticks: "+what, append([]any{ticks}, args...)...)
	}
}

// result collects the outcome of an asynchronous call.
type result struct {
	done bool
	err  error
	term uint64
}

func (r *result) set(err error) { r.done, r.err = true, err }
func (r *result) setStream(s *Stream, e error) {
	r.done, r.err = true, e
	if s != nil {
		r.term = s.Term()
	}
}

// propose proposes k=v on node as the leader of shard in its current term.
func (h *harness) propose(n *testNode, shard uint32, kv string) *result {
	r := &result{}
	term := uint64(0)
	if g := n.e.groups[shard]; g != nil {
		term = g.term
	}
	n.e.Propose(NewStream(shard, term, ""), []byte(kv), r.set)
	return r
}

// get reads k of shard on node's store ("" when absent).
func (h *harness) get(n *testNode, shard uint32, k string) string {
	v, closer, err := n.db.Get(kvKey(shard, k))
	if errors.Is(err, pebble.ErrNotFound) {
		return ""
	}
	if err != nil {
		h.t.Fatal(err)
	}
	defer closer.Close()
	return string(v)
}

// stateOf returns the shard's state span on node.
func (h *harness) stateOf(n *testNode, shard uint32) []raftstore.KV {
	kvs, _, err := raftstore.ReadChunk(n.db, shard, nil, 1<<30)
	if err != nil {
		h.t.Fatal(err)
	}
	return kvs
}

// sameState fails unless every live replica of shard holds the same state
// span (applied state included) as the leader.
func (h *harness) sameState(shard uint32) {
	h.t.Helper()
	h.tick(2) // followers learn the leader's last commit
	h.settle()
	var ref []raftstore.KV
	var refNode string
	for _, n := range h.live() {
		if n.e.groups[shard] == nil {
			continue
		}
		kvs := h.stateOf(n, shard)
		if ref == nil {
			ref, refNode = kvs, n.name
			continue
		}
		if !slices.EqualFunc(ref, kvs, func(a, b raftstore.KV) bool { return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) }) {
			h.t.Fatalf("shard %d: %s and %s hold different state (%d and %d keys)", shard, refNode, n.name, len(ref), len(kvs))
		}
	}
}

// voters returns the voters of shard in node's applied configuration.
func (h *harness) voters(n *testNode, shard uint32) []uint64 {
	g := n.e.groups[shard]
	if g == nil {
		return nil
	}
	return g.st.Applied().ConfState.GetVoters()
}

func (h *harness) mustDone(what string, r *result) {
	h.t.Helper()
	if !r.done {
		h.t.Fatalf("%s: not answered", what)
	}
	if r.err != nil {
		h.t.Fatalf("%s: %v", what, r.err)
	}
}

// grow adds learners on the named nodes to shard (led by leader), lets
// them catch up by snapshot, and promotes them all in one joint change.
func (h *harness) grow(leader string, shard uint32, names ...string) {
	h.t.Helper()
	ln := h.node(leader)
	var added []*pb.ConfChangeSingle
	for _, name := range names {
		n := h.node(name)
		var id uint64
		var err error
		h.do(ln, func() { id, err = ln.e.addLearner(ln.e.groups[shard], n.name, n.store) })
		h.settle()
		if err != nil {
			h.t.Fatal(err)
		}
		added = append(added, &pb.ConfChangeSingle{Type: pb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: new(id)})
	}
	h.tick(3) // heartbeats find the learners; snapshots follow
	h.settle()
	h.do(ln, func() {
		if err := ln.e.proposeConfChange(ln.e.groups[shard], added, nil); err != nil {
			h.t.Error(err)
		}
	})
	h.settle()
	h.tick(2)
	h.settle()
	if got := len(h.voters(ln, shard)); got != 1+len(names) {
		h.t.Fatalf("shard %d: %d voters after growing, want %d", shard, got, 1+len(names))
	}
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

var _ = raft.StateLeader

// crashClone kills node as a power cut would: it restarts from a copy of
// its filesystem holding what was synced and, with unsynced percent
// probability per block, what was not.
func (h *harness) crashClone(name string, unsynced int, rng *rand.Rand) *testNode {
	h.t.Helper()
	n := h.nodes[name]
	mem, ok := n.fs.(*vfs.MemFS)
	if !ok {
		h.t.Fatal("not a crashable filesystem")
	}
	clone := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rng})
	h.crash(name)
	n.fs = clone // the same store: the node restarts on its own disk
	return h.start(name, clone)
}
