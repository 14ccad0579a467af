package persistence

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestOpsApplyInOrder(t *testing.T) {
	s := memStore(t)
	l := chanLog(s, "ops")
	e := &Entry{}
	e.Put(TableAux, []byte("a"), []byte("1"))
	e.Put(TableAux, []byte("b"), []byte("2"))
	e.Put(TableAux, []byte("c"), []byte("3"))
	e.Del(TableAux, []byte("b"))
	e.Put(TableAux, []byte("a"), []byte("4"))
	e.DelRange(TableAux, []byte("c"), []byte("d"))
	e.Put(TableAux, []byte("e"), nil)
	mustAppend(t, l, e)
	if got := keysOf(mustScan(t, l, TableAux, Range{})); !slices.Equal(got, []string{"a", "e"}) {
		t.Fatalf("keys %v", got)
	}
	if mustGet(t, l, TableAux, "a") != "4" || mustGet(t, l, TableAux, "e") != "" {
		t.Fatal("wrong values")
	}
	_, err := l.Get(TableAux, []byte("b"))
	wantErr(t, "deleted key", err, ErrNotFound)
}

func TestDelRangeStaysInItsTable(t *testing.T) {
	s := memStore(t)
	l := chanLog(s, "r")
	e := &Entry{}
	for _, k := range []string{"a", "b", "c", "d"} {
		e.Put(TableEvent, []byte(k), []byte(k))
		e.Put(TableMessage, []byte(k), []byte(k))
	}
	mustAppend(t, l, e)
	e = &Entry{}
	e.DelRange(TableEvent, nil, []byte("c"))
	e.DelRange(TableEvent, []byte("z"), []byte("a")) // empty range: nothing
	mustAppend(t, l, e)
	if got := keysOf(mustScan(t, l, TableEvent, Range{})); !slices.Equal(got, []string{"c", "d"}) {
		t.Fatalf("events %v", got)
	}
	if got := keysOf(mustScan(t, l, TableMessage, Range{})); len(got) != 4 {
		t.Fatalf("messages %v", got)
	}
}

func TestScanRanges(t *testing.T) {
	s := memStore(t)
	l := chanLog(s, "seq")
	e := &Entry{}
	for _, n := range []uint64{300, 2, 1 << 40, 7, 256} {
		e.Put(TableMessage, U64(n), U64(n))
	}
	mustAppend(t, l, e)
	u64s := func(recs []Record) []uint64 {
		var out []uint64
		for _, r := range recs {
			n, _ := ParseU64(r.Key)
			out = append(out, n)
		}
		return out
	}
	for _, tc := range []struct {
		rg   Range
		want []uint64
	}{
		{Range{}, []uint64{2, 7, 256, 300, 1 << 40}},
		{Range{After: U64(7)}, []uint64{256, 300, 1 << 40}},
		{Range{Before: U64(300)}, []uint64{2, 7, 256}},
		{Range{After: U64(2), Before: U64(300), Reverse: true}, []uint64{256, 7}},
		{Range{Reverse: true, Limit: 2}, []uint64{1 << 40, 300}},
		{Range{Before: []byte{}}, nil},
	} {
		if got := u64s(mustScan(t, l, TableMessage, tc.rg)); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.rg, got, tc.want)
		}
	}
}

// TestScopesTablesAndShardsDoNotBleed: a scope's records are read back by
// it alone, in its own shard, whatever its id shares with others.
func TestScopesTablesAndShardsDoNotBleed(t *testing.T) {
	s := memStore(t)
	scopes := []Scope{{KindChannel, "a"}, {KindChannel, "ab"}, {KindChannel, "a\x00"}, {KindUser, "a"}, {KindChannel, ""}}
	for i, sc := range scopes {
		for shard := uint32(0); shard < 2; shard++ {
			e := &Entry{}
			e.Put(TableAux, []byte("k"), []byte(fmt.Sprint(i, shard)))
			e.Put(TableMember, []byte("m"), []byte("x"))
			mustAppend(t, s.ShardLog(shard, sc, applyNow(s, shard)), e)
		}
	}
	for i, sc := range scopes {
		for shard := uint32(0); shard < 2; shard++ {
			r := s.Reader(shard, sc)
			if got := mustScan(t, r, TableAux, Range{}); len(got) != 1 || string(got[0].Value) != fmt.Sprint(i, shard) {
				t.Fatalf("%v in shard %d: %v", sc, shard, got)
			}
		}
	}
	if ids, err := s.ListScopes([]uint32{1}, KindChannel, "", 0); err != nil || len(ids) != 4 {
		t.Fatalf("channels in shard 1: %q, %v", ids, err)
	}
}

