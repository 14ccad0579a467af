package channel

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// readEvents decodes eff's read events as "user:segment".
func readEvents(t *testing.T, eff *Effects) []string {
	t.Helper()
	return unsequenced(t, eff, protocol.EventRead, func(re protocol.ReadEvent) string {
		return fmt.Sprint(re.User, ":", re.Segment)
	})
}

// TestReadEventsAreCoalesced: a burst of read.marks by one user announces
// the first move at once and the newest one when the interval ends; other
// users are not held back by it, and the reply always has the new
// read_segment.
func TestReadEventsAreCoalesced(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	h.join(caller("bob"), nil)
	h.join(caller("carol"), nil)
	for i := range 5 {
		h.send("alice", fmt.Sprint("c", i), "x") // segments 3..7
	}
	mark := func(user string, seg uint64) []string {
		t.Helper()
		eff := h.do(caller(user), protocol.OpReadMark, map[string]any{"channel": channelID, "segment": seg})
		var r protocol.MemberResult
		if eff.Err != nil || decodeInto(eff.Result, &r) != nil || r.Member.ReadSegment != seg {
			t.Fatalf("mark %d: %v %s", seg, eff.Err, eff.Result)
		}
		return readEvents(t, eff)
	}
	tick := func(at time.Time) []string {
		t.Helper()
		h.now = at
		return readEvents(t, h.do(Caller{}, OpTick, nil))
	}
	start := h.now
	interval := h.cfg.Rich.ReadInterval
	if got := mark("bob", 3); !slices.Equal(got, []string{"bob:3"}) {
		t.Fatalf("first mark: %v", got)
	}
	for seg := uint64(4); seg <= 6; seg++ {
		h.tick(100 * time.Millisecond)
		if got := mark("bob", seg); len(got) != 0 {
			t.Fatalf("mark %d within the interval: %v", seg, got)
		}
	}
	if got := mark("carol", 5); !slices.Equal(got, []string{"carol:5"}) {
		t.Fatalf("another user: %v", got)
	}
	if at, ok := h.s.NextWake(); !ok || !at.Equal(start.Add(interval)) {
		t.Fatalf("next wake %v %v, want %v", at, ok, start.Add(interval))
	}
	if got := tick(start.Add(interval)); !slices.Equal(got, []string{"bob:6"}) {
		t.Fatalf("tick: %v", got)
	}
	// Quiet: nothing more, and nothing left to wake for.
	if got := tick(start.Add(3 * interval)); len(got) != 0 {
		t.Fatalf("quiet tick: %v", got)
	}
	if _, ok := h.s.NextWake(); ok || len(h.s.rich.reads) != 0 {
		t.Fatalf("still tracking %d readers", len(h.s.rich.reads))
	}
	// After a quiet interval a move is announced at once again.
	if got := mark("bob", 7); !slices.Equal(got, []string{"bob:7"}) {
		t.Fatalf("after quiet: %v", got)
	}
}
