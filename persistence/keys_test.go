package persistence

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// scanSeqs are the sequence numbers stored by the scan tests: their
// big-endian keys must sort numerically, which a decimal or little-endian
// encoding would not (2 < 10 < 256 < 65536 < 2^40).
var scanSeqs = []uint64{0, 1, 2, 3, 9, 10, 11, 255, 256, 257, 65536, 1 << 40, 1<<64 - 1}

func TestU64SortsNumerically(t *testing.T) {
	for i := 1; i < len(scanSeqs); i++ {
		a, b := U64(scanSeqs[i-1]), U64(scanSeqs[i])
		if bytes.Compare(a, b) >= 0 {
			t.Fatalf("U64(%d) does not sort below U64(%d)", scanSeqs[i-1], scanSeqs[i])
		}
	}
	for _, n := range scanSeqs {
		if got, ok := ParseU64(U64(n)); !ok || got != n {
			t.Fatalf("ParseU64(U64(%d)) = %d, %v", n, got, ok)
		}
	}
	for _, bad := range [][]byte{nil, {1}, make([]byte, 7), make([]byte, 9)} {
		if _, ok := ParseU64(bad); ok {
			t.Fatalf("ParseU64(%x) accepted", bad)
		}
	}
}

// TestTablesDoNotBleed writes the same keys into every table, including
// the lowest and highest table bytes, and checks that each table reads back
// only its own records.
func TestTablesDoNotBleed(t *testing.T) {
	l := memStore(t).Channel("tables")
	mustFence(t, l, 1)
	tables := []Table{0x00, TableMeta, TableEvent, TableIdem, TableMessage, TableMember, TableAux, 0xfe, 0xff}
	keys := []string{"", "\x00", "a", "\xff", "\xff\xff\xff"}
	e := &Entry{Epoch: 1}
	for _, tab := range tables {
		for _, k := range keys {
			e.Put(tab, []byte(k), []byte{byte(tab)})
		}
	}
	mustAppend(t, l, e)
	for _, tab := range tables {
		recs := mustScan(t, l, tab, Range{})
		if got := keysOf(recs); !slices.Equal(got, keys) {
			t.Fatalf("table %#x: keys %q, want %q", byte(tab), got, keys)
		}
		for _, r := range recs {
			if !bytes.Equal(r.Value, []byte{byte(tab)}) {
				t.Fatalf("table %#x holds a record of table %#x", byte(tab), r.Value)
			}
		}
		if got := len(mustScan(t, l, tab, Range{Reverse: true})); got != len(keys) {
			t.Fatalf("table %#x reverse: %d records", byte(tab), got)
		}
	}
	// The fence table holds exactly the fence.
	fence := mustScan(t, l, TableFence, Range{})
	if len(fence) != 1 || len(fence[0].Key) != 0 || !bytes.Equal(fence[0].Value, U64(1)) {
		t.Fatalf("fence table: %+v", fence)
	}
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(snap.Records), len(tables)*len(keys); got != want {
		t.Fatalf("snapshot has %d records, want %d", got, want)
	}
}

// TestScopesDoNotBleed writes the same records into scopes whose ids are
// prefixes of each other, or equal under another kind, and checks that
// reads, range deletes and snapshots of one never see the others.
func TestScopesDoNotBleed(t *testing.T) {
	s := memStore(t)
	scopes := []Scope{
		{KindChannel, ""}, {KindChannel, "a"}, {KindChannel, "ab"}, {KindChannel, "a\x00"},
		{KindChannel, "a\xff"}, {KindChannel, "b"}, {KindUser, "a"}, {KindNode, "a"},
		{KindChannel, strings.Repeat("z", MaxIDLen)},
	}
	for i, sc := range scopes {
		l := s.Log(sc)
		mustFence(t, l, uint64(i+1))
		e := &Entry{Epoch: uint64(i + 1)}
		for _, k := range []string{"", "a", "b", "\xff"} {
			e.Put(TableAux, []byte(k), []byte(sc.String()))
		}
		e.Put(TableMeta, nil, []byte(sc.String()))
		mustAppend(t, l, e)
	}
	check := func(skip int, auxWant int) {
		t.Helper()
		for i, sc := range scopes {
			l := s.Log(sc)
			want := 4
			if i == skip {
				want = auxWant
			}
			recs := mustScan(t, l, TableAux, Range{})
			if len(recs) != want {
				t.Fatalf("%v: %d aux records, want %d", sc, len(recs), want)
			}
			for _, r := range recs {
				if string(r.Value) != sc.String() {
					t.Fatalf("%v reads a record of %s", sc, r.Value)
				}
			}
			if got := mustGet(t, l, TableMeta, ""); got != sc.String() {
				t.Fatalf("%v reads meta of %s", sc, got)
			}
			if ep, err := l.Epoch(); err != nil || ep != uint64(i+1) {
				t.Fatalf("%v: epoch %d, %v; want %d", sc, ep, err, i+1)
			}
			snap, err := l.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if snap.Epoch != uint64(i+1) || len(snap.Records) != want+1 {
				t.Fatalf("%v: snapshot epoch %d with %d records", sc, snap.Epoch, len(snap.Records))
			}
		}
	}
	check(-1, 0)
	// Wipe the aux table of "a": nothing else changes.
	wipe := &Entry{Epoch: 2}
	wipe.DelRange(TableAux, []byte{}, []byte{0xff, 0xff})
	mustAppend(t, s.Log(scopes[1]), wipe)
	check(1, 0)
}

func TestScopeIDTooLong(t *testing.T) {
	s := memStore(t)
	long := strings.Repeat("e", MaxIDLen+1)
	for _, l := range []Log{s.Channel(long), s.User(long)} {
		wantErr(t, "fence", fenceWait(t, l, 1), ErrInvalid)
		wantErr(t, "append", appendWait(t, l, put(1, TableAux, "k", "v")), ErrInvalid)
		if _, err := l.Epoch(); !errors.Is(err, ErrInvalid) {
			t.Fatalf("epoch: %v", err)
		}
		if _, err := l.Get(TableAux, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("get: %v", err)
		}
		if _, err := l.Scan(TableAux, Range{}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("scan: %v", err)
		}
		if _, err := l.Snapshot(); !errors.Is(err, ErrInvalid) {
			t.Fatalf("snapshot: %v", err)
		}
	}
	err := s.Restore(&Snapshot{Scope: Scope{Kind: KindChannel, ID: long}}, 1)
	wantErr(t, "restore", err, ErrInvalid)
	// Nothing leaked into the scope whose id is the empty string, which the
	// long id's length byte would have wrapped around to.
	for _, k := range []Kind{KindChannel, KindUser} {
		if n := len(mustScan(t, s.Log(Scope{Kind: k}), TableAux, Range{})); n != 0 {
			t.Fatalf("kind %c: %d records leaked", k, n)
		}
	}
}
