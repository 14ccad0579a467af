package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/protocol"
)

// End-to-end tests of membership, join tokens and moderation over real
// WebSockets against an in-process node.

func TestJoinTokensEndToEnd(t *testing.T) {
	n := authNode(t)
	alice := dialAs(t, n, "alice", false)
	bob := dialAs(t, n, "bob", false)
	carol := dialAs(t, n, "carol", false)
	expect(t, alice, protocol.OpChannelCreate, map[string]any{"id": "priv", "type": "private", "members": []string{"carol"}}, "")

	// Without a token or an invitation a private channel is closed.
	expect(t, bob, protocol.OpChannelJoin, a("priv"), protocol.CodeForbidden)

	// Minted by `switchboard token`; the channel comes from the token.
	expect(t, bob, protocol.OpChannelJoin, map[string]any{"token": mintJoin(t, "bob", "priv", "read")}, "")
	expect(t, bob, protocol.OpMessageSend, a("priv", "client_id", "b1", "text", "hi"), protocol.CodeForbidden) // read only
	res := expect(t, bob, protocol.OpChannelJoin, map[string]any{"channel": "priv", "token": mintJoin(t, "bob", "priv", "read,write")}, "")
	var jr protocol.WatchResult
	if err := json.Unmarshal(res, &jr); err != nil || jr.Member == nil || jr.Member.Membership != protocol.MembershipMember {
		t.Fatalf("write token join: %s", res)
	}
	expect(t, bob, protocol.OpMessageSend, a("priv", "client_id", "b1", "text", "hi"), "")

	// A moderate token moderates, in this session only.
	expect(t, carol, protocol.OpMemberKick, a("priv", "user", "bob"), protocol.CodeForbidden)
	dave := dialAs(t, n, "dave", false)
	expect(t, dave, protocol.OpChannelJoin, map[string]any{"token": mintJoin(t, "dave", "priv", "moderate")}, "")
	expect(t, dave, protocol.OpMemberMute, a("priv", "user", "carol", "duration_min", 1), "")
	dave2 := dialAs(t, n, "dave", false)
	expect(t, dave2, protocol.OpMemberUnmute, a("priv", "user", "carol"), protocol.CodeForbidden)

	// Refusals.
	other := auth.NewSigner("another-secret")
	forged, _ := other.JoinToken(auth.Join{User: "bob", Channel: "priv", Perms: []string{"write"}}, time.Minute)
	expired, _ := auth.NewSigner(testSecret).JoinToken(auth.Join{User: "bob", Channel: "priv", Perms: []string{"write"}}, -time.Minute)
	unknownPerm, _ := auth.NewSigner(testSecret).JoinToken(auth.Join{User: "bob", Channel: "priv", Perms: []string{"root"}}, time.Minute)
	for name, tc := range map[string]struct {
		args map[string]any
		code protocol.Code
	}{
		"garbage":        {map[string]any{"token": "not.a.jwt"}, protocol.CodeTokenInvalid},
		"forged":         {map[string]any{"token": forged}, protocol.CodeTokenInvalid},
		"expired":        {map[string]any{"token": expired}, protocol.CodeTokenExpired},
		"another user":   {map[string]any{"token": mintJoin(t, "carol", "priv", "write")}, protocol.CodeTokenInvalid},
		"other channel":  {map[string]any{"channel": "elsewhere", "token": mintJoin(t, "bob", "priv", "write")}, protocol.CodeTokenInvalid},
		"unknown perm":   {map[string]any{"token": unknownPerm}, protocol.CodeTokenInvalid},
		"missing target": {map[string]any{}, protocol.CodeBadRequest},
	} {
		t.Run(name, func(t *testing.T) { expect(t, bob, protocol.OpChannelJoin, tc.args, tc.code) })
	}

	// A banned user's token does not let them in.
	expect(t, alice, protocol.OpMemberBan, a("priv", "user", "bob", "duration_min", 0), "")
	expect(t, bob, protocol.OpChannelJoin, map[string]any{"token": mintJoin(t, "bob", "priv", "write")}, protocol.CodeBanned)
}

