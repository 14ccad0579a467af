package persistence

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestScanTablesIsEachScan: ScanTables returns what a Scan of each range
// returns, through a ShardLog (with entries applied, and with entries
// still pending over them) and a store view, for random records in the
// scope and in the scopes beside it, including a scope with none.
func TestScanTablesIsEachScan(t *testing.T) {
	s := memStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	tables := []Table{TableMeta, TableEvent, TableIdem, TableMessage, TableMember, TableAux}
	keys := []string{"", "a", "b", "file\x00x", "file\x01", "files", "m", "presence", "presence\x00", "z"}
	randomEntry := func(n int) *Entry {
		e := &Entry{}
		for range n {
			tab, key := tables[rng.IntN(len(tables))], keys[rng.IntN(len(keys))]
			if rng.IntN(5) == 0 {
				e.Del(tab, []byte(key))
				continue
			}
			e.Put(tab, []byte(key), []byte(fmt.Sprint(rng.IntN(100))))
		}
		return e
	}
	rangeSets := [][]TableRange{
		{{Table: TableMeta}, {Table: TableMember}, {Table: TableAux, Range: Range{After: []byte("file\x01"), Before: []byte("presence\x00")}}},
		{{Table: TableEvent, Range: Range{After: []byte("a")}}, {Table: TableAux, Range: Range{Before: []byte("m")}}},
		{{Table: TableMeta, Range: Range{Before: []byte("z")}}, {Table: TableIdem}, {Table: TableMessage}, {Table: TableAux}},
		{{Table: TableAux, Range: Range{After: []byte("z")}}},
	}
	check := func(what string, r Reader) {
		t.Helper()
		for _, rs := range rangeSets {
			got, err := ScanTables(r, rs)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			for i, tr := range rs {
				want := mustScan(t, r, tr.Table, tr.Range)
				if !slices.EqualFunc(got[i], want, func(a, b Record) bool {
					return string(a.Key) == string(b.Key) && string(a.Value) == string(b.Value)
				}) {
					t.Fatalf("%s: range %d of %v: got %v, want %v", what, i, rs, got[i], want)
				}
			}
		}
	}
	for round := range 30 {
		id := fmt.Sprint("u", round)
		sc := Scope{Kind: KindUser, ID: id}
		// Neighbours on both sides of the scope's key range, and the
		// scope itself with 0 to 12 records.
		mustAppend(t, localLog(s, Scope{Kind: KindUser, ID: id[:len(id)-1]}), randomEntry(5))
		mustAppend(t, localLog(s, Scope{Kind: KindUser, ID: id + "0"}), randomEntry(5))
		if n := rng.IntN(13); n > 0 {
			mustAppend(t, localLog(s, sc), randomEntry(n))
		}
		check("applied "+id, localLog(s, sc))
		check("view "+id, s.Reader(3, sc))
		var held []func(error)
		l := s.ShardLog(3, sc, func(cmd []byte, done func(error)) { held = append(held, done) })
		l.Append(randomEntry(4), func(error) {})
		check("pending "+id, l)
		for _, done := range held {
			done(errors.New("dropped")) // never applied: the log forgets it
		}
	}
}

// TestScanTablesRefusesUnorderedRanges: ranges out of table order, two in
// one table, reverse or limited ranges are refused, on every Reader.
func TestScanTablesRefusesUnorderedRanges(t *testing.T) {
	s := memStore(t)
	for _, rs := range [][]TableRange{
		{{Table: TableAux}, {Table: TableMeta}},
		{{Table: TableAux}, {Table: TableAux, Range: Range{After: []byte("a")}}},
		{{Table: TableAux, Range: Range{Reverse: true}}},
		{{Table: TableAux, Range: Range{Limit: 1}}},
	} {
		for _, r := range []Reader{chanLog(s, "c"), NewMemLog()} {
			if _, err := ScanTables(r, rs); !errors.Is(err, ErrInvalid) {
				t.Errorf("%v on %T: %v, want ErrInvalid", rs, r, err)
			}
		}
	}
}
