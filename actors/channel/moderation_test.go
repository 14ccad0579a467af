package channel

import (
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// modChannel is a standard channel: alice owner, mod a moderator, bob and
// carol members (bob watching from two gateways).
func modChannel(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, map[string]any{"members": []string{"bob", "carol"}})
	h.setRoles("mod", protocol.RoleModerator)
	h.join(caller("bob"), nil)
	h.join(session("bob", "bob-phone", "gw2"), nil)
	return h
}

func TestModerationNeedsRankAbove(t *testing.T) {
	ops := []struct {
		op   string
		args map[string]any
	}{
		{protocol.OpMemberMute, args("duration_min", 5)},
		{protocol.OpMemberUnmute, args()},
		{protocol.OpMemberBan, args("duration_min", 5)},
		{protocol.OpMemberKick, args()},
		// member.unban is left out: a ban drops the target's roles, so
		// any moderator may lift it (see TestBanPermanentUnbanAndRepeat).
	}
	tests := []struct {
		who    Caller
		target string
		code   protocol.Code // "" = allowed
	}{
		{caller("bob"), "carol", protocol.CodeForbidden},      // a member
		{caller("stranger"), "carol", protocol.CodeForbidden}, // not in the channel
		{caller("mod"), "carol", ""},                          // moderator → member
		{caller("mod"), "alice", protocol.CodeForbidden},      // moderator → owner
		{caller("mod"), "mod2", protocol.CodeForbidden},       // moderator → moderator
		{caller("mod"), "mod", protocol.CodeForbidden},        // oneself
		{caller("alice"), "mod", ""},                          // owner → moderator
		{caller("alice"), "alice2", protocol.CodeForbidden},   // owner → owner
		{admin("root"), "alice", ""},                          // admin → owner
		{tokenCaller("tok", PermModerate), "carol", ""},       // a moderate token
		{tokenCaller("tok", PermModerate), "mod", protocol.CodeForbidden},
	}
	for _, op := range ops {
		for _, tt := range tests {
			t.Run(op.op+"/"+tt.who.User+"→"+tt.target, func(t *testing.T) {
				h := modChannel(t)
				h.setRoles("mod2", protocol.RoleModerator)
				h.setRoles("alice2", protocol.RoleOwner)
				if tt.who.Perms != nil {
					h.join(tt.who, nil) // the grant lives with the watch
				}
				a := map[string]any{}
				for k, v := range op.args {
					a[k] = v
				}
				a["user"] = tt.target
				if op.op == protocol.OpMemberUnmute {
					// Give it something to undo (as admin).
					ok[protocol.MemberResult](h, admin("root"), protocol.OpMemberMute, args("user", tt.target, "duration_min", 0))
				}
				if tt.code != "" {
					h.fail(tt.who, op.op, a, tt.code)
					return
				}
				if eff := h.do(tt.who, op.op, a); eff.Err != nil {
					t.Fatal(eff.Err)
				}
			})
		}
	}
}

func TestModerationArgs(t *testing.T) {
	h := modChannel(t)
	for _, op := range []string{protocol.OpMemberMute, protocol.OpMemberBan} {
		h.fail(caller("alice"), op, args("user", "bob"), protocol.CodeBadRequest) // duration_min is required
		h.fail(caller("alice"), op, args("user", "bob", "duration_min", -1), protocol.CodeBadRequest)
		h.fail(caller("alice"), op, args("user", "bob", "duration_min", protocol.MaxDurationMin+1), protocol.CodeBadRequest)
		h.fail(caller("alice"), op, args("user", "", "duration_min", 1), protocol.CodeBadRequest)
		h.fail(caller("alice"), op, args("user", "bob", "duration_min", 1, "reason", string(make([]byte, 201))), protocol.CodeTooLong)
	}
	h.fail(caller("alice"), protocol.OpChannelMute, args(), protocol.CodeBadRequest)
	h.fail(caller("alice"), protocol.OpChannelMute, args("duration_min", -5), protocol.CodeBadRequest)
	h.fail(caller("bob"), protocol.OpChannelMute, args("duration_min", 5), protocol.CodeForbidden)
	h.fail(caller("bob"), protocol.OpChannelUnmute, args(), protocol.CodeForbidden)
	h.fail(caller("alice"), protocol.OpMemberKick, args("user", "nobody"), protocol.CodeNotMember)
}

