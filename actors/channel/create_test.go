package channel

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestCreateEachType(t *testing.T) {
	tests := []struct {
		typ    string
		public bool
	}{
		{protocol.TypeStandard, true},
		{protocol.TypeCommunity, true},
		{protocol.TypeLive, true},
		{protocol.TypeBroadcast, true},
		{protocol.TypePrivate, false},
		{protocol.TypeConversation, false},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			h := newHarness(t)
			eff := h.do(caller("alice"), protocol.OpChannelCreate, map[string]any{"type": tt.typ, "name": "General"})
			if eff.Err != nil {
				t.Fatalf("create: %v", eff.Err)
			}
			if eff.Entry == nil || len(eff.Events) != 0 || !eff.Watching {
				t.Fatalf("create: entry=%v events=%d watching=%v, want an entry, no events, watching",
					eff.Entry != nil, len(eff.Events), eff.Watching)
			}
			if want := []Notice{{User: "alice", Member: true, Reason: protocol.ReasonCreated}}; !slices.Equal(eff.Notices, want) {
				t.Errorf("notices %v, want %v", eff.Notices, want)
			}
			var r createResult
			if err := json.Unmarshal(eff.Result, &r); err != nil {
				t.Fatal(err)
			}
			ch := r.Channel
			if ch.ID != channelID || ch.Type != tt.typ || ch.Name != "General" || ch.Public != tt.public {
				t.Errorf("channel %+v, want id %s type %s public %v", ch, channelID, tt.typ, tt.public)
			}
			if ch.MemberCount != 1 || ch.MessageCount != 0 || ch.LastSegment != 0 || ch.Deleted {
				t.Errorf("counters %+v", ch)
			}
			if !ch.CreatedAt.Equal(t0) || !ch.UpdatedAt.Equal(t0) || ch.CreatedBy != "alice" {
				t.Errorf("created_at %v updated_at %v by %q, want %v by alice", ch.CreatedAt, ch.UpdatedAt, ch.CreatedBy, t0)
			}
			if r.Member == nil || r.Member.User != "alice" || !slices.Equal(r.Member.Roles, []string{protocol.RoleOwner}) ||
				r.Member.Membership != protocol.MembershipMember {
				t.Errorf("member %+v, want alice as owner", r.Member)
			}
			if r.Seq != 0 || h.s.Watchers() != 1 {
				t.Errorf("seq %d watchers %d, want 0 and 1", r.Seq, h.s.Watchers())
			}
			// It survives a restart.
			h.reload()
			g := ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelGet, `{"channel":"general"}`)
			if g.Channel.Type != tt.typ || g.Channel.Public != tt.public || g.Member == nil || !slices.Contains(g.Member.Roles, protocol.RoleOwner) {
				t.Errorf("after reload: %+v member %+v", g.Channel, g.Member)
			}
		})
	}
}

func TestCreatePublicOverride(t *testing.T) {
	h := newHarness(t)
	r := h.create("alice", protocol.TypeStandard, map[string]any{"public": false, "tags": []string{"a", "b"}, "metadata": map[string]any{"k": 1}})
	if r.Channel.Public || !slices.Equal(r.Channel.Tags, []string{"a", "b"}) || string(r.Channel.Metadata) != `{"k":1}` {
		t.Errorf("channel %+v", r.Channel)
	}
}

func TestCreateListsMembers(t *testing.T) {
	h := newHarness(t)
	eff := h.do(caller("alice"), protocol.OpChannelCreate, map[string]any{
		"type": protocol.TypeConversation, "members": []string{"bob", "carol", "bob", "alice"},
	})
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	want := []Notice{{"alice", true, protocol.ReasonCreated}, {"bob", true, protocol.ReasonCreated}, {"carol", true, protocol.ReasonCreated}}
	if !slices.Equal(eff.Notices, want) {
		t.Errorf("notices %v, want %v", eff.Notices, want)
	}
	var r createResult
	_ = json.Unmarshal(eff.Result, &r)
	if r.Channel.MemberCount != 3 {
		t.Errorf("member_count %d, want 3", r.Channel.MemberCount)
	}
	h.reload()
	for _, u := range []string{"bob", "carol"} {
		g := ok[protocol.ChannelResult](h, caller(u), protocol.OpChannelGet, `{"channel":"general"}`)
		if g.Member == nil || !slices.Equal(g.Member.Roles, []string{protocol.RoleMember}) {
			t.Errorf("%s: member %+v, want role member", u, g.Member)
		}
	}
	h.fail(caller("dave"), protocol.OpChannelGet, `{"channel":"general"}`, protocol.CodeNotMember)
}

