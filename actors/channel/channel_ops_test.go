package channel

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// roles sets up a channel of type typ owned by alice, with bob a member,
// mod a moderator; carol is a stranger and root a global admin.
func roles(t *testing.T, typ string) *harness {
	t.Helper()
	h := newHarness(t)
	h.create("alice", typ, map[string]any{"members": []string{"bob"}})
	h.setRoles("mod", protocol.RoleModerator)
	return h
}

func TestGetPermissions(t *testing.T) {
	tests := []struct {
		typ    string
		caller Caller
		code   protocol.Code // "" = allowed
		member bool          // a member record comes back
	}{
		{protocol.TypeStandard, caller("alice"), "", true},
		{protocol.TypeStandard, caller("bob"), "", true},
		{protocol.TypeStandard, caller("mod"), "", true},
		{protocol.TypeStandard, caller("carol"), "", false},
		{protocol.TypeStandard, admin("root"), "", false},
		{protocol.TypePrivate, caller("alice"), "", true},
		{protocol.TypePrivate, caller("bob"), "", true},
		{protocol.TypePrivate, caller("carol"), protocol.CodeNotMember, false},
		{protocol.TypePrivate, admin("root"), "", false},
		{protocol.TypeConversation, caller("carol"), protocol.CodeNotMember, false},
		{protocol.TypeLive, caller("carol"), "", false},
		{protocol.TypeBroadcast, caller("carol"), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"/"+tt.caller.User, func(t *testing.T) {
			h := roles(t, tt.typ)
			if tt.code != "" {
				h.fail(tt.caller, protocol.OpChannelGet, `{"channel":"general"}`, tt.code)
				return
			}
			eff := h.do(tt.caller, protocol.OpChannelGet, `{"channel":"general"}`)
			if eff.Err != nil || eff.Entry != nil || len(eff.Events) > 0 {
				t.Fatalf("get: err=%v entry=%v events=%d", eff.Err, eff.Entry != nil, len(eff.Events))
			}
			var r protocol.ChannelResult
			_ = json.Unmarshal(eff.Result, &r)
			if r.Channel == nil || r.Channel.ID != channelID {
				t.Fatalf("channel %+v", r.Channel)
			}
			if (r.Member != nil) != tt.member {
				t.Errorf("member %+v, want present=%v", r.Member, tt.member)
			}
		})
	}
}

func TestUpdatePermissions(t *testing.T) {
	tests := []struct {
		caller Caller
		code   protocol.Code
	}{
		{caller("alice"), ""},
		{caller("mod"), ""},
		{admin("root"), ""},
		{caller("bob"), protocol.CodeForbidden},
		{caller("carol"), protocol.CodeForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.caller.User, func(t *testing.T) {
			h := roles(t, protocol.TypeStandard)
			h.tick(time.Minute)
			args := `{"channel":"general","name":"Lobby","slow_mode_ms":500,"rate_limit":{"count":5,"window_ms":1000}}`
			if tt.code != "" {
				h.fail(tt.caller, protocol.OpChannelUpdate, args, tt.code)
				return
			}
			eff := h.do(tt.caller, protocol.OpChannelUpdate, args)
			if eff.Err != nil {
				t.Fatal(eff.Err)
			}
			if names := eventNames(t, eff); len(names) != 1 || names[0] != protocol.EventChannelUpdated {
				t.Fatalf("events %v", names)
			}
			var ev struct {
				Channel protocol.Channel `json:"channel"`
				Actor   string           `json:"actor"`
			}
			_ = json.Unmarshal(decodeFrame(t, eff.Events[0].Frame).Data, &ev)
			if ev.Channel.Name != "Lobby" || ev.Actor != tt.caller.User {
				t.Errorf("event data %+v", ev)
			}
			h.reload()
			g := ok[protocol.ChannelResult](h, tt.caller, protocol.OpChannelGet, `{"channel":"general"}`)
			c := g.Channel
			if c.Name != "Lobby" || c.SlowModeMS != 500 || c.RateLimit == nil || *c.RateLimit != (protocol.RateLimit{Count: 5, WindowMS: 1000}) ||
				!c.UpdatedAt.Equal(t0.Add(time.Minute)) || !c.CreatedAt.Equal(t0) {
				t.Errorf("after update: %+v", c)
			}
		})
	}
}