func TestMuteTimed(t *testing.T) {
	h := modChannel(t)
	start := h.now
	eff := h.do(caller("mod"), protocol.OpMemberMute, args("user", "bob", "duration_min", 10, "reason", "spam"))
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	if names := eventNames(t, eff); !slices.Equal(names, []string{protocol.EventMemberUpdated}) {
		t.Fatalf("events %v: a mute is announced by member.updated only", names)
	}
	name, d := memberEventData(t, eff.Events[0])
	until := start.Add(10 * time.Minute)
	if name != protocol.EventMemberUpdated || d.User != "bob" || d.Actor != "mod" || d.Reason != "spam" ||
		!d.Member.MutedUntil.Equal(until) || d.Member.MuteReason != "spam" || d.Member.Membership != protocol.MembershipMember {
		t.Fatalf("event %s %+v member %+v", name, d, d.Member)
	}
	if v := h.view("bob"); !v.MutedUntil.Equal(until) || v.MuteReason != "spam" {
		t.Errorf("bob's own view %+v", v)
	}
	h.sendFails(caller("bob"), "b1", protocol.CodeMuted, 600000)
	h.sendFails(session("bob", "bob-phone", "gw2"), "b1", protocol.CodeMuted, 600000)
	h.mustSend(caller("carol"), "c1")
	h.tick(10*time.Minute - time.Millisecond)
	h.sendFails(caller("bob"), "b1", protocol.CodeMuted, 1)
	h.tick(time.Millisecond) // exactly at muted_until: the mute has ended
	h.mustSend(caller("bob"), "b1")
	if v := h.view("bob"); !v.MutedUntil.IsZero() || v.MuteReason != "" {
		t.Errorf("ended mute still shown: %+v", v)
	}
	// Unmuting an ended mute changes nothing.
	h.noop(caller("mod"), protocol.OpMemberUnmute, args("user", "bob"))
}

func TestMutePermanentAndUnmute(t *testing.T) {
	h := modChannel(t)
	ok[protocol.MemberResult](h, caller("alice"), protocol.OpMemberMute, args("user", "bob", "duration_min", 0))
	if v := h.view("bob"); !v.MutedUntil.Equal(protocol.Permanent.Time) {
		t.Errorf("permanent mute shows muted_until %v", v.MutedUntil)
	}
	// A permanent mute answers muted without retry_after_ms, forever.
	h.sendFails(caller("bob"), "b1", protocol.CodeMuted, 0)
	h.tick(50 * 365 * 24 * time.Hour)
	h.sendFails(caller("bob"), "b1", protocol.CodeMuted, 0)
	// Repeating it changes nothing; it survives a restart.
	h.noop(caller("alice"), protocol.OpMemberMute, args("user", "bob", "duration_min", 0))
	h.reload()
	h.join(caller("bob"), nil)
	h.sendFails(caller("bob"), "b1", protocol.CodeMuted, 0)
	// Leaving and coming back does not lift it.
	ok[struct{}](h, caller("bob"), protocol.OpChannelLeave, args())
	if r := h.record("bob"); r == nil || r.Membership != protocol.MembershipNone || !mutedAt(r, h.now) {
		t.Fatalf("after leave bob's record %+v, want the mute kept", r)
	}
	h.join(caller("bob"), nil)
	h.sendFails(caller("bob"), "b1", protocol.CodeMuted, 0)

	eff := h.do(caller("mod"), protocol.OpMemberUnmute, args("user", "bob"))
	if eff.Err != nil || !slices.Equal(eventNames(t, eff), []string{protocol.EventMemberUpdated}) {
		t.Fatalf("unmute: %v %v", eff.Err, eventNames(t, eff))
	}
	h.mustSend(caller("bob"), "b1")
	h.noop(caller("mod"), protocol.OpMemberUnmute, args("user", "bob"))
}

func TestMuteAppliesToModeratorsButNotAdmins(t *testing.T) {
	h := modChannel(t)
	ok[protocol.MemberResult](h, caller("alice"), protocol.OpMemberMute, args("user", "mod", "duration_min", 0))
	h.join(caller("mod"), nil)
	h.sendFails(caller("mod"), "m1", protocol.CodeMuted, 0)
	// A user muted while not a member stays muted; an admin session of
	// a muted user still sends.
	ok[protocol.MemberResult](h, caller("alice"), protocol.OpMemberMute, args("user", "root", "duration_min", 0))
	h.mustSend(admin("root"), "r1")
}

