package channel

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestJoinByType(t *testing.T) {
	tests := []struct {
		typ        string
		who        Caller
		code       protocol.Code // "" = joins
		membership string        // the record the join writes; "" = none
	}{
		{protocol.TypeStandard, caller("bob"), "", protocol.MembershipMember},
		{protocol.TypeCommunity, caller("bob"), "", protocol.MembershipMember},
		{protocol.TypeBroadcast, caller("bob"), "", protocol.MembershipViewer},
		{protocol.TypeLive, caller("bob"), "", ""},
		{protocol.TypePrivate, caller("bob"), protocol.CodeForbidden, ""},
		{protocol.TypeConversation, caller("bob"), protocol.CodeForbidden, ""},
		{protocol.TypePrivate, admin("root"), "", protocol.MembershipMember},
		{protocol.TypeConversation, admin("root"), "", protocol.MembershipMember},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"/"+tt.who.User, func(t *testing.T) {
			h := newHarness(t)
			h.create("alice", tt.typ, nil)
			h.send("alice", "c0", "first")
			if tt.code != "" {
				h.fail(tt.who, protocol.OpChannelJoin, `{"channel":"general"}`, tt.code)
				return
			}
			appended := h.log.Appended()
			eff := h.do(tt.who, protocol.OpChannelJoin, `{"channel":"general"}`)
			if eff.Err != nil {
				t.Fatal(eff.Err)
			}
			var r watchResult
			_ = json.Unmarshal(eff.Result, &r)
			if !eff.Watching || h.s.Watchers() != 2 {
				t.Errorf("watching=%v watchers=%d, want the session watching", eff.Watching, h.s.Watchers())
			}
			// A new member's join adds a system message (on the page);
			// viewers join silently.
			wantMsgs, wantEvents := 1, []string{protocol.EventMemberJoined}
			if tt.membership == protocol.MembershipMember {
				wantMsgs, wantEvents = 2, []string{protocol.EventMessageNew, protocol.EventMemberJoined}
			}
			if len(r.Messages) != wantMsgs || r.Seq != h.s.LastSeq() {
				t.Errorf("messages %d seq %d, want %d messages and seq %d", len(r.Messages), r.Seq, wantMsgs, h.s.LastSeq())
			}
			if tt.membership == "" {
				// A live viewer is ephemeral: nothing is written.
				if eff.Entry != nil || len(eff.Events) > 0 || len(eff.Notices) > 0 || h.log.Appended() != appended {
					t.Errorf("live join wrote: entry=%v events=%d notices=%v", eff.Entry != nil, len(eff.Events), eff.Notices)
				}
				if !noRecord(r.Member) || r.Channel.MemberCount != 1 {
					t.Errorf("live join: member %+v member_count %d", r.Member, r.Channel.MemberCount)
				}
			} else {
				if names := eventNames(t, eff); !slices.Equal(names, wantEvents) {
					t.Errorf("events %v, want %v", names, wantEvents)
				}
				if !slices.Equal(eff.Notices, []Notice{{tt.who.User, true, protocol.ReasonJoined}}) {
					t.Errorf("notices %v", eff.Notices)
				}
				if r.Member == nil || r.Member.Membership != tt.membership || r.Member.ReadSegment != uint64(wantMsgs) || r.Channel.MemberCount != 2 {
					t.Errorf("member %+v member_count %d, want %s reading up to %d", r.Member, r.Channel.MemberCount, tt.membership, wantMsgs)
				}
				if last := eff.Events[len(eff.Events)-1].Seq; r.Seq != last {
					t.Errorf("seq %d does not cover the join's own event %d", r.Seq, last)
				}
			}

			// Joining again is not an error and writes nothing.
			again := h.do(session(tt.who.User, "second", "gw2"), protocol.OpChannelJoin, `{"channel":"general"}`)
			if again.Err != nil || again.Entry != nil || len(again.Events) > 0 || !again.Watching {
				t.Fatalf("second join: err=%v entry=%v events=%d watching=%v", again.Err, again.Entry != nil, len(again.Events), again.Watching)
			}
			var r2 watchResult
			_ = json.Unmarshal(again.Result, &r2)
			if noRecord(r2.Member) != (tt.membership == "") || r2.Channel.MemberCount != r.Channel.MemberCount {
				t.Errorf("second join: member %+v member_count %d", r2.Member, r2.Channel.MemberCount)
			}
		})
	}
}

