package channel

import (
	"fmt"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestReadMark: read_segment moves forward only; a move is announced by
// an ephemeral read event and lowers unread_count.
func TestReadMark(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	h.join(caller("bob"), nil)
	for i := 0; i < 5; i++ {
		h.send("alice", fmt.Sprint("c", i), "x")
	}
	mark := func(seg any) (protocol.MemberResult, *Effects) {
		args := map[string]any{"channel": channelID}
		if seg != nil {
			args["segment"] = seg
		}
		eff := h.do(caller("bob"), protocol.OpReadMark, args)
		if eff.Err != nil {
			t.Fatal(eff.Err)
		}
		var r protocol.MemberResult
		_ = decodeInto(eff.Result, &r)
		return r, eff
	}
	// Segment 1 is the system message of bob's join; c0..c4 are 2..6.
	r, eff := mark(4)
	if r.Member.ReadSegment != 4 || r.Member.UnreadCount != 2 || len(eff.Events) != 1 || eff.Events[0].Seq != 0 {
		t.Fatalf("mark 4: %+v events %+v", r.Member, eff.Events)
	}
	if f := decodeFrame(t, eff.Events[0].Frame); f.Event != protocol.EventRead || string(f.Data) != `{"user":"bob","segment":4}` {
		t.Errorf("read event %s %s", f.Event, f.Data)
	}
	if r, eff := mark(3); r.Member.ReadSegment != 4 || len(eff.Events) != 0 || eff.Entry != nil {
		t.Errorf("backwards: %+v, %d events", r.Member, len(eff.Events))
	}
	if r, _ := mark(99); r.Member.ReadSegment != 6 || r.Member.UnreadCount != 0 {
		t.Errorf("past the end: %+v", r.Member)
	}
	h.send("alice", "more", "x")
	h.send("bob", "own", "x")
	h.send("alice", "more2", "x")
	h.reload()
	if s := summary(h, "bob"); *s.UnreadCount != 1 || s.Member.ReadSegment != 8 {
		t.Errorf("bob's own message is not unread: %+v unread %d", s.Member, *s.UnreadCount)
	}
	if r, _ := mark(nil); r.Member.ReadSegment != 9 || r.Member.UnreadCount != 0 {
		t.Errorf("mark all: %+v", r.Member)
	}
	h.fail(caller("eve"), protocol.OpReadMark, map[string]any{"channel": channelID}, protocol.CodeNotMember)
}