func TestMuteNonMemberKeepsRecordOnlyForTheMute(t *testing.T) {
	h := modChannel(t)
	count := h.channel().MemberCount
	ok[protocol.MemberResult](h, caller("mod"), protocol.OpMemberMute, args("user", "dave", "duration_min", 5))
	if r := h.record("dave"); r == nil || r.Membership != protocol.MembershipNone {
		t.Fatalf("dave's record %+v", r)
	}
	if c := h.channel().MemberCount; c != count {
		t.Errorf("member_count %d, want %d: a restriction is not a membership", c, count)
	}
	// Joining keeps the mute.
	r := h.join(caller("dave"), nil)
	if r.Member.Membership != protocol.MembershipMember || r.Member.MutedUntil.IsZero() {
		t.Errorf("dave joined as %+v", r.Member)
	}
	h.sendFails(caller("dave"), "d1", protocol.CodeMuted, 300000)
	// Unmuting a non-member deletes the record it had only for the mute.
	ok[struct{}](h, caller("dave"), protocol.OpChannelLeave, args())
	ok[protocol.MemberResult](h, caller("mod"), protocol.OpMemberUnmute, args("user", "dave"))
	if r := h.record("dave"); r != nil {
		t.Errorf("dave's record %+v after unmute, want none", r)
	}
}

func TestBanTakesEffectOnWatchingSessions(t *testing.T) {
	h := modChannel(t)
	count := h.channel().MemberCount
	eff := h.do(caller("mod"), protocol.OpMemberBan, args("user", "bob", "duration_min", 60, "reason", "abuse"))
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	// Both of bob's sessions stop, after receiving what the ban caused:
	// the adapter sends events to the gateways in Watch too.
	if got := stopped(eff); !slices.Equal(got, []string{"gw1/bob-s1", "gw2/bob-phone"}) {
		t.Errorf("stopped %v", got)
	}
	if names := eventNames(t, eff); !slices.Equal(names, []string{protocol.EventMemberUpdated, protocol.EventMessageNew}) {
		t.Errorf("events %v", names)
	}
	if kinds := systemKinds(t, eff); !slices.Equal(kinds, []string{protocol.SystemMemberBanned}) {
		t.Errorf("system messages %v", kinds)
	}
	if !slices.Equal(eff.Notices, []Notice{{"bob", false, protocol.ReasonBanned}}) {
		t.Errorf("notices %v", eff.Notices)
	}
	if h.s.watchers.byUser["bob"] != 0 {
		t.Errorf("bob still watches")
	}
	if c := h.channel().MemberCount; c != count-1 {
		t.Errorf("member_count %d, want %d", c, count-1)
	}
	until := h.now.Add(time.Hour)
	check := func(when string) {
		t.Helper()
		for _, op := range []string{protocol.OpChannelJoin, protocol.OpChannelWatch, protocol.OpMessagesHistory, protocol.OpChannelLeave, protocol.OpMembersList} {
			h.fail(caller("bob"), op, args(), protocol.CodeBanned)
		}
		h.sendFails(caller("bob"), "b1", protocol.CodeBanned, 0)
		h.fail(tokenCaller("bob", PermModerate), protocol.OpChannelJoin, args(), protocol.CodeBanned)
		// A banned user may still read their own standing.
		v := h.view("bob")
		if v.Membership != protocol.MembershipBanned || !v.BannedUntil.Equal(until) || v.BanReason != "abuse" || len(v.Roles) != 0 {
			t.Errorf("%s: bob's view %+v", when, v)
		}
	}
	check("banned")
	h.reload()
	check("after restart")
	// Banning again with the same terms changes nothing; so does lifting
	// a ban nobody has.
	h.noop(caller("mod"), protocol.OpMemberBan, args("user", "bob", "duration_min", 60, "reason", "abuse"))
	h.noop(caller("mod"), protocol.OpMemberUnban, args("user", "nobody"))
	h.tick(time.Hour - time.Millisecond)
	check("1 ms before the end")
	h.tick(time.Millisecond)
	// Exactly at banned_until the ban is over: bob may join again.
	r := h.join(caller("bob"), nil)
	if r.Member.Membership != protocol.MembershipMember || !r.Member.BannedUntil.IsZero() {
		t.Errorf("rejoined as %+v", r.Member)
	}
}