func TestUpdateFieldsAndSeqs(t *testing.T) {
	h := roles(t, protocol.TypeStandard)
	steps := []string{
		`{"channel":"general","description":"about"}`,
		`{"channel":"general","tags":["x"],"public":false}`,
		`{"channel":"general","rate_limit":{"count":0,"window_ms":0},"metadata":{"a": 1}}`,
	}
	for i, args := range steps {
		eff := h.do(caller("alice"), protocol.OpChannelUpdate, args)
		if eff.Err != nil {
			t.Fatalf("step %d: %v", i, eff.Err)
		}
		if len(eff.Events) != 1 || eff.Events[0].Seq != uint64(i+1) {
			t.Fatalf("step %d: events %+v", i, eff.Events)
		}
	}
	c := ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelGet, `{"channel":"general"}`).Channel
	if c.Description != "about" || len(c.Tags) != 1 || c.Public || c.RateLimit != nil || string(c.Metadata) != `{"a":1}` {
		t.Errorf("channel %+v", c)
	}
	// An update to what is already there writes and announces nothing.
	h.tick(time.Second)
	for _, args := range []string{
		`{"channel":"general"}`,
		`{"channel":"general","description":"about","tags":["x"]}`,
		`{"channel":"general","metadata":{ "a" : 1 },"public":false}`,
	} {
		h.noop(caller("alice"), protocol.OpChannelUpdate, args)
	}
	if u := ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelGet, `{"channel":"general"}`).Channel.UpdatedAt; !u.Equal(c.UpdatedAt.Time) {
		t.Errorf("updated_at moved from %v to %v without a change", c.UpdatedAt, u)
	}
}

func TestUpdateValidation(t *testing.T) {
	l := protocol.DefaultLimits()
	tests := []struct {
		name string
		args any
		code protocol.Code
	}{
		{"name too long", map[string]any{"channel": channelID, "name": strings.Repeat("n", l.MaxNameLen+1)}, protocol.CodeTooLong},
		{"description too long", map[string]any{"channel": channelID, "description": strings.Repeat("n", l.MaxTextLen+1)}, protocol.CodeTooLong},
		{"metadata not object", `{"channel":"general","metadata":true}`, protocol.CodeBadRequest},
		{"metadata too large", map[string]any{"channel": channelID, "metadata": map[string]string{"k": strings.Repeat("v", l.MaxDataBytes)}}, protocol.CodeTooLarge},
		{"empty tag", `{"channel":"general","tags":[""]}`, protocol.CodeBadRequest},
		{"rate limit count only", `{"channel":"general","rate_limit":{"count":3}}`, protocol.CodeBadRequest},
		{"rate limit negative", `{"channel":"general","rate_limit":{"count":-1,"window_ms":-1}}`, protocol.CodeBadRequest},
		{"slow mode negative", `{"channel":"general","slow_mode_ms":-1}`, protocol.CodeBadRequest},
		{"auto delete negative", `{"channel":"general","auto_delete_flags":-1}`, protocol.CodeBadRequest},
		{"wrong type", `{"channel":"general","name":7}`, protocol.CodeBadRequest},
		// A valid field next to an invalid one changes nothing either.
		{"partly valid", map[string]any{"channel": channelID, "name": "ok", "slow_mode_ms": -5}, protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := roles(t, protocol.TypeStandard)
			h.fail(caller("alice"), protocol.OpChannelUpdate, tt.args, tt.code)
		})
	}
}

