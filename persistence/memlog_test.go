package persistence

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// MemLog stands in for the Pebble log in the tests of other packages, so it
// must answer every sequence of operations as the Pebble log does. These
// tests run the same steps on both and compare what each step observes.

// step is one operation of an equivalence script.
type step struct {
	op    string // fence, append, get, scan, epoch, snapshot
	epoch uint64 // fence and append
	ops   []Op   // append; nil entry when nilEntry is set
	table Table  // get, scan
	key   string // get
	rg    Range  // scan

	nilEntry bool
}

func fenceStep(epoch uint64) step { return step{op: "fence", epoch: epoch} }

func appendStep(epoch uint64, ops ...Op) step { return step{op: "append", epoch: epoch, ops: ops} }

func getStep(t Table, key string) step { return step{op: "get", table: t, key: key} }

func scanStep(t Table, rg Range) step { return step{op: "scan", table: t, rg: rg} }

func putOp(t Table, k, v string) Op { return Op{Table: t, Key: []byte(k), Value: []byte(v)} }

func delOp(t Table, k string) Op { return Op{Table: t, Key: []byte(k), Delete: true} }

func delRangeOp(t Table, from, to string) Op {
	return Op{Table: t, Key: []byte(from), Delete: true, DeleteTo: []byte(to)}
}

// errClass names an error by the sentinel it matches.
func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrFenced):
		return "fenced"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, ErrNotFound):
		return "notfound"
	default:
		return "error: " + err.Error()
	}
}

// observe runs st on l and describes the outcome.
func observe(t *testing.T, l Log, st step) string {
	t.Helper()
	switch st.op {
	case "fence":
		done, ch := callback()
		l.Fence(st.epoch, done)
		return errClass(wait(t, ch))
	case "append":
		var e *Entry
		if !st.nilEntry {
			e = &Entry{Epoch: st.epoch, Ops: st.ops}
		}
		done, ch := callback()
		l.Append(e, done)
		return errClass(wait(t, ch))
	case "get":
		v, err := l.Get(st.table, []byte(st.key))
		return fmt.Sprintf("%s %q", errClass(err), v)
	case "scan":
		recs, err := l.Scan(st.table, st.rg)
		var b strings.Builder
		for _, r := range recs {
			fmt.Fprintf(&b, "%q=%q ", r.Key, r.Value)
		}
		return errClass(err) + " " + b.String()
	case "epoch":
		ep, err := l.Epoch()
		return fmt.Sprintf("%s %d", errClass(err), ep)
	case "snapshot":
		snap, err := l.Snapshot()
		if err != nil {
			return errClass(err)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "epoch %d:", snap.Epoch)
		for _, r := range snap.Records {
			fmt.Fprintf(&b, " %c/%q=%q", r.Table, r.Key, r.Value)
		}
		return b.String()
	}
	t.Fatalf("unknown step %q", st.op)
	return ""
}

// equivalent runs steps on a MemLog and on a Pebble log and fails at the
// first step they observe differently.
func equivalent(t *testing.T, steps []step) {
	t.Helper()
	mem := NewMemLog()
	peb := memStore(t).Channel("equiv")
	for i, st := range steps {
		got, want := observe(t, mem, st), observe(t, peb, st)
		if got != want {
			t.Fatalf("step %d (%s %+v):\n  memlog: %s\n  pebble: %s", i, st.op, st, got, want)
		}
	}
}

var everything = []step{{op: "snapshot"}, {op: "epoch"}, scanStep(TableAux, Range{}), scanStep(TableEvent, Range{}), scanStep(TableFence, Range{})}