func TestBanPermanentUnbanAndRepeat(t *testing.T) {
	h := modChannel(t)
	ok[protocol.MemberResult](h, caller("alice"), protocol.OpMemberBan, args("user", "bob", "duration_min", 0))
	h.noop(caller("alice"), protocol.OpMemberBan, args("user", "bob", "duration_min", 0))
	h.tick(100 * 365 * 24 * time.Hour)
	h.fail(caller("bob"), protocol.OpChannelJoin, args(), protocol.CodeBanned)
	// Banning again on other terms updates the ban without a second
	// system message.
	eff := h.do(caller("alice"), protocol.OpMemberBan, args("user", "bob", "duration_min", 5, "reason", "shorter"))
	if eff.Err != nil || len(systemKinds(t, eff)) != 0 || len(eff.Notices) != 0 {
		t.Fatalf("re-ban: %v kinds %v notices %v", eff.Err, systemKinds(t, eff), eff.Notices)
	}
	h.fail(caller("carol"), protocol.OpMemberUnban, args("user", "bob"), protocol.CodeForbidden)
	eff = h.do(caller("mod"), protocol.OpMemberUnban, args("user", "bob"))
	if eff.Err != nil || !slices.Equal(eventNames(t, eff), []string{protocol.EventMemberUpdated}) {
		t.Fatalf("unban: %v %v", eff.Err, eventNames(t, eff))
	}
	if r := h.record("bob"); r != nil {
		t.Errorf("record after unban %+v, want none", r)
	}
	h.noop(caller("alice"), protocol.OpMemberUnban, args("user", "bob"))
	h.join(caller("bob"), nil)
}

func TestBanBeforeJoinAndOnLiveViewers(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeLive, nil)
	h.join(caller("viewer"), nil)
	before := h.log.Appended()
	eff := h.do(caller("alice"), protocol.OpMemberBan, args("user", "viewer", "duration_min", 0))
	if eff.Err != nil || eff.Entry == nil || h.log.Appended() != before+1 {
		t.Fatalf("ban of a viewer: %v (a moderation record persists)", eff.Err)
	}
	if got := stopped(eff); !slices.Equal(got, []string{"gw1/viewer-s1"}) {
		t.Errorf("stopped %v", got)
	}
	h.fail(caller("viewer"), protocol.OpChannelJoin, args(), protocol.CodeBanned)
	// A pre-emptive ban on a user never seen.
	ok[protocol.MemberResult](h, caller("alice"), protocol.OpMemberBan, args("user", "troll", "duration_min", 0))
	h.fail(caller("troll"), protocol.OpChannelWatch, args(), protocol.CodeBanned)
	if c := h.channel().MemberCount; c != 1 {
		t.Errorf("member_count %d, want 1", c)
	}
}

func TestKick(t *testing.T) {
	h := modChannel(t)
	count := h.channel().MemberCount
	eff := h.do(caller("mod"), protocol.OpMemberKick, args("user", "bob", "reason", "cool off"))
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	if got := stopped(eff); !slices.Equal(got, []string{"gw1/bob-s1", "gw2/bob-phone"}) {
		t.Errorf("stopped %v", got)
	}
	if names := eventNames(t, eff); !slices.Equal(names, []string{protocol.EventMemberKicked, protocol.EventMessageNew}) {
		t.Fatalf("events %v", names)
	}
	if _, d := memberEventData(t, eff.Events[0]); d.User != "bob" || d.Actor != "mod" || d.Reason != "cool off" {
		t.Errorf("member.kicked %+v", d)
	}
	if kinds := systemKinds(t, eff); !slices.Equal(kinds, []string{protocol.SystemMemberKicked}) {
		t.Errorf("system %v", kinds)
	}
	if h.record("bob") != nil || h.channel().MemberCount != count-1 {
		t.Errorf("record %+v member_count %d", h.record("bob"), h.channel().MemberCount)
	}
	h.sendFails(caller("bob"), "b1", protocol.CodeNotMember, 0)
	h.fail(caller("mod"), protocol.OpMemberKick, args("user", "bob"), protocol.CodeNotMember)
	// He may come back.
	h.join(caller("bob"), nil)
	h.mustSend(caller("bob"), "b1")
}

