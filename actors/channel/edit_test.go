package channel

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestEdit(t *testing.T) {
	for _, restart := range []bool{false, true} {
		h := newHarness(t, func(c *Config) { c.MessageCache = 1 })
		h.create("alice", protocol.TypeStandard, nil)
		m := ok[messageResult](h, caller("alice"), protocol.OpMessageSend,
			`{"channel":"general","client_id":"c","text":"hello","data":{"a":1},"metadata":{"m":1}}`).Message
		h.send("alice", "c2", "push the first one out of the cache")
		if restart {
			h.reload()
		}
		h.tick(time.Minute)
		eff := h.do(caller("alice"), protocol.OpMessageEdit, map[string]any{"channel": channelID, "message_id": m.ID, "text": "hello, world"})
		if eff.Err != nil {
			t.Fatal(eff.Err)
		}
		var r messageResult
		_ = json.Unmarshal(eff.Result, &r)
		e := r.Message
		if e.ID != m.ID || e.Segment != m.Segment || e.Text != "hello, world" || string(e.Data) != `{"a":1}` ||
			!e.EditedAt.Equal(t0.Add(time.Minute)) || !e.CreatedAt.Equal(m.CreatedAt.Time) {
			t.Errorf("restart=%v: edited %+v", restart, e)
		}
		if names := eventNames(t, eff); len(names) != 1 || names[0] != protocol.EventMessageUpdated {
			t.Fatalf("events %v", names)
		}
		var ev messageResult
		_ = json.Unmarshal(decodeFrame(t, eff.Events[0].Frame).Data, &ev)
		if ev.Message.Text != "hello, world" || ev.Message.Segment != m.Segment {
			t.Errorf("event message %+v", ev.Message)
		}
		// Data and metadata alone; null clears.
		e = ok[messageResult](h, caller("alice"), protocol.OpMessageEdit, `{"channel":"general","message_id":"`+m.ID+`","data":null,"metadata":{"m":2}}`).Message
		if e.Data != nil || string(e.Metadata) != `{"m":2}` || e.Text != "hello, world" {
			t.Errorf("second edit %+v", e)
		}
		h.reload()
		hist := h.history(caller("alice"), nil)
		if got := hist.Messages[0]; got.Text != "hello, world" || got.EditedAt.IsZero() || hist.Messages[1].Segment != 2 {
			t.Errorf("after reload: %+v", hist.Messages)
		}
		g := ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelGet, `{"channel":"general"}`)
		if g.Channel.LastSegment != 2 || g.Channel.MessageCount != 2 {
			t.Errorf("edits moved counters: %+v", g.Channel)
		}
	}
}

func TestEditRefused(t *testing.T) {
	l := protocol.DefaultLimits()
	h := roles(t, protocol.TypeStandard)
	m := h.send("alice", "c", "hello")
	gone := h.send("alice", "d", "bye")
	ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": gone.ID})
	edit := func(id string, extra string) string {
		return `{"channel":"general","message_id":"` + id + `"` + extra + `}`
	}
	tests := []struct {
		name string
		who  Caller
		args string
		code protocol.Code
	}{
		{"another member", caller("bob"), edit(m.ID, `,"text":"x"`), protocol.CodeForbidden},
		{"a moderator", caller("mod"), edit(m.ID, `,"text":"x"`), protocol.CodeForbidden},
		{"an admin", admin("root"), edit(m.ID, `,"text":"x"`), protocol.CodeForbidden},
		{"deleted", caller("alice"), edit(gone.ID, `,"text":"x"`), protocol.CodeInvalidState},
		{"nothing to change", caller("alice"), edit(m.ID, ``), protocol.CodeBadRequest},
		{"emptied", caller("alice"), edit(m.ID, `,"text":""`), protocol.CodeBadRequest},
		{"text too long", caller("alice"), edit(m.ID, `,"text":"`+strings.Repeat("x", l.MaxTextLen+1)+`"`), protocol.CodeTooLong},
		{"data not an object", caller("alice"), edit(m.ID, `,"data":[1]`), protocol.CodeBadRequest},
		{"data too large", caller("alice"), edit(m.ID, `,"data":{"k":"`+strings.Repeat("x", l.MaxDataBytes)+`"}`), protocol.CodeTooLarge},
		{"unknown segment", caller("alice"), edit("9-0000000000000000", `,"text":"x"`), protocol.CodeNotFound},
		{"wrong hash", caller("alice"), edit("1-0000000000000000", `,"text":"x"`), protocol.CodeNotFound},
		{"segment zero", caller("alice"), edit("0-00", `,"text":"x"`), protocol.CodeNotFound},
		{"not an id", caller("alice"), edit("hello", `,"text":"x"`), protocol.CodeNotFound},
		{"no id", caller("alice"), `{"channel":"general","text":"x"}`, protocol.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.fail(tt.who, protocol.OpMessageEdit, tt.args, tt.code)
		})
	}
}

