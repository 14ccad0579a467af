package shard

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/switchboard-chat/switchboard/persistence"
)

// leaderLog records the observer's calls.
type leaderLog struct {
	mu   sync.Mutex
	seen []Status
}

func (l *leaderLog) LeaderChanged(st Status) {
	l.mu.Lock()
	l.seen = append(l.seen, st)
	l.mu.Unlock()
}

func (l *leaderLog) last() (Status, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) == 0 {
		return Status{}, false
	}
	return l.seen[len(l.seen)-1], true
}

// await polls cond until it holds, failing the test after 10 s.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// answer is a completion a test waits for.
type answer struct {
	ch chan error
}

func newAnswer() answer        { return answer{ch: make(chan error, 1)} }
func (a answer) set(err error) { a.ch <- err }

func (a answer) wait(t *testing.T, what string) error {
	t.Helper()
	select {
	case err := <-a.ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer", what)
		return nil
	}
}

// TestStalledDiskEndsLeadership runs a lone replica's loop for real on a
// store whose writes are then stalled: within StallAfter its proposal in
// the stuck write fails (ErrLost), it leads nothing (status and
// observer), and what comes meanwhile is refused at once (ErrStalled).
// Once the disk answers, the replica, still raft's leader, takes its
// leadership up again, and the stuck proposal, committed all along, is
// applied. A stream leased before the stall writes nothing after it, though
// raft's term is the same: its activation read state that the stuck
// proposal may have changed.
func TestStalledDiskEndsLeadership(t *testing.T) {
	st, err := persistence.Open("db", persistence.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	net := NewMemNetwork(1)
	net.SetAuto(true)
	obs := &leaderLog{}
	timing := Timing{Tick: 10 * time.Millisecond, HeartbeatTicks: 1, ElectionTicks: 10}
	e, err := New(Config{DB: st.DB(), Snapshots: st.SnapshotEnv(), Cluster: "test", Node: "a", Store: 1001,
		Transport: net.Transport("a"), StateMachine: kvSM{}, Observer: obs, Timing: timing})
	if err != nil {
		t.Fatal(err)
	}
	net.Register("a", e)
	if err := e.Bootstrap(1); err != nil {
		t.Fatal(err)
	}
	e.Start()
	stopped := false
	defer func() {
		if !stopped {
			st.ResumeWrites()
			e.Stop()
		}
	}()
	leads := func() bool { s, ok := e.Status(0); return ok && s.IsLeader }
	await(t, "a to lead", leads)
	lead := func(scope string) (*Stream, error) {
		var stream *Stream
		a := newAnswer()
		e.Lead(0, scope, func(s *Stream, err error) {
			stream = s
			a.set(err)
		})
		return stream, a.wait(t, "lead")
	}
	leased, err := lead("u")
	if err != nil {
		t.Fatal(err)
	}
	term := leased.Term()
	propose := func(s *Stream, cmd string) answer {
		a := newAnswer()
		e.Propose(s, []byte(cmd), a.set)
		return a
	}
	if err := propose(NewStream(0, term, ""), "x=1").wait(t, "x=1"); err != nil {
		t.Fatal(err)
	}

	st.StallWrites()
	stalled := time.Now()
	stuck := propose(NewStream(0, term, ""), "y=1")
	if err := stuck.wait(t, "y=1"); !errors.Is(err, ErrLost) {
		t.Fatalf("the proposal in the stalled write: %v, want ErrLost", err)
	}
	if d := time.Since(stalled); d < timing.StallAfter() {
		t.Fatalf("failed after %v, before StallAfter (%v)", d, timing.StallAfter())
	}
	if !e.Stalled() || leads() {
		t.Fatalf("stalled %v, leads %v: want stalled and leading nothing", e.Stalled(), leads())
	}
	if last, ok := obs.last(); !ok || last.IsLeader || last.Leader != "" {
		t.Fatalf("the observer last heard %+v, want no leader", last)
	}
	if err := propose(NewStream(0, term, ""), "z=1").wait(t, "z=1"); !errors.Is(err, ErrStalled) {
		t.Fatalf("a proposal during the stall: %v, want ErrStalled", err)
	}
	if _, err := lead(""); !errors.Is(err, ErrStalled) {
		t.Fatalf("an activation during the stall: %v, want ErrStalled", err)
	}
	read := newAnswer()
	e.ReadIndex(NewStream(0, term, ""), read.set)
	if err := read.wait(t, "read"); !errors.Is(err, ErrStalled) {
		t.Fatalf("a read during the stall: %v, want ErrStalled", err)
	}

	st.ResumeWrites()
	await(t, "the stall to end", func() bool { return !e.Stalled() })
	await(t, "a to lead again", leads)
	if last, ok := obs.last(); !ok || !last.IsLeader {
		t.Fatalf("the observer last heard %+v, want a leading", last)
	}
	if err := propose(leased, "v=1").wait(t, "v=1"); !errors.Is(err, ErrLost) {
		t.Fatalf("a proposal on a stream leased before the stall: %v, want ErrLost", err)
	}
	again, err := lead("u")
	if err != nil {
		t.Fatal(err)
	}
	if again.Term() != term {
		t.Fatalf("led again in term %d, want the same term %d", again.Term(), term)
	}
	if err := propose(again, "w=1").wait(t, "w=1"); err != nil {
		t.Fatal(err)
	}
	e.Stop()
	stopped = true
	if v, closer, err := st.DB().Get(kvKey(0, "v")); err == nil {
		closer.Close()
		t.Errorf("v=%q applied from a stream leased before the stall", v)
	}
	for _, k := range []string{"x", "y", "w"} {
		if v, closer, err := st.DB().Get(kvKey(0, k)); err != nil || string(v) != "1" {
			t.Errorf("%s: %q, %v", k, v, err)
		} else {
			closer.Close()
		}
	}
}