func TestKickKeepsMuteAndKicksLiveViewers(t *testing.T) {
	h := modChannel(t)
	ok[protocol.MemberResult](h, caller("mod"), protocol.OpMemberMute, args("user", "bob", "duration_min", 0))
	ok[struct{}](h, caller("mod"), protocol.OpMemberKick, args("user", "bob"))
	h.join(caller("bob"), nil)
	h.sendFails(caller("bob"), "b1", protocol.CodeMuted, 0)

	l := newHarness(t)
	l.create("alice", protocol.TypeLive, nil)
	l.join(caller("viewer"), nil)
	eff := l.do(caller("alice"), protocol.OpMemberKick, args("user", "viewer"))
	if eff.Err != nil || l.record("viewer") != nil || l.s.watchers.byUser["viewer"] != 0 {
		t.Fatalf("kick of a live viewer: %v", eff.Err)
	}
	l.sendFails(caller("viewer"), "v1", protocol.CodeNotMember, 0)
	l.join(caller("viewer"), nil)
	l.mustSend(caller("viewer"), "v1")
}

func TestChannelMute(t *testing.T) {
	h := modChannel(t)
	start := h.now
	eff := h.do(caller("mod"), protocol.OpChannelMute, args("duration_min", 2))
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	if names := eventNames(t, eff); !slices.Equal(names, []string{protocol.EventChannelUpdated, protocol.EventMessageNew}) {
		t.Errorf("events %v", names)
	}
	if kinds := systemKinds(t, eff); !slices.Equal(kinds, []string{protocol.SystemChannelMuted}) {
		t.Errorf("system %v", kinds)
	}
	if c := h.channel(); !c.MutedUntil.Equal(start.Add(2 * time.Minute)) {
		t.Errorf("muted_until %v", c.MutedUntil)
	}
	h.sendFails(caller("bob"), "b1", protocol.CodeChannelMuted, 120000)
	h.mustSend(caller("mod"), "m1")
	h.mustSend(caller("alice"), "a1")
	h.mustSend(admin("root"), "r1")
	h.tick(2*time.Minute - time.Millisecond)
	h.sendFails(caller("bob"), "b1", protocol.CodeChannelMuted, 1)
	h.tick(time.Millisecond)
	h.mustSend(caller("bob"), "b1")
	if c := h.channel(); !c.MutedUntil.IsZero() {
		t.Errorf("ended channel mute still shown: %v", c.MutedUntil)
	}
	h.noop(caller("mod"), protocol.OpChannelUnmute, args())

	// Permanent, repeated, then lifted.
	ok[protocol.ChannelResult](h, caller("mod"), protocol.OpChannelMute, args("duration_min", 0))
	h.noop(caller("mod"), protocol.OpChannelMute, args("duration_min", 0))
	h.reload()
	h.tick(365 * 24 * time.Hour)
	h.sendFails(caller("bob"), "b2", protocol.CodeChannelMuted, 0)
	eff = h.do(caller("alice"), protocol.OpChannelUnmute, args())
	if kinds := systemKinds(t, eff); eff.Err != nil || !slices.Equal(kinds, []string{protocol.SystemChannelUnmuted}) {
		t.Fatalf("unmute: %v %v", eff.Err, kinds)
	}
	h.mustSend(caller("bob"), "b2")
}

func TestModeratorsDeleteAnyMessageMembersTheirOwn(t *testing.T) {
	h := modChannel(t)
	m := h.mustSend(caller("bob"), "b1")
	h.fail(caller("carol"), protocol.OpMessageDelete, args("message_id", m.ID), protocol.CodeForbidden)
	h.fail(caller("mod"), protocol.OpMessageEdit, args("message_id", m.ID, "text", "x"), protocol.CodeForbidden)
	tok := tokenCaller("helper", PermModerate)
	h.join(tok, nil)
	ok[messageResult](h, tok, protocol.OpMessageDelete, args("message_id", m.ID))
	m2 := h.mustSend(caller("bob"), "b2")
	ok[messageResult](h, caller("bob"), protocol.OpMessageDelete, args("message_id", m2.ID))
}