func TestMembershipOpsEndToEnd(t *testing.T) {
	n := testNode(t)
	alice := dial(t, n, "alice")
	bob := dial(t, n, "bob")
	carol := dial(t, n, "carol")
	expect(t, alice, protocol.OpChannelCreate, map[string]any{"id": "team", "type": "private"}, "")

	// members.add
	expect(t, bob, protocol.OpMembersAdd, a("team", "users", []string{"carol"}), protocol.CodeForbidden)
	expect(t, alice, protocol.OpMembersAdd, a("team", "users", []string{}), protocol.CodeBadRequest)
	expect(t, alice, protocol.OpMembersAdd, a("team", "users", []string{"bob"}), "")
	expect(t, alice, protocol.OpMembersAdd, a("team", "users", []string{"bob"}), protocol.CodeAlreadyMember)
	expect(t, alice, protocol.OpMembersAdd, a("nope", "users", []string{"bob"}), protocol.CodeNotFound)
	expect(t, bob, protocol.OpChannelJoin, a("team"), "")

	// members.invite, accepted by channel.join; the invitee sees the
	// channel in channels.list.
	expect(t, bob, protocol.OpMembersInvite, a("team", "users", []string{"carol"}), protocol.CodeForbidden)
	expect(t, alice, protocol.OpMembersInvite, a("team", "users", []string{"bob"}), protocol.CodeAlreadyMember)
	expect(t, alice, protocol.OpMembersInvite, a("team", "users", []string{"carol"}), "")
	waitFor(t, 5*time.Second, "the invitation in carol's channels.list", func() bool {
		var l protocol.ChannelsListResult
		if err := carol.Call(ctxT(t), protocol.OpChannelsList, map[string]any{}, &l); err != nil {
			t.Fatal(err)
		}
		return len(l.Channels) == 1 && l.Channels[0].Member != nil && l.Channels[0].Member.Membership == protocol.MembershipInvited
	})
	expect(t, carol, protocol.OpMessagesHistory, a("team"), protocol.CodeNotMember)
	expect(t, carol, protocol.OpChannelJoin, a("team"), "")
	if _, m := nextMessage(t, bob); m.System == nil || m.System.Kind != protocol.SystemMemberJoined || m.System.User != "carol" {
		t.Fatalf("bob saw %+v, want carol's join", m)
	}

	// members.list, paged.
	var got []string
	cursor := ""
	for {
		var l protocol.MembersListResult
		if err := bob.Call(ctxT(t), protocol.OpMembersList, a("team", "limit", 2, "cursor", cursor), &l); err != nil {
			t.Fatal(err)
		}
		for _, m := range l.Members {
			got = append(got, m.User)
		}
		if l.Cursor == "" {
			break
		}
		cursor = l.Cursor
	}
	if !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("members.list %v", got)
	}
	expect(t, dial(t, n, "stranger"), protocol.OpMembersList, a("team"), protocol.CodeNotMember)
	expect(t, bob, protocol.OpMembersList, a("team", "limit", 1000), protocol.CodeBadRequest)

	// member.roles
	expect(t, bob, protocol.OpMemberRoles, a("team", "user", "carol", "roles", []string{"moderator"}), protocol.CodeForbidden)
	expect(t, alice, protocol.OpMemberRoles, a("team", "user", "carol", "roles", []string{"boss"}), protocol.CodeBadRequest)
	expect(t, alice, protocol.OpMemberRoles, a("team", "user", "zed", "roles", []string{"member"}), protocol.CodeNotMember)
	expect(t, alice, protocol.OpMemberRoles, a("team", "user", "carol", "roles", []string{"moderator", "member"}), "")
	e := nextEvent(t, bob, protocol.EventMemberUpdated)
	var ev struct {
		User   string          `json:"user"`
		Member protocol.Member `json:"member"`
	}
	if json.Unmarshal(e.Data, &ev) != nil || ev.User != "carol" || !slices.Contains(ev.Member.Roles, protocol.RoleModerator) {
		t.Fatalf("member.updated %s", e.Data)
	}

	// members.remove (by the new moderator): bob's session stops.
	expect(t, carol, protocol.OpMembersRemove, a("team", "users", []string{"alice"}), protocol.CodeForbidden)
	expect(t, carol, protocol.OpMembersRemove, a("team", "users", []string{"zed"}), protocol.CodeNotMember)
	expect(t, carol, protocol.OpMembersRemove, a("team", "users", []string{"bob"}), "")
	expect(t, bob, protocol.OpMessagesHistory, a("team"), protocol.CodeNotMember)
	expect(t, bob, protocol.OpChannelJoin, a("team"), protocol.CodeForbidden)

	// member_count through channel.get.
	var g protocol.ChannelResult
	if err := alice.Call(ctxT(t), protocol.OpChannelGet, a("team"), &g); err != nil || g.Channel.MemberCount != 2 {
		t.Fatalf("channel.get %+v %v", g.Channel, err)
	}
}

