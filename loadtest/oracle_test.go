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
	c.finish(3, []histMsg{{Segment: 1}, {Segment: 2, ClientID: "x"}, {Segment: 3, ClientID: "y"}})
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

// A channel the final checks could not read is a violation, never a
// silent skip, and so is a watcher whose join failed: nothing it received
// was checked.
func TestOracleUnverified(t *testing.T) {
	o := newOracle()
	(&fakeChannel{id: "fine", joinSeq: 1, messages: 5}).run(o, 2, nil)
	if v := o.verdict(); !v.OK {
		t.Fatalf("clean channel judged %v", v.Counts)
	}
	c := o.channel("unread")
	c.ack(2, "cid-2")
	s := c.watch("w")
	s.begin(1)
	s.event(2, 2)
	c.unverified("the final channel.watch failed (timeout)")
	v := o.verdict()
	if v.OK || v.Counts[ViolationUnverified] != 1 || len(v.Counts) != 1 {
		t.Fatalf("unread channel: ok=%v counts %v", v.OK, v.Counts)
	}
	if x := v.Violations[len(v.Violations)-1]; x.Channel != "unread" || !strings.Contains(x.String(), "unverified: channel unread") {
		t.Fatalf("violation %v", x)
	}

	o = newOracle()
	c = o.channel("half")
	c.ack(2, "cid-2")
	joined, failed := c.watch("joined"), c.watch("nojoin")
	joined.begin(1)
	joined.event(2, 2)
	_ = failed // its join failed: begin never came
	c.finish(2, []histMsg{{Segment: 1}, {Segment: 2, ClientID: "cid-2"}})
	v = o.verdict()
	if v.OK || v.Counts[ViolationUnverified] != 1 || len(v.Counts) != 1 || v.Violations[0].Watcher != "nojoin" {
		t.Fatalf("failed join: ok=%v counts %v violations %v", v.OK, v.Counts, v.Violations)
	}
}

// A reset (resume answered reset: true) moves the watcher past the seqs
// the server no longer keeps: they are counted, not gaps, and the reset
// itself is no event; one that arrives after all is out of order, and a
// reset below what was received is a rewind.
func TestOracleReset(t *testing.T) {
	o := newOracle()
	c := o.channel("r")
	for seg := uint64(1); seg <= 12; seg++ {
		c.ack(seg, fmt.Sprintf("cid-%d", seg))
	}
	a, b := c.watch("a"), c.watch("b")
	a.begin(0)
	b.begin(0)
	for seq := uint64(1); seq <= 12; seq++ {
		b.event(seq, seq)
		if seq <= 3 || seq > 10 {
			a.event(seq, seq)
		}
		if seq == 3 {
			a.reset(10) // a reconnects: seqs 4..10 are gone for it
		}
	}
	var hist []histMsg
	for seg := uint64(1); seg <= 12; seg++ {
		hist = append(hist, histMsg{Segment: seg, ClientID: fmt.Sprintf("cid-%d", seg)})
	}
	c.finish(12, hist)
	v := o.verdict()
	if !v.OK || v.ResetSkipped != 7 || v.Delivered != 17 {
		t.Fatalf("reset judged ok=%v counts %v skipped %d delivered %d", v.OK, v.Counts, v.ResetSkipped, v.Delivered)
	}

	o = newOracle()
	c = o.channel("r")
	a = c.watch("a")
	a.begin(0)
	a.event(1, 0)
	a.event(2, 0)
	a.reset(5)
	a.event(4, 0) // the reset said it was gone
	a.event(6, 0)
	a.reset(3) // below 6: the channel's seq went back
	c.finish(6, nil)
	v = o.verdict()
	if v.Counts[ViolationReorder] != 1 || v.Counts[ViolationRewind] != 1 || len(v.Counts) != 2 {
		t.Fatalf("counts %v violations %v", v.Counts, v.Violations)
	}
	for _, x := range v.Violations {
		if x.Kind == ViolationReorder && !strings.Contains(x.Detail, "after a reset") {
			t.Errorf("reorder: %v", x)
		}
	}
}

// Reactions: each acknowledged one must reach a watcher as
// reaction.updated and be counted on its message in history.
func TestOracleReactions(t *testing.T) {
	o := newOracle()
	c := o.channel("live")
	c.ack(1, "cid-1")
	c.ack(2, "cid-2")
	s := c.watch("v")
	s.begin(0)
	s.event(1, 1)
	s.event(2, 2)
	got := reaction{segment: 1, user: "u1", name: "r1"}
	twice := reaction{segment: 1, user: "u2", name: "r1"}
	notSent := reaction{segment: 2, user: "u3", name: "r2"}
	notKept := reaction{segment: 2, user: "u4", name: "r3"}
	for _, r := range []reaction{got, twice, twice, notSent, notKept} {
		c.ackReaction(r) // twice: the second add changed nothing
	}
	for seq, r := range []reaction{got, twice, notKept} {
		s.event(uint64(3+seq), 0)
		c.reactionEvent(r, true)
	}
	c.reactionEvent(reaction{segment: 2, user: "u3", name: "r2"}, false) // a removal is not the add
	c.finish(5, []histMsg{
		{Segment: 1, ClientID: "cid-1", Reactions: map[string]int64{"r1": 2}},
		{Segment: 2, ClientID: "cid-2", Reactions: map[string]int64{"r2": 1}},
	})
	v := o.verdict()
	if v.ReactionsAcked != 4 || v.Counts[ViolationUndelivered] != 1 || v.Counts[ViolationLost] != 1 || len(v.Counts) != 2 {
		t.Fatalf("acked %d counts %v violations %v", v.ReactionsAcked, v.Counts, v.Violations)
	}
	for _, x := range v.Violations {
		switch x.Kind {
		case ViolationUndelivered:
			if x.Watcher != "u3" || !strings.Contains(x.Detail, `"r2"`) {
				t.Errorf("undelivered: %v", x)
			}
		case ViolationLost:
			if x.Segment != 2 || !strings.Contains(x.Detail, `0 "r3" reactions, 1 were acknowledged`) {
				t.Errorf("lost: %v", x)
			}
		}
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