func TestWatchByType(t *testing.T) {
	tests := []struct {
		typ  string
		who  Caller
		code protocol.Code
	}{
		{protocol.TypeStandard, caller("carol"), ""},
		{protocol.TypeCommunity, caller("carol"), ""},
		{protocol.TypeLive, caller("carol"), ""},
		{protocol.TypeBroadcast, caller("carol"), ""},
		{protocol.TypePrivate, caller("carol"), protocol.CodeNotMember},
		{protocol.TypeConversation, caller("carol"), protocol.CodeNotMember},
		{protocol.TypePrivate, caller("bob"), ""},
		{protocol.TypeConversation, admin("root"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"/"+tt.who.User, func(t *testing.T) {
			h := newHarness(t)
			h.create("alice", tt.typ, map[string]any{"members": []string{"bob"}})
			if tt.code != "" {
				h.fail(tt.who, protocol.OpChannelWatch, `{"channel":"general"}`, tt.code)
				h.fail(tt.who, protocol.OpMessagesHistory, `{"channel":"general"}`, tt.code)
				return
			}
			eff := h.do(tt.who, protocol.OpChannelWatch, `{"channel":"general"}`)
			if eff.Err != nil || eff.Entry != nil || len(eff.Events) > 0 || !eff.Watching {
				t.Fatalf("watch: err=%v entry=%v events=%d watching=%v", eff.Err, eff.Entry != nil, len(eff.Events), eff.Watching)
			}
			if h.s.Watchers() != 2 {
				t.Errorf("watchers %d, want 2", h.s.Watchers())
			}
			// Watching twice from one session counts once.
			h.do(tt.who, protocol.OpChannelWatch, `{"channel":"general"}`)
			if h.s.Watchers() != 2 {
				t.Errorf("watchers %d after a second watch, want 2", h.s.Watchers())
			}
			un := h.do(tt.who, protocol.OpChannelUnwatch, `{"channel":"general"}`)
			if un.Err != nil || un.Entry != nil || !un.Unwatching || h.s.Watchers() != 1 {
				t.Errorf("unwatch: err=%v entry=%v unwatching=%v watchers=%d", un.Err, un.Entry != nil, un.Unwatching, h.s.Watchers())
			}
			// Membership is untouched by watching.
			g := ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelGet, `{"channel":"general"}`)
			if g.Channel.MemberCount != 2 {
				t.Errorf("member_count %d, want 2", g.Channel.MemberCount)
			}
		})
	}
}

func TestWatchLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxWatchers = 2 })
	h.create("alice", protocol.TypeStandard, nil)
	ok[watchResult](h, caller("bob"), protocol.OpChannelWatch, `{"channel":"general"}`)
	h.fail(caller("carol"), protocol.OpChannelWatch, `{"channel":"general"}`, protocol.CodeUnavailable)
	h.fail(caller("carol"), protocol.OpChannelJoin, `{"channel":"general"}`, protocol.CodeUnavailable)
	// A session already watching may watch again.
	ok[watchResult](h, caller("bob"), protocol.OpChannelWatch, `{"channel":"general"}`)
	h.s.DropSession("gw1", "bob-s1")
	ok[watchResult](h, caller("carol"), protocol.OpChannelJoin, `{"channel":"general"}`)
}