func TestDeletePermissions(t *testing.T) {
	tests := []struct {
		caller Caller
		code   protocol.Code
	}{
		{caller("bob"), protocol.CodeForbidden},
		{caller("mod"), protocol.CodeForbidden},
		{caller("carol"), protocol.CodeForbidden},
		{caller("alice"), ""},
		{admin("root"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.caller.User, func(t *testing.T) {
			h := roles(t, protocol.TypeStandard)
			if tt.code != "" {
				h.fail(tt.caller, protocol.OpChannelDelete, `{"channel":"general"}`, tt.code)
				return
			}
			// setRoles restarted the State: everyone watches again.
			h.join(caller("alice"), nil)
			h.join(caller("bob"), nil)
			h.join(session("bob", "bob-s2", "gw2"), nil)
			h.send("bob", "c1", "hi")
			eff := h.do(tt.caller, protocol.OpChannelDelete, `{"channel":"general"}`)
			if eff.Err != nil {
				t.Fatal(eff.Err)
			}
			if names := eventNames(t, eff); len(names) != 1 || names[0] != protocol.EventChannelDeleted {
				t.Fatalf("events %v", names)
			}
			if eff.Events[0].Seq != 2 { // after message.new; joins by members write nothing
				t.Errorf("channel.deleted seq %d, want 2", eff.Events[0].Seq)
			}
			stopped := 0
			for _, wc := range eff.Watch {
				stopped += len(wc.Sessions)
			}
			if stopped != 3 || !eff.Unwatching || h.s.Watchers() != 0 {
				t.Errorf("watch changes %+v unwatching=%v watchers=%d, want the 3 sessions stopped", eff.Watch, eff.Unwatching, h.s.Watchers())
			}
			var r protocol.ChannelResult
			_ = json.Unmarshal(eff.Result, &r)
			if !r.Channel.Deleted {
				t.Errorf("result %+v, want deleted", r.Channel)
			}
		})
	}
}

// TestDeletedChannelIsGone checks that after a soft delete every op on the
// channel answers not_found, for its owner, its members and admins alike,
// and writes nothing, before and after a restart.
func TestDeletedChannelIsGone(t *testing.T) {
	h := roles(t, protocol.TypeStandard)
	msg := h.send("alice", "c1", "hello")
	ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelDelete, `{"channel":"general"}`)
	ops := []struct {
		op   string
		args any
	}{
		{protocol.OpChannelGet, `{"channel":"general"}`},
		{protocol.OpChannelUpdate, `{"channel":"general","name":"x"}`},
		{protocol.OpChannelDelete, `{"channel":"general"}`},
		{protocol.OpChannelJoin, `{"channel":"general"}`},
		{protocol.OpChannelWatch, `{"channel":"general","since_seq":0}`},
		{protocol.OpChannelLeave, `{"channel":"general"}`},
		{protocol.OpMessageSend, `{"channel":"general","client_id":"c2","text":"x"}`},
		{protocol.OpMessageSend, `{"channel":"general","client_id":"c1","text":"hello"}`},
		{protocol.OpMessageEdit, map[string]any{"channel": channelID, "message_id": msg.ID, "text": "y"}},
		{protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": msg.ID}},
		{protocol.OpMessagesHistory, `{"channel":"general"}`},
		{OpSummary, nil},
	}
	for round := 0; round < 2; round++ {
		for _, c := range []Caller{caller("alice"), caller("bob"), caller("carol"), admin("root")} {
			for _, o := range ops {
				h.fail(c, o.op, o.args, protocol.CodeNotFound)
			}
			h.fail(c, protocol.OpChannelCreate, `{"type":"standard"}`, protocol.CodeInvalidState)
			// Unwatching is always possible and changes nothing durable.
			if eff := h.do(c, protocol.OpChannelUnwatch, `{"channel":"general"}`); eff.Err != nil || eff.Entry != nil {
				t.Fatalf("unwatch: err=%v entry=%v", eff.Err, eff.Entry != nil)
			}
		}
		h.reload()
	}
}

func TestSummary(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, map[string]any{"members": []string{"bob"}})
	h.send("alice", "a", "one")
	h.send("alice", "b", "two")
	ch := ok[protocol.Channel](h, caller("bob"), OpSummary, nil)
	if ch.Member == nil || ch.UnreadCount == nil || *ch.UnreadCount != 2 || ch.Mentioned == nil || *ch.Mentioned ||
		ch.LastMessage == nil || ch.LastMessage.Segment != 2 {
		t.Errorf("summary %+v", ch)
	}
	h.fail(caller("carol"), OpSummary, nil, protocol.CodeNotMember)
}

func TestLoadCorruptMeta(t *testing.T) {
	h := newHarness(t)
	e := &persistence.Entry{}
	e.Put(persistence.TableMeta, nil, []byte("{not json"))
	h.apply(e)
	if _, err := Load(channelID, h.log, h.cfg); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Load of a corrupt meta record: %v, want ErrCorrupt", err)
	}
}
