package persistence

import (
	"fmt"
	"testing"
)

// await runs f with a callback and waits for it.
func await(t *testing.T, f func(done func(error))) error {
	t.Helper()
	done, ch := callback()
	f(done)
	return wait(t, ch)
}

// TestHandOffMovesAScope moves a scope between two stores in small chunks
// and checks the source is fenced, the target is live above every epoch,
// and the records arrive intact.
func TestHandOffMovesAScope(t *testing.T) {
	src, dst := memStore(t), memStore(t)
	sc := Scope{Kind: KindChannel, ID: "moving"}
	log := src.Log(sc)
	if err := await(t, func(d func(error)) { log.Fence(3, d) }); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		e := &Entry{Epoch: 3}
		e.Put(TableMessage, U64(uint64(i+1)), []byte(fmt.Sprintf("message %d", i+1)))
		e.Put(TableMeta, nil, []byte(fmt.Sprintf("meta %d", i+1)))
		if err := await(t, func(d func(error)) { log.Append(e, d) }); err != nil {
			t.Fatal(err)
		}
	}
	st, err := src.State(sc)
	if err != nil || !st.Live() || !st.HasData || st.Epoch != 3 {
		t.Fatalf("source state %+v %v", st, err)
	}

	// 1. Release: the old activation's epoch is fenced out.
	var released uint64
	if err := await(t, func(d func(error)) {
		src.Release(sc, "dst", func(e uint64, err error) { released = e; d(err) })
	}); err != nil || released != 4 {
		t.Fatalf("release: epoch %d %v", released, err)
	}
	late := &Entry{Epoch: 3}
	late.Put(TableMessage, U64(999), []byte("late"))
	if err := await(t, func(d func(error)) { log.Append(late, d) }); err != ErrFenced {
		t.Fatalf("append after release: %v, want ErrFenced", err)
	}
	if st, _ := src.State(sc); st.Live() || !st.Released || !st.HasData || st.ReleasedTo != "dst" {
		t.Fatalf("released source state %+v", st)
	}

	// 2. Export in chunks of ~1 KiB, import them.
	var after []byte
	first, chunks := true, 0
	for {
		recs, last, done, err := src.Export(sc, after, 1024)
		if err != nil {
			t.Fatal(err)
		}
		chunks++
		if err := await(t, func(d func(error)) { dst.Import(sc, recs, first, done, released+1, d) }); err != nil {
			t.Fatalf("import chunk %d: %v", chunks, err)
		}
		if !done {
			if st, _ := dst.State(sc); st.Live() {
				t.Fatal("target live before the last chunk")
			}
		}
		first, after = false, last
		if done {
			break
		}
	}
	if chunks < 3 {
		t.Fatalf("only %d chunks: the test wants several", chunks)
	}
	st, _ = dst.State(sc)
	if !st.Live() || st.Epoch != released+1 {
		t.Fatalf("target state %+v", st)
	}
	got, err := dst.Log(sc).Scan(TableMessage, Range{})
	if err != nil || len(got) != 200 || string(got[199].Value) != "message 200" {
		t.Fatalf("target has %d messages (%v)", len(got), err)
	}
	if v, _ := dst.Log(sc).Get(TableMeta, nil); string(v) != "meta 200" {
		t.Fatalf("target meta %q", v)
	}

	// 3. Drop the source's copy; its fence stays.
	if err := await(t, func(d func(error)) { src.Drop(sc, d) }); err != nil {
		t.Fatal(err)
	}
	if st, _ := src.State(sc); st.HasData || !st.Released || st.Epoch != released {
		t.Fatalf("dropped source %+v", st)
	}
	// Dropping a live scope is refused, and so is importing over one.
	if err := await(t, func(d func(error)) { dst.Drop(sc, d) }); err != ErrFenced {
		t.Fatalf("drop of a live scope: %v", err)
	}
	over := []SnapshotRecord{{Table: TableMessage, Key: U64(1), Value: []byte("clobber")}}
	if err := await(t, func(d func(error)) { dst.Import(sc, over, true, true, released+9, d) }); err != ErrFenced {
		t.Fatalf("import over a live scope: %v", err)
	}
	// Releasing again (to another node) re-targets the copy one epoch up.
	var again uint64
	if err := await(t, func(d func(error)) {
		src.Release(sc, "other", func(e uint64, err error) { again = e; d(err) })
	}); err != nil || again != released+1 {
		t.Fatalf("re-release: %d %v", again, err)
	}
	if st, _ := src.State(sc); st.ReleasedTo != "other" || st.Epoch != again {
		t.Fatalf("re-released state %+v", st)
	}
}