func TestLeave(t *testing.T) {
	tests := []struct {
		typ    string
		viewer bool // bob's join writes nothing
	}{
		{protocol.TypeStandard, false},
		{protocol.TypeCommunity, false},
		{protocol.TypeBroadcast, false},
		{protocol.TypeLive, true},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			h := newHarness(t)
			h.create("alice", tt.typ, nil)
			h.fail(caller("bob"), protocol.OpChannelLeave, `{"channel":"general"}`, protocol.CodeNotMember)
			h.join(caller("bob"), nil)
			h.join(session("bob", "bob-phone", "gw2"), nil)
			eff := h.do(caller("bob"), protocol.OpChannelLeave, `{"channel":"general"}`)
			if eff.Err != nil {
				t.Fatal(eff.Err)
			}
			stopped := 0
			for _, wc := range eff.Watch {
				stopped += len(wc.Sessions)
			}
			if stopped != 2 || !eff.Unwatching || h.s.Watchers() != 1 {
				t.Errorf("watch changes %+v unwatching=%v watchers=%d, want both of bob's sessions stopped", eff.Watch, eff.Unwatching, h.s.Watchers())
			}
			if tt.viewer {
				if eff.Entry != nil || len(eff.Events) > 0 || len(eff.Notices) > 0 {
					t.Errorf("live viewer leave wrote: entry=%v events=%d", eff.Entry != nil, len(eff.Events))
				}
			} else {
				// A member's leave adds a system message; a viewer's
				// does not.
				want := []string{protocol.EventMemberLeft, protocol.EventMessageNew}
				if tt.typ == protocol.TypeBroadcast {
					want = want[:1]
				}
				if names := eventNames(t, eff); !slices.Equal(names, want) {
					t.Errorf("events %v, want %v", names, want)
				}
				if !slices.Equal(eff.Notices, []Notice{{"bob", false, protocol.ReasonLeft}}) {
					t.Errorf("notices %v", eff.Notices)
				}
			}
			h.reload()
			g := ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelGet, `{"channel":"general"}`)
			if g.Channel.MemberCount != 1 {
				t.Errorf("member_count %d after leave, want 1", g.Channel.MemberCount)
			}
			h.fail(caller("bob"), protocol.OpChannelLeave, `{"channel":"general"}`, protocol.CodeNotMember)
			if tt.typ == protocol.TypeStandard || tt.typ == protocol.TypeCommunity {
				h.fail(caller("bob"), protocol.OpMessageSend, `{"channel":"general","client_id":"x","text":"hi"}`, protocol.CodeNotMember)
			}
			// He may come back.
			r := h.join(caller("bob"), nil)
			if noRecord(r.Member) != tt.viewer {
				t.Errorf("rejoin member %+v", r.Member)
			}
		})
	}
}

func TestLeavePrivateMember(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypePrivate, map[string]any{"members": []string{"bob"}})
	eff := h.do(caller("bob"), protocol.OpChannelLeave, `{"channel":"general"}`)
	if eff.Err != nil || eff.Entry == nil {
		t.Fatalf("leave: err=%v entry=%v", eff.Err, eff.Entry != nil)
	}
	// Once out of a private channel, only an invitation brings one back.
	h.fail(caller("bob"), protocol.OpChannelJoin, `{"channel":"general"}`, protocol.CodeForbidden)
	h.fail(caller("bob"), protocol.OpChannelWatch, `{"channel":"general"}`, protocol.CodeNotMember)
}

func TestSessionBookkeeping(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeLive, nil)
	h.join(caller("bob"), nil)
	h.join(session("bob", "b2", "gw2"), nil)
	h.join(session("carol", "c1", "gw2"), nil)
	if got := h.s.Watchers(); got != 4 {
		t.Fatalf("watchers %d, want 4", got)
	}
	gws := h.s.Gateways()
	slices.Sort(gws)
	if !slices.Equal(gws, []string{"gw1", "gw2"}) {
		t.Errorf("gateways %v", gws)
	}
	h.s.DropGateway("gw2")
	if got := h.s.Watchers(); got != 2 {
		t.Errorf("watchers %d after dropping gw2, want 2", got)
	}
	// Bob still watches from gw1, so he may still send as a live viewer;
	// carol, whose only session is gone, may not.
	h.send("bob", "b1", "hi")
	h.fail(caller("carol"), protocol.OpMessageSend, `{"channel":"general","client_id":"c","text":"x"}`, protocol.CodeNotMember)
	h.s.DropSession("gw1", "bob-s1")
	h.fail(caller("bob"), protocol.OpMessageSend, `{"channel":"general","client_id":"b2","text":"x"}`, protocol.CodeNotMember)
}