func TestModerationOpsEndToEnd(t *testing.T) {
	n := testNode(t)
	alice := dial(t, n, "alice")
	bob := dial(t, n, "bob")
	carol := dial(t, n, "carol")
	expect(t, alice, protocol.OpChannelCreate, map[string]any{"id": "room", "type": "standard"}, "")
	expect(t, bob, protocol.OpChannelJoin, a("room"), "")
	expect(t, carol, protocol.OpChannelJoin, a("room"), "")

	// member.mute / member.unmute; channel.get shows the caller's record.
	expect(t, bob, protocol.OpMemberMute, a("room", "user", "carol", "duration_min", 5), protocol.CodeForbidden)
	expect(t, alice, protocol.OpMemberMute, a("room", "user", "carol"), protocol.CodeBadRequest)
	expect(t, alice, protocol.OpMemberMute, a("room", "user", "alice", "duration_min", 5), protocol.CodeForbidden)
	expect(t, alice, protocol.OpMemberMute, a("room", "user", "carol", "duration_min", 5, "reason", "shouting"), "")
	var g protocol.ChannelResult
	if err := carol.Call(ctxT(t), protocol.OpChannelGet, a("room"), &g); err != nil || g.Member == nil ||
		g.Member.MutedUntil.IsZero() || g.Member.MuteReason != "shouting" || !slices.Equal(g.Member.Roles, []string{"member"}) {
		t.Fatalf("carol's record %+v %v", g.Member, err)
	}
	err := carol.Call(ctxT(t), protocol.OpMessageSend, a("room", "client_id", "c1", "text", "x"), nil)
	if e, ok := err.(*protocol.Error); !ok || e.Code != protocol.CodeMuted || e.RetryAfterMS <= 0 {
		t.Fatalf("muted send: %v", err)
	}
	expect(t, bob, protocol.OpMemberUnmute, a("room", "user", "carol"), protocol.CodeForbidden)
	expect(t, alice, protocol.OpMemberUnmute, a("room", "user", "carol"), "")
	expect(t, carol, protocol.OpMessageSend, a("room", "client_id", "c1", "text", "x"), "")

	// channel.mute / channel.unmute
	expect(t, bob, protocol.OpChannelMute, a("room", "duration_min", 0), protocol.CodeForbidden)
	expect(t, alice, protocol.OpChannelMute, a("room", "duration_min", 0), "")
	expect(t, bob, protocol.OpMessageSend, a("room", "client_id", "b1", "text", "x"), protocol.CodeChannelMuted)
	expect(t, alice, protocol.OpMessageSend, a("room", "client_id", "a1", "text", "x"), "")
	expect(t, bob, protocol.OpChannelUnmute, a("room"), protocol.CodeForbidden)
	expect(t, alice, protocol.OpChannelUnmute, a("room"), "")
	expect(t, bob, protocol.OpMessageSend, a("room", "client_id", "b1", "text", "x"), "")

	// Rate limit and slow mode, set through channel.update.
	expect(t, bob, protocol.OpChannelUpdate, a("room", "slow_mode_ms", 60000), protocol.CodeForbidden)
	expect(t, alice, protocol.OpChannelUpdate, a("room", "slow_mode_ms", 60000), "")
	err = bob.Call(ctxT(t), protocol.OpMessageSend, a("room", "client_id", "b2", "text", "x"), nil)
	if e, ok := err.(*protocol.Error); !ok || e.Code != protocol.CodeRateLimited || e.RetryAfterMS <= 0 {
		t.Fatalf("slow mode send: %v", err)
	}
	expect(t, alice, protocol.OpChannelUpdate, a("room", "slow_mode_ms", 0, "rate_limit", map[string]any{"count": 1, "window_ms": 60000}), "")
	expect(t, carol, protocol.OpMessageSend, a("room", "client_id", "c2", "text", "x"), "")
	err = bob.Call(ctxT(t), protocol.OpMessageSend, a("room", "client_id", "b2", "text", "x"), nil)
	if e, ok := err.(*protocol.Error); !ok || e.Code != protocol.CodeRateLimited || e.RetryAfterMS <= 0 {
		t.Fatalf("rate limited send: %v", err)
	}
	expect(t, alice, protocol.OpMessageSend, a("room", "client_id", "a2", "text", "moderators are exempt"), "")
	expect(t, alice, protocol.OpChannelUpdate, a("room", "rate_limit", map[string]any{"count": 0, "window_ms": 0}), "")

	// message.flag: once per user; moderators see flag_count; auto-delete.
	var m protocol.MessageResult
	if err := bob.Call(ctxT(t), protocol.OpMessageSend, a("room", "client_id", "b3", "text", "spam"), &m); err != nil {
		t.Fatal(err)
	}
	expect(t, bob, protocol.OpMessageFlag, a("room", "message_id", m.Message.ID), protocol.CodeForbidden)
	expect(t, carol, protocol.OpMessageFlag, a("room", "message_id", "1-00"), protocol.CodeNotFound)
	expect(t, carol, protocol.OpMessageFlag, a("room", "message_id", m.Message.ID, "reason", "spam"), "")
	expect(t, carol, protocol.OpMessageFlag, a("room", "message_id", m.Message.ID), "")
	var h protocol.HistoryResult
	if err := alice.Call(ctxT(t), protocol.OpMessagesHistory, a("room"), &h); err != nil {
		t.Fatal(err)
	}
	if last := h.Messages[len(h.Messages)-1]; last.FlagCount == nil || *last.FlagCount != 1 {
		t.Fatalf("moderator's history: flag_count %v", last.FlagCount)
	}
	var hm protocol.HistoryResult
	if err := carol.Call(ctxT(t), protocol.OpMessagesHistory, a("room"), &hm); err != nil || hm.Messages[len(hm.Messages)-1].FlagCount != nil {
		t.Fatalf("member's history shows flag_count: %v", err)
	}
	expect(t, alice, protocol.OpChannelUpdate, a("room", "auto_delete_flags", 2), "")
	dave := dial(t, n, "dave")
	expect(t, dave, protocol.OpChannelJoin, a("room"), "")
	expect(t, dave, protocol.OpMessageFlag, a("room", "message_id", m.Message.ID), "")
	e := nextEvent(t, carol, protocol.EventMessageDeleted)
	var del protocol.MessageResult
	if json.Unmarshal(e.Data, &del) != nil || del.Message.ID != m.Message.ID || !del.Message.Deleted {
		t.Fatalf("message.deleted %s", e.Data)
	}

	// Deleting: members their own, moderators anyone's.
	var m2 protocol.MessageResult
	if err := carol.Call(ctxT(t), protocol.OpMessageSend, a("room", "client_id", "c3", "text", "mine"), &m2); err != nil {
		t.Fatal(err)
	}
	expect(t, bob, protocol.OpMessageDelete, a("room", "message_id", m2.Message.ID), protocol.CodeForbidden)
	expect(t, alice, protocol.OpMessageDelete, a("room", "message_id", m2.Message.ID), "")
	expect(t, bob, protocol.OpMessageFlag, a("room", "message_id", m2.Message.ID), protocol.CodeInvalidState)

	// member.ban / member.unban / member.kick error codes.
	expect(t, bob, protocol.OpMemberBan, a("room", "user", "carol", "duration_min", 1), protocol.CodeForbidden)
	expect(t, alice, protocol.OpMemberBan, a("room", "user", "carol", "duration_min", -1), protocol.CodeBadRequest)
	expect(t, alice, protocol.OpMemberKick, a("room", "user", "nobody"), protocol.CodeNotMember)
	expect(t, bob, protocol.OpMemberKick, a("room", "user", "carol"), protocol.CodeForbidden)
	expect(t, alice, protocol.OpMemberBan, a("room", "user", "carol", "duration_min", 1, "reason", "r"), "")
	if err := carol.Call(ctxT(t), protocol.OpChannelGet, a("room"), &g); err != nil || g.Member.Membership != protocol.MembershipBanned || g.Member.BannedUntil.IsZero() {
		t.Fatalf("banned carol's record %+v %v", g.Member, err)
	}
	expect(t, carol, protocol.OpMessagesHistory, a("room"), protocol.CodeBanned)
	expect(t, alice, protocol.OpMembersAdd, a("room", "users", []string{"carol"}), protocol.CodeBanned)
	expect(t, bob, protocol.OpMemberUnban, a("room", "user", "carol"), protocol.CodeForbidden)
	expect(t, alice, protocol.OpMemberUnban, a("room", "user", "carol"), "")
	expect(t, carol, protocol.OpChannelJoin, a("room"), "")
}

