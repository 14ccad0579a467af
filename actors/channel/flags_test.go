package channel

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

func flagCountOf(t *testing.T, msgs []protocol.Message, id string) *int64 {
	t.Helper()
	for _, m := range msgs {
		if m.ID == id {
			return m.FlagCount
		}
	}
	t.Fatalf("message %s not in page", id)
	return nil
}

func TestFlag(t *testing.T) {
	h := modChannel(t)
	h.setRoles("dave", protocol.RoleMember)
	m := h.mustSend(caller("bob"), "b1")
	flag := args("message_id", m.ID, "reason", "rude")

	h.fail(caller("bob"), protocol.OpMessageFlag, flag, protocol.CodeForbidden) // one's own
	h.fail(caller("carol"), protocol.OpMessageFlag, args("message_id", "99-x"), protocol.CodeNotFound)
	h.fail(caller("carol"), protocol.OpMessageFlag, args("message_id", m.ID, "reason", string(make([]byte, 201))), protocol.CodeTooLong)
	eff := h.do(caller("carol"), protocol.OpMessageFlag, flag)
	if eff.Err != nil || eff.Entry == nil || len(eff.Events) != 0 || string(eff.Result) != "{}" {
		t.Fatalf("flag: err=%v entry=%v events=%v result=%s", eff.Err, eff.Entry != nil, eventNames(t, eff), eff.Result)
	}
	// One flag per user per message: a repeat changes nothing.
	h.noop(caller("carol"), protocol.OpMessageFlag, flag)

	check := func(when string, want int64) {
		t.Helper()
		// Moderators see flag_count; members do not.
		for _, who := range []Caller{caller("alice"), caller("mod"), admin("root")} {
			n := flagCountOf(t, h.history(who, nil).Messages, m.ID)
			if n == nil || *n != want {
				t.Errorf("%s: %s sees flag_count %v, want %d", when, who.User, n, want)
			}
		}
		if n := flagCountOf(t, h.history(caller("carol"), nil).Messages, m.ID); n != nil {
			t.Errorf("%s: a member sees flag_count %d", when, *n)
		}
	}
	check("flagged", 1)
	h.reload()
	check("after restart", 1)
	h.noop(caller("carol"), protocol.OpMessageFlag, flag)
	ok[struct{}](h, caller("dave"), protocol.OpMessageFlag, flag)
	check("twice", 2)

	// Events are encoded once for everyone: they never carry the count.
	edit := h.do(caller("bob"), protocol.OpMessageEdit, args("message_id", m.ID, "text", "sorry"))
	var ev messageResult
	_ = json.Unmarshal(decodeFrame(t, edit.Events[0].Frame).Data, &ev)
	if ev.Message.FlagCount != nil {
		t.Errorf("message.updated carries flag_count %d", *ev.Message.FlagCount)
	}
	// A moderator's own reply carries it.
	var r messageResult
	_ = json.Unmarshal(h.do(caller("mod"), protocol.OpMessageEdit, args("message_id", h.mustSend(caller("mod"), "m1").ID, "text", "x")).Result, &r)
	if r.Message.FlagCount == nil || *r.Message.FlagCount != 0 {
		t.Errorf("moderator's reply flag_count %v, want 0", r.Message.FlagCount)
	}
}

func TestFlagRefusals(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypePrivate, map[string]any{"members": []string{"bob"}})
	m := h.send("alice", "a1", "hello")
	h.fail(caller("stranger"), protocol.OpMessageFlag, args("message_id", m.ID), protocol.CodeNotMember)
	ok[protocol.MembersResult](h, caller("alice"), protocol.OpMembersAdd, args("users", []string{"carol"}))
	sys := h.history(caller("bob"), nil).Messages
	h.fail(caller("bob"), protocol.OpMessageFlag, args("message_id", sys[len(sys)-1].ID), protocol.CodeForbidden)
	ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, args("message_id", m.ID))
	h.fail(caller("bob"), protocol.OpMessageFlag, args("message_id", m.ID), protocol.CodeInvalidState)
	ok[protocol.MemberResult](h, caller("alice"), protocol.OpMemberBan, args("user", "bob", "duration_min", 0))
	h.fail(caller("bob"), protocol.OpMessageFlag, args("message_id", m.ID), protocol.CodeBanned)
}

