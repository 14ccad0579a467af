package main

import (
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestReadEventsCoalesceEndToEnd: three read.marks in a row by bob reach
// a watcher as two read events — the first at once, the newest when the
// interval ends (the channel's wake timer) — and nothing more.
func TestReadEventsCoalesceEndToEnd(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	cs := setup(t, n, "reads", protocol.TypeStandard, "alice", "bob")
	alice, bob := cs[0], cs[1]
	var segs []uint64
	for i := range 3 {
		m, err := alice.Send(ctx, sendArgs("reads", "m"+itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, m.Segment)
	}
	for _, seg := range segs {
		r := call[protocol.MemberResult](t, bob, protocol.OpReadMark, protocol.ReadMarkArgs{Channel: "reads", Segment: &seg})
		if r.Member.ReadSegment != seg {
			t.Fatalf("read.mark %d: %+v", seg, r.Member)
		}
	}
	start := time.Now()
	for _, want := range []uint64{segs[0], segs[2]} {
		if _, rd := eventData[protocol.ReadEvent](t, alice, protocol.EventRead); rd.User != "bob" || rd.Segment != want {
			t.Fatalf("read event %+v, want bob at %d", rd, want)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the held read event took %v", d)
	}
	// Nothing else was held: the next event is the next message.
	if _, err := alice.Send(ctx, sendArgs("reads", "after")); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case e := <-alice.Events():
			if e.Name == protocol.EventRead {
				t.Fatalf("a third read event: %s", e.Data)
			}
			if e.Name == protocol.EventMessageNew {
				return
			}
		case <-ctx.Done():
			t.Fatal("no message.new")
		}
	}
}
