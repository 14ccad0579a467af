package loadtest

import (
	"fmt"
	"strings"
	"testing"
)

// fakeChannel is a deliberately faulty fake of one channel's delivery: it
// issues seqs and segments like a real channel (a few non-message events
// first, then messages), and per watcher it can drop, repeat or swap
// events on their way out.
type fakeChannel struct {
	id       string
	joinSeq  uint64 // watchers begin here
	messages int
	// faults, by watcher index: the message number (from 1) affected.
	gap, dup, swap map[int]int
}

type fakeEvent struct{ seq, segment uint64 }

// segmentOf maps message k (from 1) to its segment: system messages took
// segments 1..joinSeq, so message k is segment joinSeq+k, carried by seq
// joinSeq+k.
func (f *fakeChannel) event(k int) fakeEvent {
	return fakeEvent{seq: f.joinSeq + uint64(k), segment: f.joinSeq + uint64(k)}
}

func (f *fakeChannel) stream(w int) []fakeEvent {
	var out []fakeEvent
	for k := 1; k <= f.messages; k++ {
		e := f.event(k)
		switch {
		case f.gap[w] == k:
			continue
		case f.dup[w] == k:
			out = append(out, e, e)
		case f.swap[w] == k && k < f.messages:
			out = append(out, f.event(k+1), e)
			k++
		default:
			out = append(out, e)
		}
	}
	return out
}

// run feeds the fake through the oracle as the runner would.
func (f *fakeChannel) run(o *oracle, watchers int, history []histMsg) {
	c := o.channel(f.id)
	for k := 1; k <= f.messages; k++ {
		e := f.event(k)
		c.ack(e.segment, fmt.Sprintf("cid-%d", e.segment))
	}
	for w := range watchers {
		s := c.watch(fmt.Sprintf("u%d", w))
		s.begin(f.joinSeq)
		for _, e := range f.stream(w) {
			s.event(e.seq, e.segment)
		}
	}
	if history == nil {
		for seg := uint64(1); seg <= f.joinSeq+uint64(f.messages); seg++ {
			history = append(history, histMsg{Segment: seg, ClientID: fmt.Sprintf("cid-%d", seg)})
		}
	}
	c.finish(f.joinSeq+uint64(f.messages), history)
}

func TestOracleCleanRun(t *testing.T) {
	o := newOracle()
	(&fakeChannel{id: "clean", joinSeq: 3, messages: 50}).run(o, 4, nil)
	v := o.verdict()
	if !v.OK || len(v.Violations) != 0 {
		t.Fatalf("clean run judged %+v", v)
	}
	if v.Acked != 50 || v.Delivered != 200 || v.Watchers != 4 || v.HistoryMessages != 53 {
		t.Fatalf("checked %+v", v)
	}
}

func TestOracleCatchesPlantedFaults(t *testing.T) {
	o := newOracle()
	f := &fakeChannel{id: "faulty", joinSeq: 3, messages: 20,
		gap:  map[int]int{1: 5},  // watcher u1 never gets message 5 (segment 8)
		dup:  map[int]int{2: 7},  // watcher u2 gets message 7 (segment 10) twice
		swap: map[int]int{3: 12}, // watcher u3 gets message 13 before 12 (segment 15)
	}
	f.run(o, 4, nil)
	(&fakeChannel{id: "fine", joinSeq: 1, messages: 10}).run(o, 2, nil)
	v := o.verdict()
	if v.OK {
		t.Fatal("faulty run judged OK")
	}
	want := map[string]int64{ViolationGap: 1, ViolationDuplicate: 1, ViolationReorder: 1}
	if fmt.Sprint(v.Counts) != fmt.Sprint(want) {
		t.Fatalf("counts %v, want %v (violations %v)", v.Counts, want, v.Violations)
	}
	found := map[string]Violation{}
	for _, x := range v.Violations {
		if x.Channel != "faulty" {
			t.Errorf("violation on the clean channel: %v", x)
		}
		found[x.Kind] = x
	}
	check := func(kind, watcher string, segment uint64) {
		t.Helper()
		x, ok := found[kind]
		if !ok {
			t.Fatalf("no %s violation", kind)
		}
		if x.Watcher != watcher || x.Segment != segment {
			t.Errorf("%s: got %v, want watcher %s segment %d", kind, x, watcher, segment)
		}
		if s := x.String(); !strings.Contains(s, "channel faulty") || !strings.Contains(s, fmt.Sprintf("segment %d", segment)) {
			t.Errorf("%s: %q does not name the channel and segment", kind, s)
		}
	}
	check(ViolationGap, "u1", 8)
	check(ViolationDuplicate, "u2", 10)
	check(ViolationReorder, "u3", 15)
}

func TestOracleCatchesLostAndTailGap(t *testing.T) {
	o := newOracle()
	f := &fakeChannel{id: "lossy", joinSeq: 1, messages: 5}
	var history []histMsg
	for seg := uint64(1); seg <= 6; seg++ {
		if seg == 4 {
			continue // acknowledged, then lost
		}
		history = append(history, histMsg{Segment: seg, ClientID: fmt.Sprintf("cid-%d", seg)})
	}
	f.run(o, 1, history)
	c := o.channel("tail")
	c.ack(2, "x")
	s := c.watch("late")
	s.begin(0)
	s.event(1, 0) // a non-message event
	c.finish(3, []histMsg{{1, ""}, {2, "x"}, {3, "y"}})
	v := o.verdict()
	if v.Counts[ViolationLost] != 1 || v.AckedMissing != 1 || v.Counts[ViolationHistory] != 1 {
		t.Fatalf("lost/history: %v", v.Counts)
	}
	if v.Counts[ViolationGap] != 2 || v.Counts[ViolationUndelivered] != 1 {
		t.Fatalf("tail gaps/undelivered: %v %v", v.Counts, v.Violations)
	}
}

func TestOracleMismatchBetweenWatchers(t *testing.T) {
	o := newOracle()
	c := o.channel("m")
	a, b := c.watch("a"), c.watch("b")
	a.begin(0)
	b.begin(0)
	a.event(1, 1)
	b.event(1, 2)
	c.finish(1, nil)
	if v := o.verdict(); v.Counts[ViolationMismatch] != 1 {
		t.Fatalf("mismatch not caught: %v", v.Counts)
	}
}

func TestSeqTableGrows(t *testing.T) {
	var tb seqTable
	for _, seq := range []uint64{1, chunkSize - 1, chunkSize, 5*chunkSize + 3} {
		if _, ok := tb.check(seq, seq); !ok {
			t.Fatalf("fresh slot %d refused", seq)
		}
		if _, ok := tb.check(seq, seq); !ok {
			t.Fatalf("same value at %d refused", seq)
		}
		if prev, ok := tb.check(seq, seq+1); ok || prev != seq+1 {
			t.Fatalf("different value at %d accepted (prev %d)", seq, prev)
		}
	}
	if idx := tb.segments(); len(idx.bySeq) != 4 || idx.bySeq[5*chunkSize+3] != 5*chunkSize+3 {
		t.Fatalf("index %v", idx.bySeq)
	}
}