// TestBanAndKickReachWatchingSessions: a ban and a kick take effect on a
// session that is already watching. The banned user's own session is told
// (member.updated, the system message), then receives nothing more from
// the channel; a kicked one is told (member.kicked) and may join again.
//
// Absence is shown without sleeping: after the message bob must not see,
// alice posts to a second channel bob watches. Every event and reply of
// this one node passes through one gateway inbox in the order the actors
// sent them, so the next message bob receives is the second channel's.
func TestBanAndKickReachWatchingSessions(t *testing.T) {
	n := testNode(t)
	alice := dial(t, n, "alice")
	bob := dial(t, n, "bob")
	expect(t, alice, protocol.OpChannelCreate, map[string]any{"id": "room", "type": "standard"}, "")
	expect(t, alice, protocol.OpChannelCreate, map[string]any{"id": "side", "type": "standard"}, "")
	expect(t, bob, protocol.OpChannelJoin, a("room"), "")
	expect(t, bob, protocol.OpChannelJoin, a("side"), "")
	bobPhone := dial(t, n, "bob") // a second session of bob's, watching too
	expect(t, bobPhone, protocol.OpChannelWatch, a("room"), "")
	send := func(ch, id string) {
		t.Helper()
		expect(t, alice, protocol.OpMessageSend, a(ch, "client_id", strings.ReplaceAll(id, " ", "-"), "text", id), "")
	}
	// nextText returns the channel and text of bob's next user message,
	// skipping system messages.
	nextText := func() (string, string) {
		t.Helper()
		for {
			ch, m := nextMessage(t, bob)
			if m.Type != protocol.MessageSystem {
				return ch, m.Text
			}
		}
	}
	send("room", "before")
	if ch, text := nextText(); ch != "room" || text != "before" {
		t.Fatalf("bob got %s/%s", ch, text)
	}

	// The ban reaches both of bob's sessions, then nothing more does.
	expect(t, alice, protocol.OpMemberBan, a("room", "user", "bob", "duration_min", 0, "reason", "spam"), "")
	for _, c := range []*client.Client{bob, bobPhone} {
		e := nextEvent(t, c, protocol.EventMemberUpdated)
		var d struct {
			User   string          `json:"user"`
			Member protocol.Member `json:"member"`
		}
		if json.Unmarshal(e.Data, &d) != nil || d.User != "bob" || d.Member.Membership != protocol.MembershipBanned {
			t.Fatalf("member.updated %s", e.Data)
		}
		if _, m := nextMessage(t, c); m.System == nil || m.System.Kind != protocol.SystemMemberBanned {
			t.Fatalf("system message %+v", m)
		}
	}
	send("room", "after ban")
	send("side", "barrier 1")
	if ch, text := nextText(); ch != "side" || text != "barrier 1" {
		t.Fatalf("after the ban bob got %s/%s, want side/barrier 1", ch, text)
	}
	// The client let go of the channel with the ban (it reads events in
	// order, so the barrier shows the ban was handled): a reconnect will
	// not try to resume it.
	if _, watching := bob.LastSeq("room"); watching {
		t.Error("bob's client still watches room after the ban")
	}
	if _, watching := bob.LastSeq("side"); !watching {
		t.Error("bob's client stopped watching side")
	}
	expect(t, bob, protocol.OpChannelWatch, a("room"), protocol.CodeBanned)
	expect(t, bob, protocol.OpMessagesHistory, a("room"), protocol.CodeBanned)
	expect(t, bob, protocol.OpMessageSend, a("room", "client_id", "x", "text", "x"), protocol.CodeBanned)

	// The kick: lift the ban, bob joins, is kicked, and may join again.
	expect(t, alice, protocol.OpMemberUnban, a("room", "user", "bob"), "")
	expect(t, bob, protocol.OpChannelJoin, a("room"), "")
	expect(t, alice, protocol.OpMemberKick, a("room", "user", "bob", "reason", "cool off"), "")
	e := nextEvent(t, bob, protocol.EventMemberKicked)
	var k struct {
		User   string `json:"user"`
		Actor  string `json:"actor"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(e.Data, &k) != nil || k.User != "bob" || k.Actor != "alice" || k.Reason != "cool off" {
		t.Fatalf("member.kicked %s", e.Data)
	}
	send("room", "after kick")
	send("side", "barrier 2")
	if ch, text := nextText(); ch != "side" || text != "barrier 2" {
		t.Fatalf("after the kick bob got %s/%s, want side/barrier 2", ch, text)
	}
	if _, watching := bob.LastSeq("room"); watching {
		t.Error("bob's client still watches room after the kick")
	}
	expect(t, bob, protocol.OpMessageSend, a("room", "client_id", "y", "text", "y"), protocol.CodeNotMember)
	expect(t, bob, protocol.OpChannelJoin, a("room"), "")
	send("room", "welcome back")
	if ch, text := nextText(); ch != "room" || text != "welcome back" {
		t.Fatalf("rejoined bob got %s/%s", ch, text)
	}
}
