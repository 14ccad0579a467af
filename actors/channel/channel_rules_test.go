package channel

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Rules about who may say what in a channel, and the bounds of its settings.

// TestEditAndDeleteNeedTheAuthorInTheChannel: an author edits only while
// still in the channel and free to speak (the send path's codes); deletes
// their own while still in the channel, muted or not; moderators delete
// anyone's.
func TestEditAndDeleteNeedTheAuthorInTheChannel(t *testing.T) {
	h := modChannel(t)
	edit := func(c Caller, id string, code protocol.Code) {
		t.Helper()
		a := args("message_id", id, "text", "edited by "+c.User)
		if code == "" {
			ok[messageResult](h, c, protocol.OpMessageEdit, a)
			return
		}
		h.fail(c, protocol.OpMessageEdit, a, code)
	}
	del := func(c Caller, id string, code protocol.Code) {
		t.Helper()
		if code == "" {
			ok[messageResult](h, c, protocol.OpMessageDelete, args("message_id", id))
			return
		}
		h.fail(c, protocol.OpMessageDelete, args("message_id", id), code)
	}
	bob := caller("bob")
	m1, m2, m3 := h.mustSend(bob, "b1"), h.mustSend(bob, "b2"), h.mustSend(bob, "b3")

	// Muted: no edits (with the mute's retry), but the author may still
	// take a message back.
	ok[protocol.MemberResult](h, caller("mod"), protocol.OpMemberMute, args("user", "bob", "duration_min", 10))
	if e := h.fail(bob, protocol.OpMessageEdit, args("message_id", m1.ID, "text", "x"), protocol.CodeMuted); e.RetryAfterMS != 600000 {
		t.Errorf("edit while muted: retry_after_ms %d", e.RetryAfterMS)
	}
	del(bob, m3.ID, "")
	ok[protocol.MemberResult](h, caller("mod"), protocol.OpMemberUnmute, args("user", "bob"))
	edit(bob, m1.ID, "")

	// A muted channel freezes edits of everyone but moderators.
	ok[protocol.ChannelResult](h, caller("mod"), protocol.OpChannelMute, args("duration_min", 5))
	edit(bob, m1.ID, protocol.CodeChannelMuted)
	modMsg := h.mustSend(caller("mod"), "m1")
	edit(caller("mod"), modMsg.ID, "")
	ok[protocol.ChannelResult](h, caller("mod"), protocol.OpChannelUnmute, args())

	// Gone from the channel: neither edits nor deletes their own.
	ok[struct{}](h, bob, protocol.OpChannelLeave, args())
	edit(bob, m1.ID, protocol.CodeNotMember)
	del(bob, m1.ID, protocol.CodeNotMember)
	h.join(bob, nil)
	edit(bob, m1.ID, "")
	ok[protocol.MembersResult](h, caller("alice"), protocol.OpMembersRemove, args("users", []string{"bob"}))
	del(bob, m1.ID, protocol.CodeNotMember)
	h.join(bob, nil)
	ok[protocol.MemberResult](h, caller("mod"), protocol.OpMemberBan, args("user", "bob", "duration_min", 10))
	edit(bob, m1.ID, protocol.CodeBanned)
	del(bob, m1.ID, protocol.CodeBanned)

	// Other members neither edit nor delete an author's message.
	edit(caller("carol"), m2.ID, protocol.CodeForbidden)
	del(caller("carol"), m2.ID, protocol.CodeForbidden)
	// Moderators still delete others' messages, whoever the author is now.
	del(caller("mod"), m2.ID, "")
	del(caller("alice"), m1.ID, "")
}

