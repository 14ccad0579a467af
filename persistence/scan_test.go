package persistence

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func seqLog(t *testing.T) Log {
	t.Helper()
	l := memStore(t).Channel("seq")
	mustFence(t, l, 1)
	e := &Entry{Epoch: 1}
	// Put them in a scrambled order.
	for _, i := range []int{7, 2, 12, 0, 9, 4, 11, 1, 6, 10, 3, 8, 5} {
		e.Put(TableMessage, U64(scanSeqs[i]), U64(scanSeqs[i]*3))
	}
	mustAppend(t, l, e)
	return l
}

// seqs decodes the keys of recs, checking each value against its key.
func seqs(t *testing.T, recs []Record) []uint64 {
	t.Helper()
	out := make([]uint64, len(recs))
	for i, r := range recs {
		n, ok := ParseU64(r.Key)
		if !ok {
			t.Fatalf("key %x is not a U64", r.Key)
		}
		if !bytes.Equal(r.Value, U64(n*3)) {
			t.Fatalf("key %d has value %x", n, r.Value)
		}
		out[i] = n
	}
	return out
}

func TestScanRanges(t *testing.T) {
	l := seqLog(t)
	rev := slices.Clone(scanSeqs)
	slices.Reverse(rev)
	cases := []struct {
		name string
		r    Range
		want []uint64
	}{
		{"all", Range{}, scanSeqs},
		{"reverse", Range{Reverse: true}, rev},
		{"after is exclusive", Range{After: U64(10)}, []uint64{11, 255, 256, 257, 65536, 1 << 40, 1<<64 - 1}},
		{"before is exclusive", Range{Before: U64(10)}, []uint64{0, 1, 2, 3, 9}},
		{"between", Range{After: U64(3), Before: U64(256)}, []uint64{9, 10, 11, 255}},
		{"between reverse", Range{After: U64(3), Before: U64(256), Reverse: true}, []uint64{255, 11, 10, 9}},
		{"absent bounds", Range{After: U64(4), Before: U64(100)}, []uint64{9, 10, 11}},
		{"limit", Range{Limit: 3}, []uint64{0, 1, 2}},
		{"limit reverse", Range{Limit: 2, Reverse: true}, []uint64{1<<64 - 1, 1 << 40}},
		{"limit reverse before", Range{Before: U64(256), Limit: 3, Reverse: true}, []uint64{255, 11, 10}},
		{"limit after", Range{After: U64(255), Limit: 2}, []uint64{256, 257}},
		{"limit above count", Range{After: U64(65536), Limit: 10}, []uint64{1 << 40, 1<<64 - 1}},
		{"negative limit is no limit", Range{Limit: -1, After: U64(65536)}, []uint64{1 << 40, 1<<64 - 1}},
		{"after the last", Range{After: U64(1<<64 - 1)}, nil},
		{"before the first", Range{Before: U64(0)}, nil},
		{"empty interval", Range{After: U64(10), Before: U64(11)}, nil},
		{"inverted interval", Range{After: U64(257), Before: U64(3)}, nil},
		{"inverted interval reverse", Range{After: U64(257), Before: U64(3), Reverse: true}, nil},
		// A bound shorter than the keys: "after 0x00" excludes only keys
		// equal to it, so the 8-byte zero key is above it.
		{"short after", Range{After: []byte{0}}, scanSeqs},
		{"empty after", Range{After: []byte{}, Limit: 1}, []uint64{0}},
		{"empty before", Range{Before: []byte{}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := seqs(t, mustScan(t, l, TableMessage, c.r))
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestGet(t *testing.T) {
	l := memStore(t).Channel("get")
	mustFence(t, l, 1)
	e := &Entry{Epoch: 1}
	e.Put(TableMeta, nil, []byte("meta"))
	e.Put(TableAux, []byte("k"), []byte("v"))
	e.Put(TableAux, []byte("empty"), nil)
	mustAppend(t, l, e)
	if got := mustGet(t, l, TableMeta, ""); got != "meta" {
		t.Fatalf("meta = %q", got)
	}
	if got := mustGet(t, l, TableAux, "k"); got != "v" {
		t.Fatalf("k = %q", got)
	}
	if got, err := l.Get(TableAux, []byte("empty")); err != nil || len(got) != 0 {
		t.Fatalf("empty value = %q, %v", got, err)
	}
	for _, k := range []string{"", "kk", "K"} {
		if _, err := l.Get(TableAux, []byte(k)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get %q: %v, want ErrNotFound", k, err)
		}
	}
	if _, err := l.Get(TableMember, []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get from another table: %v, want ErrNotFound", err)
	}
	// A returned value is the caller's to keep and modify.
	v, _ := l.Get(TableAux, []byte("k"))
	v[0] = 'X'
	if got := mustGet(t, l, TableAux, "k"); got != "v" {
		t.Fatalf("modifying a returned value changed the store: %q", got)
	}
}