func TestInvalidScopesAndEntries(t *testing.T) {
	s := memStore(t)
	long := chanLog(s, strings.Repeat("x", MaxIDLen+1))
	wantErr(t, "long id", appendWait(long, put(TableAux, "k", "v")), ErrInvalid)
	_, err := long.Get(TableAux, []byte("k"))
	wantErr(t, "long id read", err, ErrInvalid)
	wantErr(t, "nil entry", appendWait(chanLog(s, "c"), nil), ErrInvalid)
	wantErr(t, "bad kind", appendWait(localLog(s, Scope{Kind: 'z', ID: "c"}), put(TableAux, "k", "v")), ErrInvalid)
	mustAppend(t, chanLog(s, strings.Repeat("x", MaxIDLen)), &Entry{})
}

func TestCommandRoundTrip(t *testing.T) {
	sc := Scope{KindUser, "u\x00\xff"}
	e := &Entry{}
	e.Put(TableMeta, nil, []byte("meta"))
	e.Put(TableAux, []byte("k"), []byte{})
	e.Del(TableMember, []byte("m"))
	e.DelRange(TableEvent, U64(1), U64(9))
	e.DelRange(TableEvent, nil, U64(3))
	cmd, err := EncodeCommand(sc, e)
	if err != nil {
		t.Fatal(err)
	}
	gotSc, got, err := DecodeCommand(cmd)
	if err != nil || gotSc != sc || len(got.Ops) != len(e.Ops) {
		t.Fatalf("decoded %v %+v %v", gotSc, got, err)
	}
	for i := range e.Ops {
		a, b := e.Ops[i], got.Ops[i]
		if a.Table != b.Table || !bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Value, b.Value) || a.Delete != b.Delete ||
			!bytes.Equal(a.DeleteTo, b.DeleteTo) || (a.DeleteTo == nil) != (b.DeleteTo == nil) {
			t.Fatalf("op %d: %+v != %+v", i, b, a)
		}
	}
	for n := range len(cmd) {
		if _, _, err := DecodeCommand(cmd[:n]); err == nil {
			t.Fatalf("a command cut at %d decoded", n)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	e := &Entry{}
	e.Put(TableAux, []byte("k"), []byte("v"))
	e.DelRange(TableEvent, U64(1), U64(2))
	cmd, _ := EncodeCommand(Scope{KindChannel, "c"}, e)
	f.Add(cmd)
	f.Fuzz(func(t *testing.T, cmd []byte) {
		sc, e, err := DecodeCommand(cmd)
		if err != nil {
			return
		}
		again, err := EncodeCommand(sc, e)
		if err != nil {
			t.Fatal(err)
		}
		sc2, e2, err := DecodeCommand(again)
		if err != nil || sc2 != sc || len(e2.Ops) != len(e.Ops) {
			t.Fatalf("re-encoded command differs")
		}
	})
}

// TestOverlayReadsPendingEntries: a leader's actor reads its own entries
// before they are applied, and the same after.
func TestOverlayReadsPendingEntries(t *testing.T) {
	s := memStore(t)
	type held struct {
		cmd  []byte
		done func(error)
	}
	var q []held
	l := s.ShardLog(3, Scope{KindChannel, "c"}, func(cmd []byte, done func(error)) { q = append(q, held{cmd, done}) })
	base := &Entry{}
	for _, k := range []string{"a", "b", "c", "d"} {
		base.Put(TableAux, []byte(k), []byte("0"))
	}
	mustAppend(t, chanLog(s, "c"), base)
	e1 := &Entry{}
	e1.Put(TableAux, []byte("b"), []byte("1"))
	e1.Put(TableAux, []byte("e"), []byte("1"))
	e2 := &Entry{}
	e2.DelRange(TableAux, []byte("c"), []byte("e"))
	e2.Put(TableAux, []byte("a"), []byte("2"))
	var acks []error
	l.Append(e1, func(err error) { acks = append(acks, err) })
	l.Append(e2, func(err error) { acks = append(acks, err) })
	want := func(stage string) {
		t.Helper()
		got := mustScan(t, l, TableAux, Range{})
		var kv []string
		for _, r := range got {
			kv = append(kv, string(r.Key)+"="+string(r.Value))
		}
		if !slices.Equal(kv, []string{"a=2", "b=1", "e=1"}) {
			t.Fatalf("%s: scan %v", stage, kv)
		}
		if mustGet(t, l, TableAux, "a") != "2" || mustGet(t, l, TableAux, "e") != "1" {
			t.Fatalf("%s: get", stage)
		}
		if _, err := l.Get(TableAux, []byte("c")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: c read %v", stage, err)
		}
	}
	want("pending")
	// Applied but not yet called back: both layers hold it.
	for _, h := range q {
		b := s.db.NewBatch()
		if err := (StateMachine{}).Apply(b, 3, h.cmd); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		b.Close()
		want("applied")
	}
	for _, h := range q {
		h.done(nil)
		want("called back")
	}
	if len(acks) != 2 || len(l.overlay()) != 0 {
		t.Fatalf("acks %v, overlay %d", acks, len(l.overlay()))
	}
}

// TestMemLogMatchesStore runs the same random entries on a MemLog and on
// the store, comparing every read.
func TestMemLogMatchesStore(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := memStore(t)
	pl, ml := chanLog(s, "m"), NewMemLog()
	key := func() []byte { return []byte{byte('a' + rng.IntN(6))} }
	tables := []Table{TableAux, TableMessage}
	for i := range 300 {
		e := &Entry{}
		for range 1 + rng.IntN(4) {
			tab := tables[rng.IntN(2)]
			switch rng.IntN(4) {
			case 0:
				e.Del(tab, key())
			case 1:
				a, b := key(), key()
				e.DelRange(tab, a, b)
			default:
				e.Put(tab, key(), []byte(fmt.Sprint(i)))
			}
		}
		mustAppend(t, pl, e)
		mustAppend(t, ml, e)
		tab := tables[rng.IntN(2)]
		rg := Range{Limit: rng.IntN(4), Reverse: rng.IntN(2) == 0}
		if rng.IntN(2) == 0 {
			rg.After = key()
		}
		a, b := mustScan(t, pl, tab, rg), mustScan(t, ml, tab, rg)
		if !slices.EqualFunc(a, b, func(x, y Record) bool { return bytes.Equal(x.Key, y.Key) && bytes.Equal(x.Value, y.Value) }) {
			t.Fatalf("step %d: store %v, memlog %v", i, keysOf(a), keysOf(b))
		}
		k := key()
		va, ea := pl.Get(tab, k)
		vb, eb := ml.Get(tab, k)
		if !bytes.Equal(va, vb) || errors.Is(ea, ErrNotFound) != errors.Is(eb, ErrNotFound) {
			t.Fatalf("step %d: get %q: %q/%v vs %q/%v", i, k, va, ea, vb, eb)
		}
	}
}

func TestReadsAfterCloseFail(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	l := chanLog(s, "c")
	mustAppend(t, l, put(TableAux, "k", "v"))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if _, err := l.Get(TableAux, []byte("k")); err != nil && !errors.Is(err, ErrClosed) {
					t.Error(err)
					return
				}
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	_, err = l.Get(TableAux, []byte("k"))
	wantErr(t, "read after close", err, ErrClosed)
	if err := s.Close(); err != nil {
		t.Fatal("second close:", err)
	}
}