// TestSystemMessageDelete: a system message names its subject as user,
// but the subject did not write it: only moderators delete one.
func TestSystemMessageDelete(t *testing.T) {
	h := roles(t, protocol.TypeStandard)
	h.join(caller("carol"), nil) // "carol joined", with user carol
	var sys *protocol.Message
	for _, m := range h.history(caller("alice"), nil).Messages {
		if m.Type == protocol.MessageSystem && m.User == "carol" {
			sys = &m
		}
	}
	if sys == nil {
		t.Fatal("no system message about carol's join")
	}
	ref := args("message_id", sys.ID)
	h.fail(caller("carol"), protocol.OpMessageDelete, ref, protocol.CodeForbidden)
	ok[messageResult](h, caller("mod"), protocol.OpMessageDelete, ref)
}

func TestMessageDelete(t *testing.T) {
	tests := []struct {
		who  Caller
		code protocol.Code
	}{
		{caller("bob"), ""}, // the author
		{caller("alice"), ""},
		{caller("mod"), ""},
		{admin("root"), ""},
		{caller("dave"), protocol.CodeForbidden},  // another member
		{caller("carol"), protocol.CodeForbidden}, // a stranger
	}
	for _, tt := range tests {
		t.Run(tt.who.User, func(t *testing.T) {
			h := roles(t, protocol.TypeStandard)
			h.setRoles("dave", protocol.RoleMember) // a member (no join message)
			m := ok[messageResult](h, caller("bob"), protocol.OpMessageSend,
				`{"channel":"general","client_id":"c","text":"secret","data":{"a":1},"metadata":{"b":2}}`).Message
			h.send("bob", "c2", "another")
			args := map[string]any{"channel": channelID, "message_id": m.ID}
			if tt.code != "" {
				h.fail(tt.who, protocol.OpMessageDelete, args, tt.code)
				return
			}
			h.tick(time.Second)
			eff := h.do(tt.who, protocol.OpMessageDelete, args)
			if eff.Err != nil {
				t.Fatal(eff.Err)
			}
			var r messageResult
			_ = json.Unmarshal(eff.Result, &r)
			d := r.Message
			if !d.Deleted || d.Text != "" || d.Data != nil || d.Metadata != nil || d.Segment != m.Segment || d.ID != m.ID || d.User != "bob" {
				t.Errorf("deleted message %+v", d)
			}
			if names := eventNames(t, eff); len(names) != 1 || names[0] != protocol.EventMessageDeleted {
				t.Fatalf("events %v", names)
			}
			var ev struct {
				Message protocol.Message `json:"message"`
				Actor   string           `json:"actor"`
			}
			_ = json.Unmarshal(decodeFrame(t, eff.Events[0].Frame).Data, &ev)
			if !ev.Message.Deleted || ev.Message.Text != "" || ev.Actor != tt.who.User {
				t.Errorf("event %+v", ev)
			}
			h.fail(tt.who, protocol.OpMessageDelete, args, protocol.CodeInvalidState)
			h.reload()
			h.fail(tt.who, protocol.OpMessageDelete, args, protocol.CodeInvalidState)
			g := ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelGet, `{"channel":"general"}`)
			if g.Channel.MessageCount != 1 || g.Channel.LastSegment != 2 {
				t.Errorf("counters after delete: count %d last %d, want 1 and 2", g.Channel.MessageCount, g.Channel.LastSegment)
			}
			// The deleted message keeps its place in history.
			hist := h.history(caller("alice"), nil)
			if len(hist.Messages) != 2 || !hist.Messages[0].Deleted || hist.Messages[0].Text != "" {
				t.Errorf("history %+v", hist.Messages)
			}
		})
	}
}