// TestDistinctIDsAreReserved: only a distinct conversation takes an id
// with the distinct prefix, so nobody squats one before its members.
func TestDistinctIDsAreReserved(t *testing.T) {
	id := DistinctID([]string{"alice", "bob"})
	if !strings.HasPrefix(id, DistinctPrefix) {
		t.Fatalf("distinct id %q", id)
	}
	for _, typ := range []string{protocol.TypeStandard, protocol.TypeConversation, protocol.TypePrivate} {
		s, err := Load(id, persistence.NewMemLog(), DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		eff := s.Handle(Command{Op: protocol.OpChannelCreate, Args: encodeArgs(t, map[string]any{"id": id, "type": typ}), Caller: caller("mallory")}, t0)
		if eff.Err == nil || eff.Err.Code != protocol.CodeBadRequest || eff.Entry != nil || s.Exists() {
			t.Fatalf("%s with id %s: %+v, err %v", typ, id, eff, eff.Err)
		}
		eff = s.Handle(Command{Op: protocol.OpChannelCreate, Args: encodeArgs(t, map[string]any{"type": protocol.TypeConversation, "distinct": true, "members": []string{"bob"}}), Caller: caller("alice")}, t0)
		if eff.Err != nil || !s.Exists() {
			t.Fatalf("the distinct conversation itself: %v", eff.Err)
		}
	}
}

// TestReactionsAreSaidLikeMessages: a muted user, or anyone but
// moderators in a muted channel, cannot react; reaction changes count
// against the channel's rate limit with messages.
func TestReactionsAreSaidLikeMessages(t *testing.T) {
	h := modChannel(t)
	m := h.mustSend(caller("alice"), "a1")
	react := func(c Caller, op, name string, code protocol.Code) *protocol.Error {
		t.Helper()
		a := args("message_id", m.ID, "name", name)
		if code == "" {
			ok[messageResult](h, c, op, a)
			return nil
		}
		return h.fail(c, op, a, code)
	}
	react(caller("bob"), protocol.OpReactionAdd, "up", "")
	ok[protocol.MemberResult](h, caller("mod"), protocol.OpMemberMute, args("user", "bob", "duration_min", 0))
	react(caller("bob"), protocol.OpReactionAdd, "down", protocol.CodeMuted)
	react(caller("bob"), protocol.OpReactionRemove, "up", protocol.CodeMuted)
	ok[protocol.MemberResult](h, caller("mod"), protocol.OpMemberUnmute, args("user", "bob"))

	ok[protocol.ChannelResult](h, caller("mod"), protocol.OpChannelMute, args("duration_min", 1))
	if e := react(caller("carol"), protocol.OpReactionAdd, "up", protocol.CodeChannelMuted); e.RetryAfterMS != 60000 {
		t.Errorf("channel mute retry_after_ms %d", e.RetryAfterMS)
	}
	react(caller("mod"), protocol.OpReactionAdd, "up", "")
	ok[protocol.ChannelResult](h, caller("mod"), protocol.OpChannelUnmute, args())

	ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, args("rate_limit", map[string]any{"count": 3, "window_ms": 1000}))
	react(caller("bob"), protocol.OpReactionAdd, "a", "")
	h.tick(100 * time.Millisecond)
	react(caller("carol"), protocol.OpReactionAdd, "a", "")
	react(caller("bob"), protocol.OpReactionRemove, "a", "")
	// The budget is spent: reactions and messages wait alike.
	if e := react(caller("carol"), protocol.OpReactionAdd, "b", protocol.CodeRateLimited); e.RetryAfterMS != 900 {
		t.Errorf("reaction over the rate limit: retry_after_ms %d", e.RetryAfterMS)
	}
	h.sendFails(caller("bob"), "b1", protocol.CodeRateLimited, 900)
	// What changes nothing is not limited, and moderators are exempt
	// without using the budget up.
	react(caller("carol"), protocol.OpReactionAdd, "a", "")
	react(caller("mod"), protocol.OpReactionAdd, "b", "")
	h.tick(900 * time.Millisecond)
	react(caller("carol"), protocol.OpReactionAdd, "b", "")
	react(caller("bob"), protocol.OpReactionAdd, "c", protocol.CodeRateLimited)
}

// TestSettingsAreCapped: slow mode and the rate-limit window have upper
// bounds (an unbounded one overflowed and turned the limit off).
func TestSettingsAreCapped(t *testing.T) {
	h := modChannel(t)
	update := func(a map[string]any, code protocol.Code) {
		t.Helper()
		if code == "" {
			ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, a)
			return
		}
		h.fail(caller("alice"), protocol.OpChannelUpdate, a, code)
	}
	const hour = int64(time.Hour / time.Millisecond)
	update(args("slow_mode_ms", 6*hour+1), protocol.CodeBadRequest)
	update(args("slow_mode_ms", int64(1)<<62), protocol.CodeBadRequest)
	update(args("rate_limit", map[string]any{"count": 1, "window_ms": 24*hour + 1}), protocol.CodeBadRequest)
	update(args("rate_limit", map[string]any{"count": 1, "window_ms": int64(1) << 62}), protocol.CodeBadRequest)
	update(args("slow_mode_ms", 6*hour), "")
	h.mustSend(caller("bob"), "b1")
	h.tick(6*time.Hour - time.Millisecond)
	h.sendFails(caller("bob"), "b2", protocol.CodeRateLimited, 1)
	update(args("slow_mode_ms", 0, "rate_limit", map[string]any{"count": 1, "window_ms": 24 * hour}), "")
	h.tick(time.Millisecond)
	h.mustSend(caller("bob"), "b2")
	h.tick(24*time.Hour - time.Millisecond)
	h.sendFails(caller("carol"), "c1", protocol.CodeRateLimited, 1)
}