func TestMemLogMatchesPebble(t *testing.T) {
	scripts := map[string][]step{
		"fences": {
			{op: "epoch"},
			fenceStep(0), appendStep(0, putOp(TableAux, "k", "v")), appendStep(1, putOp(TableAux, "k", "v")),
			fenceStep(2), fenceStep(2), fenceStep(1), appendStep(1, putOp(TableAux, "k", "old")),
			appendStep(3, putOp(TableAux, "k", "future")), appendStep(2, putOp(TableAux, "k", "v2")),
			fenceStep(10), appendStep(2, putOp(TableAux, "k", "late")), appendStep(10),
			getStep(TableAux, "k"), getStep(TableFence, ""),
		},
		"puts and gets": {
			fenceStep(1),
			appendStep(1, putOp(TableMeta, "", "m"), putOp(TableAux, "a", "1"), putOp(TableAux, "b", ""), putOp(TableMember, "a", "x")),
			getStep(TableMeta, ""), getStep(TableAux, "a"), getStep(TableAux, "b"), getStep(TableAux, "c"), getStep(TableMember, "b"),
			appendStep(1, putOp(TableAux, "a", "2")), getStep(TableAux, "a"),
		},
		"deletes": {
			fenceStep(1),
			appendStep(1, putOp(TableEvent, "\x01", "1"), putOp(TableEvent, "\x02", "2"), putOp(TableEvent, "\x03", "3"),
				putOp(TableEvent, "\x04", "4"), putOp(TableEvent, "\x04\x00", "4+"), putOp(TableAux, "\x02", "aux")),
			appendStep(1, delOp(TableEvent, "\x01"), delOp(TableEvent, "\x09")),
			appendStep(1, delRangeOp(TableEvent, "\x02", "\x04")),
			scanStep(TableEvent, Range{}),
			appendStep(1, delRangeOp(TableEvent, "\x05", "\x04")), // inverted
			appendStep(1, delRangeOp(TableEvent, "\x04", "\x04")), // empty
			scanStep(TableEvent, Range{}),
			appendStep(1, putOp(TableEvent, "\x07", "7"), delRangeOp(TableEvent, "", "\xff"), putOp(TableEvent, "\x08", "8")),
			scanStep(TableEvent, Range{}), getStep(TableAux, "\x02"),
		},
		"scans": {
			fenceStep(1),
			appendStep(1, putOp(TableAux, "", "e"), putOp(TableAux, "a", "1"), putOp(TableAux, "ab", "2"), putOp(TableAux, "b", "3"),
				putOp(TableAux, "b\x00", "4"), putOp(TableAux, "\xff", "5")),
			scanStep(TableAux, Range{After: []byte("a")}), scanStep(TableAux, Range{Before: []byte("b")}),
			scanStep(TableAux, Range{After: []byte("a"), Before: []byte("b\x00"), Reverse: true}),
			scanStep(TableAux, Range{Limit: 2, Reverse: true}), scanStep(TableAux, Range{Limit: 2, After: []byte{}}),
			scanStep(TableAux, Range{After: []byte("b"), Before: []byte("a")}), scanStep(TableAux, Range{Before: []byte{}}),
			scanStep(TableMeta, Range{}),
		},
		"bad entries": {
			fenceStep(1),
			appendStep(1, putOp(TableAux, "k", "v"), putOp(TableFence, "", "\x00\x00\x00\x00\x00\x00\x00\x09")),
			appendStep(1, delOp(TableFence, "")),
			appendStep(1, delRangeOp(TableFence, "", "\xff")),
			{op: "append", epoch: 1, nilEntry: true},
			getStep(TableAux, "k"), {op: "epoch"}, getStep(TableFence, ""),
		},
	}
	for name, steps := range scripts {
		t.Run(name, func(t *testing.T) { equivalent(t, append(steps, everything...)) })
	}
}

// TestMemLogMatchesPebbleRandom compares the two on random scripts over a
// small key space, so that puts, deletes, ranges and fences collide.
func TestMemLogMatchesPebbleRandom(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0xe9))
			keys := []string{"", "a", "a0", "a\x00", "b", "c", "\xff"}
			key := func() string { return keys[rng.IntN(len(keys))] }
			table := func() Table { return []Table{TableAux, TableEvent, TableAux, TableFence}[rng.IntN(4)] }
			epoch := uint64(0)
			var steps []step
			for range 300 {
				switch r := rng.IntN(20); {
				case r == 0:
					// Sometimes the current epoch (refused), usually higher.
					next := epoch + uint64(rng.IntN(3))
					steps = append(steps, fenceStep(next))
					epoch = max(epoch, next)
				case r < 12:
					var ops []Op
					for range 1 + rng.IntN(3) {
						switch rng.IntN(4) {
						case 0:
							ops = append(ops, delOp(table(), key()))
						case 1:
							ops = append(ops, delRangeOp(table(), key(), key()))
						default:
							ops = append(ops, putOp(table(), key(), fmt.Sprint(rng.IntN(100))))
						}
					}
					e := epoch
					if rng.IntN(8) == 0 {
						e = uint64(rng.IntN(int(epoch) + 2))
					}
					steps = append(steps, appendStep(e, ops...))
				case r < 15:
					steps = append(steps, getStep(table(), key()))
				case r < 19:
					rg := Range{Limit: rng.IntN(4), Reverse: rng.IntN(2) == 0}
					if rng.IntN(2) == 0 {
						rg.After = []byte(key())
					}
					if rng.IntN(2) == 0 {
						rg.Before = []byte(key())
					}
					steps = append(steps, scanStep(table(), rg))
				default:
					steps = append(steps, step{op: "snapshot"})
				}
			}
			equivalent(t, append(steps, everything...))
		})
	}
}
