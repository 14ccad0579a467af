package persistence

import (
	"errors"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// tenEvents returns a log whose event table holds seqs 1..10.
func tenEvents(t *testing.T, s *Store, id string) Log {
	t.Helper()
	l := s.Channel(id)
	mustFence(t, l, 1)
	e := &Entry{Epoch: 1}
	for n := uint64(1); n <= 10; n++ {
		e.Put(TableEvent, U64(n), U64(n))
	}
	e.Put(TableMessage, U64(5), []byte("other table"))
	mustAppend(t, l, e)
	return l
}

func eventSeqs(t *testing.T, l Log) []uint64 {
	t.Helper()
	var out []uint64
	for _, r := range mustScan(t, l, TableEvent, Range{}) {
		n, _ := ParseU64(r.Key)
		out = append(out, n)
	}
	return out
}

func TestDelete(t *testing.T) {
	s := memStore(t)
	l := tenEvents(t, s, "del")
	e := &Entry{Epoch: 1}
	e.Del(TableEvent, U64(3))
	e.Del(TableEvent, U64(99)) // absent: fine
	e.Del(TableMember, U64(4)) // other table: removes nothing of ours
	mustAppend(t, l, e)
	if got, want := eventSeqs(t, l), []uint64{1, 2, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if _, err := l.Get(TableEvent, U64(3)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
}

func TestDelRange(t *testing.T) {
	cases := []struct {
		name     string
		from, to []byte
		want     []uint64
	}{
		{"middle", U64(3), U64(7), []uint64{1, 2, 7, 8, 9, 10}},
		{"to is exclusive, from inclusive", U64(1), U64(10), []uint64{10}},
		{"absent bounds", U64(0), U64(4), []uint64{4, 5, 6, 7, 8, 9, 10}},
		{"from the table start", nil, U64(6), []uint64{6, 7, 8, 9, 10}},
		{"to beyond the last", U64(9), U64(1 << 40), []uint64{1, 2, 3, 4, 5, 6, 7, 8}},
		{"whole table", []byte{}, []byte{0xff}, nil},
		{"empty range", U64(5), U64(5), []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"inverted range deletes nothing", U64(8), U64(2), []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := memStore(t)
			l := tenEvents(t, s, "dr")
			e := &Entry{Epoch: 1}
			e.DelRange(TableEvent, c.from, c.to)
			mustAppend(t, l, e)
			if got := eventSeqs(t, l); !slices.Equal(got, c.want) {
				t.Fatalf("events %v, want %v", got, c.want)
			}
			if got := mustGet(t, l, TableMessage, string(U64(5))); got != "other table" {
				t.Fatalf("range delete reached another table: %q", got)
			}
			// Moving the data to sstables and reopening changes nothing.
			if err := s.db.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := s.db.Compact(t.Context(), []byte{0}, []byte{0xff}, true); err != nil {
				t.Fatal(err)
			}
			if got := eventSeqs(t, l); !slices.Equal(got, c.want) {
				t.Fatalf("after compaction events %v, want %v", got, c.want)
			}
		})
	}
}

// TestOpsApplyInOrder checks that the ops of one entry, and entries queued
// together, take effect in order: a put after a range delete survives it, a
// put before it does not.
func TestOpsApplyInOrder(t *testing.T) {
	s := memStore(t)
	l := tenEvents(t, s, "order")
	e := &Entry{Epoch: 1}
	e.Put(TableEvent, U64(20), U64(20)) // deleted by the range below
	e.DelRange(TableEvent, U64(2), U64(30))
	e.Put(TableEvent, U64(4), U64(4)) // put back
	e.Del(TableEvent, U64(4))         // and deleted again
	e.Put(TableEvent, U64(5), U64(5))
	mustAppend(t, l, e)
	if got, want := eventSeqs(t, l), []uint64{1, 5}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}

	// Entries submitted back to back share group commits.
	chans := make([]<-chan error, 0, 3)
	for _, e := range []*Entry{
		func() *Entry { e := &Entry{Epoch: 1}; e.Put(TableEvent, U64(7), U64(7)); return e }(),
		func() *Entry { e := &Entry{Epoch: 1}; e.DelRange(TableEvent, U64(0), U64(100)); return e }(),
		func() *Entry { e := &Entry{Epoch: 1}; e.Put(TableEvent, U64(8), U64(8)); return e }(),
	} {
		done, ch := callback()
		l.Append(e, done)
		chans = append(chans, ch)
	}
	for _, ch := range chans {
		wantErr(t, "append", wait(t, ch), nil)
	}
	if got, want := eventSeqs(t, l), []uint64{8}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestDeletesSurviveReopen(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	l := tenEvents(t, s, "reopen")
	e := &Entry{Epoch: 1}
	e.DelRange(TableEvent, U64(2), U64(9))
	e.Del(TableEvent, U64(10))
	mustAppend(t, l, e)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	l = openStore(t, fs, Options{}).Channel("reopen")
	if got, want := eventSeqs(t, l), []uint64{1, 9}; !slices.Equal(got, want) {
		t.Fatalf("events after reopen %v, want %v", got, want)
	}
}

func TestEntriesMayNotWriteTheFence(t *testing.T) {
	s := memStore(t)
	l := s.Channel("f")
	mustFence(t, l, 1)
	for name, e := range map[string]*Entry{
		"put":       put(1, TableFence, "", string(U64(9))),
		"delete":    func() *Entry { e := &Entry{Epoch: 1}; e.Del(TableFence, nil); return e }(),
		"delrange":  func() *Entry { e := &Entry{Epoch: 1}; e.DelRange(TableFence, nil, []byte{0xff}); return e }(),
		"after put": func() *Entry { e := put(1, TableAux, "k", "v"); e.Put(TableFence, nil, U64(9)); return e }(),
	} {
		wantErr(t, name, appendWait(t, l, e), ErrInvalid)
		if ep, err := l.Epoch(); err != nil || ep != 1 {
			t.Fatalf("%s: epoch %d, %v; want 1", name, ep, err)
		}
		if _, err := l.Get(TableAux, []byte("k")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: refused entry wrote (%v)", name, err)
		}
	}
	// A refused entry breaks its epoch: nothing more lands in it, so the
	// log can have no hole.
	wantErr(t, "after a refusal", appendWait(t, l, put(1, TableAux, "k", "v")), ErrFenced)
	mustFence(t, l, 2)
	// A scope-wide range delete in the aux table does not reach the fence
	// either: ranges stay inside their table.
	e := &Entry{Epoch: 2}
	e.DelRange(TableAux, nil, []byte{0xff, 0xff, 0xff})
	mustAppend(t, l, e)
	if ep, _ := l.Epoch(); ep != 2 {
		t.Fatalf("epoch %d after an aux range delete", ep)
	}
}

func TestEmptyAndNilEntries(t *testing.T) {
	l := memStore(t).Channel("e")
	mustFence(t, l, 1)
	mustAppend(t, l, &Entry{Epoch: 1}) // no ops: lands, changes nothing
	wantErr(t, "empty entry, old epoch", appendWait(t, l, &Entry{Epoch: 7}), ErrFenced)
	wantErr(t, "nil entry", appendWait(t, l, nil), ErrInvalid)
	if !(*Entry)(nil).Empty() || !(&Entry{}).Empty() || put(1, TableAux, "", "").Empty() {
		t.Fatal("Empty is wrong")
	}
}