// TestAttachedToIsValidated: attached_to holds ids.
func TestAttachedToIsValidated(t *testing.T) {
	h := newHarness(t)
	long := strings.Repeat("x", h.cfg.Limits.MaxIDLen+1)
	for _, tt := range []struct {
		at   map[string]any
		code protocol.Code
	}{
		{map[string]any{"stream_id": "has space"}, protocol.CodeBadRequest},
		{map[string]any{"room_id": "tab\there"}, protocol.CodeBadRequest},
		{map[string]any{"post_id": "\xff"}, protocol.CodeBadRequest},
		{map[string]any{"post_id": long}, protocol.CodeTooLong},
	} {
		h.fail(caller("alice"), protocol.OpChannelCreate, map[string]any{"type": protocol.TypeLive, "attached_to": tt.at}, tt.code)
		if h.s.Exists() {
			t.Fatalf("created with attached_to %v", tt.at)
		}
	}
	h.create("alice", protocol.TypeLive, map[string]any{"attached_to": map[string]any{"stream_id": "s-1", "post_id": "p/2"}})
	h.fail(caller("alice"), protocol.OpChannelUpdate, args("attached_to", map[string]any{"room_id": "a b"}), protocol.CodeBadRequest)
	h.fail(caller("alice"), protocol.OpChannelUpdate, args("attached_to", map[string]any{"room_id": long}), protocol.CodeTooLong)
	ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, args("attached_to", map[string]any{"room_id": "r-3"}))
	if at := h.channel().AttachedTo; at == nil || at.RoomID != "r-3" || at.StreamID != "" {
		t.Fatalf("attached_to %+v", at)
	}
}

// TestNoReplyToADeletedMessage: a thread does not start or go on under a
// deleted parent; a resend of a reply accepted before still answers.
func TestNoReplyToADeletedMessage(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	p := h.send("alice", "p", "parent")
	r := h.reply("alice", "r1", p.ID)
	ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, args("message_id", p.ID))
	h.fail(caller("alice"), protocol.OpMessageSend, args("client_id", "r2", "text", "late", "parent_id", p.ID), protocol.CodeInvalidState)
	if again := ok[messageResult](h, caller("alice"), protocol.OpMessageSend, args("client_id", "r1", "text", "x", "parent_id", p.ID)).Message; again.ID != r.ID {
		t.Fatalf("resend answered %s, want %s", again.ID, r.ID)
	}
}

// TestJoinTokenDoesNotDowngradeAMember: a read-only token grants, it does
// not take away: a member who joins with one still sends and edits.
func TestJoinTokenDoesNotDowngradeAMember(t *testing.T) {
	for _, typ := range []string{protocol.TypePrivate, protocol.TypeStandard} {
		t.Run(typ, func(t *testing.T) {
			h := newHarness(t)
			h.create("alice", typ, map[string]any{"members": []string{"bob"}})
			r := h.join(tokenCaller("bob", PermRead), nil)
			if r.Member.Membership != protocol.MembershipMember {
				t.Fatalf("bob's record after a read token join: %+v", r.Member)
			}
			m := h.mustSend(caller("bob"), "b1")
			ok[messageResult](h, caller("bob"), protocol.OpMessageEdit, args("message_id", m.ID, "text", "still mine"))
			// A non-member with the same token stays read-only.
			h.join(tokenCaller("carol", PermRead), nil)
			h.sendFails(caller("carol"), "c1", protocol.CodeForbidden, 0)
		})
	}
}

// TestTokenModeratorRanksAsModerator: while a session holds a moderate
// grant, its user ranks as a moderator when targeted too: moderators (by
// role or token) cannot act on them, owners can; once the grant ends they
// rank by their record again.
func TestTokenModeratorRanksAsModerator(t *testing.T) {
	h := modChannel(t)
	h.join(tokenCaller("helper", PermModerate), nil)
	h.join(tokenCaller("helper2", PermModerate), nil)
	mute := args("user", "helper", "duration_min", 1)
	h.fail(caller("mod"), protocol.OpMemberMute, mute, protocol.CodeForbidden)
	h.fail(caller("helper2"), protocol.OpMemberMute, mute, protocol.CodeForbidden)
	h.fail(caller("helper2"), protocol.OpMemberKick, args("user", "helper"), protocol.CodeForbidden)
	h.fail(caller("mod"), protocol.OpMembersRemove, args("users", []string{"helper"}), protocol.CodeForbidden)
	// Nor can they act on each other's rank from the other side.
	h.fail(caller("helper"), protocol.OpMemberMute, args("user", "helper2", "duration_min", 1), protocol.CodeForbidden)
	ok[protocol.MemberResult](h, caller("alice"), protocol.OpMemberMute, mute)
	ok[protocol.MemberResult](h, admin("root"), protocol.OpMemberUnmute, args("user", "helper"))
	// Another session of theirs without the grant does not change it;
	// ending the grant does.
	h.join(session("helper", "helper-phone", "gw2"), nil)
	h.fail(caller("mod"), protocol.OpMemberMute, mute, protocol.CodeForbidden)
	ok[watchResult](h, caller("helper"), protocol.OpChannelWatch, args())
	ok[protocol.MemberResult](h, caller("mod"), protocol.OpMemberMute, mute)
}

// TestLiftingWhatIsNotThere: unmuting or unbanning a user without a
// record changes nothing and answers {"member":null}.
func TestLiftingWhatIsNotThere(t *testing.T) {
	h := modChannel(t)
	for _, op := range []string{protocol.OpMemberUnmute, protocol.OpMemberUnban} {
		eff := h.noop(caller("mod"), op, args("user", "nobody"))
		if string(eff.Result) != `{"member":null}` {
			t.Errorf("%s: %s", op, eff.Result)
		}
	}
}