func TestFlagAutoDelete(t *testing.T) {
	h := modChannel(t)
	h.setRoles("dave", protocol.RoleMember)
	ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, args("auto_delete_flags", 2))
	m := h.mustSend(caller("bob"), "b1")
	count := h.channel().MessageCount
	h.manual = true // the second flag's deletion is served before it is durable
	ok[struct{}](h, caller("carol"), protocol.OpMessageFlag, args("message_id", m.ID))
	eff := h.do(caller("dave"), protocol.OpMessageFlag, args("message_id", m.ID))
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	if names := eventNames(t, eff); !slices.Equal(names, []string{protocol.EventMessageDeleted}) {
		t.Fatalf("events %v", names)
	}
	var ev struct {
		Message protocol.Message `json:"message"`
		Reason  string           `json:"reason"`
	}
	_ = json.Unmarshal(decodeFrame(t, eff.Events[0].Frame).Data, &ev)
	if !ev.Message.Deleted || ev.Message.Text != "" || ev.Reason != "auto_delete_flags" || ev.Message.FlagCount != nil {
		t.Errorf("message.deleted %+v", ev)
	}
	if n := flagCountOf(t, h.history(caller("mod"), nil).Messages, m.ID); n == nil || *n != 2 {
		t.Errorf("flag_count %v while pending", n)
	}
	h.commit()
	h.manual = false
	if c := h.channel().MessageCount; c != count-1 {
		t.Errorf("message_count %d, want %d", c, count-1)
	}
	h.fail(caller("mod"), protocol.OpMessageFlag, args("message_id", m.ID), protocol.CodeInvalidState)
}

// TestFlagCountsStayCurrent reads flag counts between flags, commits and
// a restart with caches of one record, so counts come from the window
// memo and the store: they must always be current, and a moderator's page
// costs one read of the counts, not one per message.
func TestFlagCountsStayCurrent(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MessageCache, c.MemberCache = 1, 1 })
	h.create("alice", protocol.TypeStandard, map[string]any{"members": []string{"bob"}})
	var ids []string
	for i := range 30 {
		ids = append(ids, h.send("bob", fmt.Sprint("b", i), "x").ID)
	}
	want := map[string]int64{}
	check := func(when string) {
		t.Helper()
		for _, m := range h.history(caller("alice"), map[string]any{"limit": 100}).Messages {
			if m.FlagCount == nil || *m.FlagCount != want[m.ID] {
				t.Fatalf("%s: %s flag_count %v, want %d", when, m.ID, m.FlagCount, want[m.ID])
			}
		}
	}
	check("none")
	for i, id := range []string{ids[3], ids[3], ids[20], ids[29]} {
		h.manual = i%2 == 0
		ok[struct{}](h, caller(fmt.Sprint("u", i)), protocol.OpMessageFlag, args("message_id", id))
		want[id]++
		check(fmt.Sprint("flag ", i))
		h.commit()
		check(fmt.Sprint("committed ", i))
	}
	h.manual = false
	h.reload()
	h.r.scans, h.r.gets = 0, 0
	check("reloaded")
	if h.r.scans+h.r.gets > 6 {
		t.Errorf("a moderator's page read %d scans and %d gets", h.r.scans, h.r.gets)
	}
	// The moderator's own sends reuse the window (the first builds the
	// idempotency filter, with a scan of its own table).
	h.r.scans, h.r.idemScans = 0, 0
	for i := range 5 {
		h.send("alice", fmt.Sprint("a", i), "y")
	}
	if h.r.scans-h.r.idemScans != 0 {
		t.Errorf("5 moderator sends read the store %d times", h.r.scans-h.r.idemScans)
	}
}