func TestCreateDistinct(t *testing.T) {
	h := newHarness(t)
	args := map[string]any{"type": protocol.TypeConversation, "distinct": true, "members": []string{"bob"}}
	first := ok[createResult](h, caller("alice"), protocol.OpChannelCreate, args)
	if !first.Channel.Distinct {
		t.Fatalf("distinct not set: %+v", first.Channel)
	}
	h.send("alice", "c1", "hello")

	// bob creates the same conversation: he gets the existing one, and
	// nothing is written.
	eff := h.do(caller("bob"), protocol.OpChannelCreate, map[string]any{"type": protocol.TypeConversation, "distinct": true, "members": []string{"alice"}})
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	if eff.Entry != nil || !eff.Watching {
		t.Errorf("existing distinct: entry=%v watching=%v, want no entry and watching", eff.Entry != nil, eff.Watching)
	}
	var again createResult
	_ = json.Unmarshal(eff.Result, &again)
	if again.Channel.CreatedAt != first.Channel.CreatedAt || again.Channel.LastSegment != 1 || again.Member == nil || again.Member.User != "bob" {
		t.Errorf("existing distinct: %+v member %+v", again.Channel, again.Member)
	}
	if again.Seq != h.s.LastSeq() {
		t.Errorf("seq %d, want %d", again.Seq, h.s.LastSeq())
	}

	// A stranger may not learn it by creating it.
	h.fail(caller("mallory"), protocol.OpChannelCreate, args, protocol.CodeForbidden)
	// A non-distinct create of the same id is refused.
	h.fail(caller("alice"), protocol.OpChannelCreate, map[string]any{"type": protocol.TypeConversation}, protocol.CodeInvalidState)
}

func TestCreateExisting(t *testing.T) {
	for _, typ := range []string{protocol.TypeStandard, protocol.TypePrivate, protocol.TypeLive} {
		t.Run(typ, func(t *testing.T) {
			h := newHarness(t)
			h.create("alice", typ, nil)
			h.fail(caller("alice"), protocol.OpChannelCreate, map[string]any{"type": typ}, protocol.CodeInvalidState)
			h.fail(caller("bob"), protocol.OpChannelCreate, map[string]any{"type": protocol.TypeStandard}, protocol.CodeInvalidState)
		})
	}
}

func TestCreateValidation(t *testing.T) {
	l := protocol.DefaultLimits()
	many := make([]string, l.MaxTags+1)
	for i := range many {
		many[i] = "t"
	}
	members := make([]string, l.MaxHistoryLimit+1)
	for i := range members {
		members[i] = "u" + strings.Repeat("x", i%5)
	}
	tests := []struct {
		name   string
		caller Caller
		args   any
		code   protocol.Code
	}{
		{"no type", caller("alice"), `{}`, protocol.CodeBadRequest},
		{"bad type", caller("alice"), `{"type":"lobby"}`, protocol.CodeBadRequest},
		{"args not an object", caller("alice"), `[]`, protocol.CodeBadRequest},
		{"type not a string", caller("alice"), `{"type":1}`, protocol.CodeBadRequest},
		{"distinct standard", caller("alice"), `{"type":"standard","distinct":true}`, protocol.CodeBadRequest},
		{"name too long", caller("alice"), map[string]any{"type": "standard", "name": strings.Repeat("n", l.MaxNameLen+1)}, protocol.CodeTooLong},
		{"description too long", caller("alice"), map[string]any{"type": "standard", "description": strings.Repeat("d", l.MaxTextLen+1)}, protocol.CodeTooLong},
		{"image too long", caller("alice"), map[string]any{"type": "standard", "image": strings.Repeat("i", l.MaxTextLen+1)}, protocol.CodeTooLong},
		{"metadata too large", caller("alice"), map[string]any{"type": "standard", "metadata": map[string]string{"k": strings.Repeat("v", l.MaxDataBytes)}}, protocol.CodeTooLarge},
		{"metadata not an object", caller("alice"), `{"type":"standard","metadata":[1]}`, protocol.CodeBadRequest},
		{"metadata a string", caller("alice"), `{"type":"standard","metadata":"x"}`, protocol.CodeBadRequest},
		{"too many tags", caller("alice"), map[string]any{"type": "standard", "tags": many}, protocol.CodeTooLarge},
		{"empty tag", caller("alice"), `{"type":"standard","tags":[""]}`, protocol.CodeBadRequest},
		{"tag too long", caller("alice"), map[string]any{"type": "standard", "tags": []string{strings.Repeat("t", l.MaxNameLen+1)}}, protocol.CodeTooLong},
		{"member with a space", caller("alice"), `{"type":"private","members":["b b"]}`, protocol.CodeBadRequest},
		{"empty member", caller("alice"), `{"type":"private","members":[""]}`, protocol.CodeBadRequest},
		{"member id too long", caller("alice"), map[string]any{"type": "private", "members": []string{strings.Repeat("b", l.MaxIDLen+1)}}, protocol.CodeTooLong},
		{"too many members", caller("alice"), map[string]any{"type": "private", "members": members}, protocol.CodeTooLarge},
		{"session without gateway", Caller{User: "alice", Session: "s1"}, `{"type":"standard"}`, protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.fail(tt.caller, protocol.OpChannelCreate, tt.args, tt.code)
			if h.s.Exists() || h.log.Appended() != 0 {
				t.Fatalf("refused create left exists=%v appended=%d", h.s.Exists(), h.log.Appended())
			}
		})
	}
}

func TestOpsBeforeCreate(t *testing.T) {
	ops := []string{
		protocol.OpChannelGet, protocol.OpChannelUpdate, protocol.OpChannelDelete, protocol.OpChannelJoin,
		protocol.OpChannelWatch, protocol.OpChannelLeave, protocol.OpMessageSend, protocol.OpMessageEdit,
		protocol.OpMessageDelete, protocol.OpMessagesHistory, OpSummary,
	}
	h := newHarness(t)
	for _, op := range ops {
		h.fail(caller("alice"), op, `{"channel":"general","client_id":"c","text":"x","message_id":"1-00"}`, protocol.CodeNotFound)
	}
	h.fail(caller("alice"), "channel.explode", `{}`, protocol.CodeBadRequest)
}