// TestBarrierWaitsForEarlierEntries: a barrier's callback runs after every
// request submitted before it has landed, so a reader that waits for it
// sees them.
func TestBarrierWaitsForEarlierEntries(t *testing.T) {
	s := memStore(t)
	log := s.Channel("b")
	mustFence(t, log, 1)
	for i := range 100 {
		e := &Entry{Epoch: 1}
		e.Put(TableMessage, U64(uint64(i+1)), []byte("m"))
		log.Append(e, func(error) {})
	}
	if err := await(t, func(d func(error)) { s.Barrier(d) }); err != nil {
		t.Fatal(err)
	}
	recs, err := log.Scan(TableMessage, Range{})
	if err != nil || len(recs) != 100 {
		t.Fatalf("after the barrier: %d records (%v)", len(recs), err)
	}
}

// TestImportRestartsCleanly: an interrupted import (no final chunk) leaves
// no live scope, and a new import's first chunk clears it.
func TestImportRestartsCleanly(t *testing.T) {
	s := memStore(t)
	sc := Scope{Kind: KindUser, ID: "u"}
	half := []SnapshotRecord{{Table: TableMessage, Key: U64(1), Value: []byte("stale")}}
	if err := await(t, func(d func(error)) { s.Import(sc, half, true, false, 0, d) }); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.State(sc); st.Live() || !st.HasData {
		t.Fatalf("half import %+v", st)
	}
	full := []SnapshotRecord{{Table: TableMessage, Key: U64(2), Value: []byte("fresh")}}
	if err := await(t, func(d func(error)) { s.Import(sc, full, true, true, 9, d) }); err != nil {
		t.Fatal(err)
	}
	recs, _ := s.Log(sc).Scan(TableMessage, Range{})
	if len(recs) != 1 || string(recs[0].Value) != "fresh" {
		t.Fatalf("after re-import %v", recs)
	}
	if e, _ := s.Log(sc).Epoch(); e != 9 {
		t.Fatalf("epoch %d", e)
	}
}

// TestRefusedEntryBreaksItsEpoch: once an entry of an epoch is refused,
// later entries of that epoch are refused too, so no hole can land; a new
// fence lets the scope write again.
func TestRefusedEntryBreaksItsEpoch(t *testing.T) {
	s := memStore(t)
	log := s.Channel("holes")
	if err := await(t, func(d func(error)) { log.Fence(1, d) }); err != nil {
		t.Fatal(err)
	}
	bad := &Entry{Epoch: 1, Ops: []Op{{Table: TableFence, Key: nil, Value: []byte("x")}}}
	good := &Entry{Epoch: 1}
	good.Put(TableMessage, U64(2), []byte("after the hole"))
	if err := await(t, func(d func(error)) { log.Append(bad, d) }); err == nil {
		t.Fatal("an entry writing the fence landed")
	}
	if err := await(t, func(d func(error)) { log.Append(good, d) }); err != ErrFenced {
		t.Fatalf("entry after a refused one: %v, want ErrFenced", err)
	}
	if err := await(t, func(d func(error)) { log.Fence(2, d) }); err != nil {
		t.Fatal(err)
	}
	good.Epoch = 2
	if err := await(t, func(d func(error)) { log.Append(good, d) }); err != nil {
		t.Fatalf("after a new fence: %v", err)
	}
}
