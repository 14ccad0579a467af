package channel

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// rewatch sends OpRewatch from gateway gw for sessions (user:session
// pairs) from since.
func (h *harness) rewatch(gw string, since uint64, sessions ...RewatchSession) (RewatchResult, *protocol.Error) {
	h.t.Helper()
	eff := h.do(Caller{Gateway: gw}, OpRewatch, RewatchArgs{SinceSeq: since, Sessions: sessions})
	var r RewatchResult
	if eff.Err == nil {
		if err := json.Unmarshal(eff.Result, &r); err != nil {
			h.t.Fatalf("rewatch result %s: %v", eff.Result, err)
		}
	}
	return r, eff.Err
}

// TestRewatchTakesBackWhoMayStillRead: a fresh activation (the channel
// moved) takes back the sessions that may still watch, replays what they
// missed, and names every session it refuses with the error a watch
// would get now.
func TestRewatchTakesBackWhoMayStillRead(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypePrivate, map[string]any{"members": []string{"bob", "carol"}})
	h.send("alice", "m1", "one")
	since := h.s.LastSeq()
	h.reload() // the channel's new activation knows no watchers
	ok[struct{}](h, caller("alice"), protocol.OpMemberBan, args("user", "carol", "duration_min", 0))
	h.send("alice", "m2", "two")

	r, err := h.rewatch("gw1", since,
		RewatchSession{Session: "s-bob", User: "bob"},
		RewatchSession{Session: "s-carol", User: "carol"},
		RewatchSession{Session: "s-dave", User: "dave"},
		RewatchSession{Session: "s-root", User: "root", Admin: true},
	)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Accepted, []string{"s-bob", "s-root"}) {
		t.Errorf("accepted %v, want s-bob and s-root", r.Accepted)
	}
	want := map[string]protocol.Code{"s-carol": protocol.CodeBanned, "s-dave": protocol.CodeNotMember}
	if len(r.Refused) != len(want) {
		t.Fatalf("refused %+v, want %v", r.Refused, want)
	}
	for _, rs := range r.Refused {
		if rs.Error == nil || rs.Error.Code != want[rs.Session] {
			t.Errorf("%s refused with %v, want %s", rs.Session, rs.Error, want[rs.Session])
		}
	}
	if h.s.Watchers() != 2 {
		t.Errorf("%d watchers, want 2", h.s.Watchers())
	}
	// The replay is every event after since, in order; the seq is the end.
	if r.Seq != h.s.LastSeq() || r.Reset || r.EventsHasMore {
		t.Errorf("seq %d reset %v more %v, want seq %d", r.Seq, r.Reset, r.EventsHasMore, h.s.LastSeq())
	}
	for i, raw := range r.Events {
		if f := decodeFrame(t, raw); f.Seq != since+uint64(i)+1 {
			t.Errorf("event %d has seq %d, want %d", i, f.Seq, since+uint64(i)+1)
		}
	}
	if len(r.Events) != int(h.s.LastSeq()-since) {
		t.Errorf("%d events replayed, want %d", len(r.Events), h.s.LastSeq()-since)
	}
}

// TestRewatchLimits: only a gateway may rewatch, a request carries at
// most MaxRewatchSessions sessions, and a channel at its watcher limit
// refuses the rest with the watch's own error.
func TestRewatchLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxWatchers = 2 })
	h.create("alice", protocol.TypeStandard, nil) // alice's session watches
	h.fail(Caller{User: "bob"}, OpRewatch, RewatchArgs{Sessions: []RewatchSession{{Session: "s", User: "bob"}}}, protocol.CodeBadRequest)
	many := make([]RewatchSession, MaxRewatchSessions+1)
	for i := range many {
		many[i] = RewatchSession{Session: fmt.Sprint("s", i), User: "bob"}
	}
	h.fail(Caller{Gateway: "gw1"}, OpRewatch, RewatchArgs{Sessions: many}, protocol.CodeTooLarge)

	r, err := h.rewatch("gw1", h.s.LastSeq(),
		RewatchSession{Session: "s1", User: "bob"},
		RewatchSession{Session: "s2", User: "carol"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Accepted, []string{"s1"}) || len(r.Refused) != 1 || r.Refused[0].Session != "s2" ||
		r.Refused[0].Error.Code != protocol.CodeUnavailable {
		t.Errorf("at the limit: accepted %v refused %+v", r.Accepted, r.Refused)
	}
}
