package persistence

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestFenceEpochZeroIsRefused(t *testing.T) {
	l := memStore(t).Channel("z")
	wantErr(t, "append to a never-fenced scope", appendWait(t, l, put(0, TableMeta, "", "x")), ErrFenced)
	wantErr(t, "fence 0", fenceWait(t, l, 0), ErrFenced)
	if ep, err := l.Epoch(); err != nil || ep != 0 {
		t.Fatalf("epoch = %d, %v; want 0", ep, err)
	}
	mustFence(t, l, 1)
	wantErr(t, "append with epoch 0 after fence 1", appendWait(t, l, put(0, TableMeta, "", "x")), ErrFenced)
	if _, err := l.Get(TableMeta, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused entries wrote: %v", err)
	}
}

func TestFenceMustIncrease(t *testing.T) {
	l := memStore(t).Channel("c")
	mustFence(t, l, 5)
	wantErr(t, "same epoch", fenceWait(t, l, 5), ErrFenced)
	wantErr(t, "lower epoch", fenceWait(t, l, 3), ErrFenced)
	mustFence(t, l, 6)
	mustFence(t, l, 1<<40) // jumps are fine
	if ep, err := l.Epoch(); err != nil || ep != 1<<40 {
		t.Fatalf("epoch = %d, %v; want %d", ep, err, uint64(1<<40))
	}
}

func TestFenceRefusesEveryOtherEpoch(t *testing.T) {
	l := memStore(t).Channel("c")
	mustFence(t, l, 1)
	mustAppend(t, l, put(1, TableAux, "k", "e1"))
	mustFence(t, l, 2)
	wantErr(t, "old epoch", appendWait(t, l, put(1, TableAux, "k", "late e1")), ErrFenced)
	wantErr(t, "future epoch", appendWait(t, l, put(3, TableAux, "k", "e3")), ErrFenced)
	if got := mustGet(t, l, TableAux, "k"); got != "e1" {
		t.Fatalf("after refusals k = %q, want e1", got)
	}
	mustAppend(t, l, put(2, TableAux, "k", "e2"))
	if got := mustGet(t, l, TableAux, "k"); got != "e2" {
		t.Fatalf("k = %q, want e2", got)
	}
}

func TestFenceIsPerScope(t *testing.T) {
	s := memStore(t)
	mustFence(t, s.Channel("a"), 5)
	for _, l := range []Log{s.Channel("ab"), s.Channel(""), s.User("a"), s.Log(Scope{Kind: KindNode, ID: "a"})} {
		if ep, err := l.Epoch(); err != nil || ep != 0 {
			t.Fatalf("%v: epoch %d, %v; want 0", l, ep, err)
		}
		wantErr(t, "append under another scope's fence", appendWait(t, l, put(5, TableAux, "k", "v")), ErrFenced)
	}
}

func TestFenceSurvivesReopen(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	mustFence(t, s.Channel("c"), 3)
	mustAppend(t, s.Channel("c"), put(3, TableAux, "k", "v"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	l := openStore(t, fs, Options{}).Channel("c")
	if ep, err := l.Epoch(); err != nil || ep != 3 {
		t.Fatalf("epoch after reopen = %d, %v; want 3", ep, err)
	}
	wantErr(t, "old epoch after reopen", appendWait(t, l, put(2, TableAux, "k", "x")), ErrFenced)
	wantErr(t, "same fence after reopen", fenceWait(t, l, 3), ErrFenced)
	mustAppend(t, l, put(3, TableAux, "k2", "v2"))
	mustFence(t, l, 4)
	if got := mustGet(t, l, TableAux, "k"); got != "v" {
		t.Fatalf("k = %q after reopen", got)
	}
}

// TestFenceQueuedTogether submits a fence and entries of both epochs without
// waiting, as an actor does when it activates, so that they share group
// commits: each is judged against the fence as of its place in the queue.
func TestFenceQueuedTogether(t *testing.T) {
	l := memStore(t).Channel("c")
	mustFence(t, l, 1)
	type step struct {
		fence uint64 // raise the fence; 0: append
		epoch uint64 // the entry's epoch
		want  error
	}
	steps := []step{
		{epoch: 1},
		{fence: 2},
		{epoch: 1, want: ErrFenced},
		{epoch: 2},
		{fence: 2, want: ErrFenced},
		{fence: 3},
		{epoch: 2, want: ErrFenced},
		{epoch: 3},
	}
	chans := make([]<-chan error, len(steps))
	for i, st := range steps {
		done, ch := callback()
		chans[i] = ch
		if st.fence != 0 {
			l.Fence(st.fence, done)
		} else {
			l.Append(put(st.epoch, TableAux, string(rune('a'+i)), "v"), done)
		}
	}
	for i, st := range steps {
		wantErr(t, "step "+string(rune('a'+i)), wait(t, chans[i]), st.want)
	}
	recs := mustScan(t, l, TableAux, Range{})
	if got := keysOf(recs); len(got) != 3 || got[0] != "a" || got[1] != "d" || got[2] != "h" {
		t.Fatalf("records %q, want [a d h]", got)
	}
}

// manualCommitter returns a committer over s's database whose goroutines
// do not run, so that a test decides exactly which requests share a group.
// Use it only on scopes that s's own pipeline never touches.
func manualCommitter(s *Store) *committer {
	return &committer{db: s.db, opts: s.opts, guard: s.guard, fences: make(map[Scope]fenceState)}
}

// applyGroup applies reqs as one group and waits for its sync.
func applyGroup(t *testing.T, c *committer, reqs ...*request) {
	t.Helper()
	g := c.apply(reqs)
	if g.batch == nil {
		return
	}
	defer g.batch.Close()
	if err := g.batch.SyncWait(); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

func appendReq(sc Scope, e *Entry) *request {
	return &request{scope: sc, epoch: e.Epoch, ops: e.Ops}
}

func fenceReq(sc Scope, epoch uint64) *request {
	return &request{scope: sc, epoch: epoch, fence: true}
}

func TestFenceWithinOneGroup(t *testing.T) {
	s := memStore(t)
	c := manualCommitter(s)
	sc := Scope{Kind: KindChannel, ID: "g"}
	applyGroup(t, c, fenceReq(sc, 1))

	reqs := []*request{
		appendReq(sc, put(1, TableAux, "a", "v")),
		fenceReq(sc, 2),
		appendReq(sc, put(1, TableAux, "b", "v")),
		appendReq(sc, put(2, TableAux, "c", "v")),
		{scope: sc, epoch: 2, kind: reqImport, first: true, final: true, replace: true}, // a restore
		fenceReq(sc, 3),
		appendReq(sc, put(2, TableAux, "d", "v")),
		appendReq(sc, put(3, TableAux, "e", "v")),
	}
	want := []error{nil, nil, ErrFenced, nil, ErrFenced, nil, ErrFenced, nil}
	applyGroup(t, c, reqs...)
	for i, r := range reqs {
		wantErr(t, "request "+string(rune('0'+i)), r.err, want[i])
	}
	l := s.Log(sc)
	if got := keysOf(mustScan(t, l, TableAux, Range{})); len(got) != 3 || got[0] != "a" || got[1] != "c" || got[2] != "e" {
		t.Fatalf("records %q, want [a c e]", got)
	}
	if ep, err := l.Epoch(); err != nil || ep != 3 {
		t.Fatalf("epoch = %d, %v; want 3", ep, err)
	}
	// A fresh applier (an empty fence cache, as after a restart) reads the
	// fence the group left.
	c2 := manualCommitter(s)
	late := appendReq(sc, put(2, TableAux, "f", "v"))
	applyGroup(t, c2, late)
	wantErr(t, "old epoch after the cache is gone", late.err, ErrFenced)
}

// TestRefusedEntryWritesNothing checks that an entry refused for a bad op
// leaves none of its other ops behind, even when it shares a batch with
// other entries, and that the entries after it in its epoch are refused
// too (no hole).
func TestRefusedEntryWritesNothing(t *testing.T) {
	s := memStore(t)
	c := manualCommitter(s)
	sc := Scope{Kind: KindChannel, ID: "bad"}
	applyGroup(t, c, fenceReq(sc, 1))

	bad := &Entry{Epoch: 1}
	bad.Put(TableMeta, nil, []byte("half"))
	bad.Put(TableFence, nil, U64(99))
	good := put(1, TableAux, "k", "v")
	reqs := []*request{appendReq(sc, bad), appendReq(sc, good)}
	applyGroup(t, c, reqs...)
	if reqs[0].err == nil || errors.Is(reqs[0].err, ErrFenced) {
		t.Fatalf("entry writing the fence: err %v, want a refusal", reqs[0].err)
	}
	wantErr(t, "entry after a refused one", reqs[1].err, ErrFenced)
	l := s.Log(sc)
	if v, err := l.Get(TableMeta, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused entry left meta %q (%v)", v, err)
	}
	if ep, _ := l.Epoch(); ep != 1 {
		t.Fatalf("epoch = %d, want 1", ep)
	}

	// Through the pipeline too.
	p := s.Channel("bad2")
	mustFence(t, p, 1)
	if err := appendWait(t, p, bad); err == nil || errors.Is(err, ErrFenced) {
		t.Fatalf("entry writing the fence: err %v, want a refusal", err)
	}
	if _, err := p.Get(TableMeta, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused entry left meta (%v)", err)
	}
}
