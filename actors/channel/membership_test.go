package channel

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestMembersAdd(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypePrivate, nil)
	h.setRoles("mod", protocol.RoleModerator)
	eff := h.do(caller("mod"), protocol.OpMembersAdd, args("users", []string{"bob", "carol", "bob"}))
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	names := eventNames(t, eff)
	want := []string{protocol.EventMemberJoined, protocol.EventMessageNew, protocol.EventMemberJoined, protocol.EventMessageNew}
	if !slices.Equal(names, want) {
		t.Errorf("events %v, want %v", names, want)
	}
	if kinds := systemKinds(t, eff); !slices.Equal(kinds, []string{protocol.SystemMemberAdded, protocol.SystemMemberAdded}) {
		t.Errorf("system %v", kinds)
	}
	if _, d := memberEventData(t, eff.Events[0]); d.User != "bob" || d.Actor != "mod" || d.Member.Membership != protocol.MembershipMember {
		t.Errorf("member.joined %+v", d)
	}
	if !slices.Equal(eff.Notices, []Notice{{"bob", true, protocol.ReasonAdded}, {"carol", true, protocol.ReasonAdded}}) {
		t.Errorf("notices %v", eff.Notices)
	}
	if c := h.channel().MemberCount; c != 3 {
		t.Errorf("member_count %d, want 3", c)
	}
	// Added members of a private channel read and send.
	h.join(caller("bob"), nil)
	h.mustSend(caller("bob"), "b1")

	h.fail(caller("mod"), protocol.OpMembersAdd, args("users", []string{"dave", "bob"}), protocol.CodeAlreadyMember)
	h.fail(caller("bob"), protocol.OpMembersAdd, args("users", []string{"dave"}), protocol.CodeForbidden)
	h.fail(caller("mod"), protocol.OpMembersAdd, args("users", []string{}), protocol.CodeBadRequest)
	h.fail(caller("mod"), protocol.OpMembersAdd, args("users", []string{"has space"}), protocol.CodeBadRequest)
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprint("u", i)
	}
	h.fail(caller("mod"), protocol.OpMembersAdd, args("users", many), protocol.CodeTooLarge)
	ok[protocol.MemberResult](h, caller("mod"), protocol.OpMemberBan, args("user", "eve", "duration_min", 0))
	h.fail(caller("mod"), protocol.OpMembersAdd, args("users", []string{"eve"}), protocol.CodeBanned)
}

func TestMembersAddDistinctConversationIsFixed(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeConversation, map[string]any{"distinct": true, "members": []string{"bob"}})
	h.fail(caller("alice"), protocol.OpMembersAdd, args("users", []string{"carol"}), protocol.CodeForbidden)
	h.fail(caller("alice"), protocol.OpMembersInvite, args("users", []string{"carol"}), protocol.CodeForbidden)
}

func TestMembersRemove(t *testing.T) {
	h := modChannel(t)
	h.fail(caller("carol"), protocol.OpMembersRemove, args("users", []string{"bob"}), protocol.CodeForbidden)
	h.fail(caller("mod"), protocol.OpMembersRemove, args("users", []string{"alice"}), protocol.CodeForbidden)
	h.fail(caller("mod"), protocol.OpMembersRemove, args("users", []string{"mod"}), protocol.CodeBadRequest)
	h.fail(caller("mod"), protocol.OpMembersRemove, args("users", []string{"bob", "nobody"}), protocol.CodeNotMember)
	count := h.channel().MemberCount
	eff := h.do(caller("mod"), protocol.OpMembersRemove, args("users", []string{"bob", "carol"}))
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	if got := stopped(eff); !slices.Equal(got, []string{"gw1/bob-s1", "gw2/bob-phone"}) {
		t.Errorf("stopped %v", got)
	}
	if kinds := systemKinds(t, eff); !slices.Equal(kinds, []string{protocol.SystemMemberRemoved, protocol.SystemMemberRemoved}) {
		t.Errorf("system %v", kinds)
	}
	if !slices.Equal(eff.Notices, []Notice{{"bob", false, protocol.ReasonRemoved}, {"carol", false, protocol.ReasonRemoved}}) {
		t.Errorf("notices %v", eff.Notices)
	}
	if c := h.channel().MemberCount; c != count-2 {
		t.Errorf("member_count %d, want %d", c, count-2)
	}
	if h.record("bob") != nil {
		t.Errorf("bob's record remains")
	}
	h.fail(caller("mod"), protocol.OpMembersRemove, args("users", []string{"bob"}), protocol.CodeNotMember)
}

func TestMembersInviteAndAccept(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypePrivate, map[string]any{"members": []string{"bob"}})
	h.send("alice", "a1", "before the invitation")
	// Only moderators invite to a private channel.
	h.fail(caller("bob"), protocol.OpMembersInvite, args("users", []string{"carol"}), protocol.CodeForbidden)
	h.fail(caller("alice"), protocol.OpMembersInvite, args("users", []string{"bob"}), protocol.CodeAlreadyMember)
	eff := h.do(caller("alice"), protocol.OpMembersInvite, args("users", []string{"carol"}))
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	if names := eventNames(t, eff); !slices.Equal(names, []string{protocol.EventMemberUpdated}) {
		t.Errorf("events %v", names)
	}
	if !slices.Equal(eff.Notices, []Notice{{"carol", true, protocol.ReasonInvited}}) {
		t.Errorf("notices %v: an invitee sees the channel in channels.list", eff.Notices)
	}
	count := h.channel().MemberCount
	// The invitee sees the channel (get, channels.list) but does not read
	// it before accepting.
	if v := h.view("carol"); v.Membership != protocol.MembershipInvited {
		t.Errorf("carol's view %+v", v)
	}
	// An invitation has nothing unread, however long the channel.
	if sum := ok[protocol.Channel](h, caller("carol"), OpSummary, nil); sum.UnreadCount == nil || *sum.UnreadCount != 0 ||
		sum.Member == nil || sum.Member.UnreadCount != 0 {
		t.Errorf("carol's summary: unread %v, member %+v; want 0", sum.UnreadCount, sum.Member)
	}
	h.fail(caller("carol"), protocol.OpMessagesHistory, args(), protocol.CodeNotMember)
	h.sendFails(caller("carol"), "c1", protocol.CodeNotMember, 0)
	h.noop(caller("alice"), protocol.OpMembersInvite, args("users", []string{"carol"}))

	r := h.join(caller("carol"), nil)
	if r.Member.Membership != protocol.MembershipMember || r.Channel.MemberCount != count+1 {
		t.Errorf("accepted: %+v member_count %d", r.Member, r.Channel.MemberCount)
	}
	if n := len(r.Messages); n != 2 || r.Messages[1].System == nil || r.Messages[1].System.Kind != protocol.SystemMemberJoined {
		t.Errorf("join page %+v, want the join's system message last", r.Messages)
	}
	h.mustSend(caller("carol"), "c1")

	// Declining: an invitee leaves.
	ok[protocol.MembersResult](h, caller("alice"), protocol.OpMembersInvite, args("users", []string{"dave"}))
	eff = h.do(caller("dave"), protocol.OpChannelLeave, args())
	if eff.Err != nil || len(systemKinds(t, eff)) != 0 || h.record("dave") != nil {
		t.Fatalf("decline: %v %v", eff.Err, systemKinds(t, eff))
	}
	if c := h.channel().MemberCount; c != count+1 {
		t.Errorf("member_count %d after a declined invitation", c)
	}
}

func TestMembersInviteStandardByMembers(t *testing.T) {
	h := modChannel(t)
	ok[protocol.MembersResult](h, caller("bob"), protocol.OpMembersInvite, args("users", []string{"dave"}))
	h.fail(caller("stranger"), protocol.OpMembersInvite, args("users", []string{"erin"}), protocol.CodeForbidden)
}

func TestMemberRoles(t *testing.T) {
	h := modChannel(t)
	h.setRoles("alice2", protocol.RoleOwner)
	h.fail(caller("mod"), protocol.OpMemberRoles, args("user", "bob", "roles", []string{"moderator"}), protocol.CodeForbidden)
	h.fail(caller("alice"), protocol.OpMemberRoles, args("user", "bob", "roles", []string{}), protocol.CodeBadRequest)
	h.fail(caller("alice"), protocol.OpMemberRoles, args("user", "bob", "roles", []string{"king"}), protocol.CodeBadRequest)
	h.fail(caller("alice"), protocol.OpMemberRoles, args("user", "nobody", "roles", []string{"moderator"}), protocol.CodeNotMember)
	h.fail(caller("alice"), protocol.OpMemberRoles, args("user", "alice2", "roles", []string{"member"}), protocol.CodeForbidden)
	h.fail(caller("alice"), protocol.OpMemberRoles, args("user", "alice", "roles", []string{"member"}), protocol.CodeForbidden)

	// Bob cannot moderate until alice makes him a moderator.
	h.fail(caller("bob"), protocol.OpMemberMute, args("user", "carol", "duration_min", 1), protocol.CodeForbidden)
	eff := h.do(caller("alice"), protocol.OpMemberRoles, args("user", "bob", "roles", []string{"member", "moderator"}))
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	_, d := memberEventData(t, eff.Events[0])
	if !slices.Equal(d.Member.Roles, []string{"moderator", "member"}) || d.Actor != "alice" {
		t.Errorf("member.updated %+v", d)
	}
	h.noop(caller("alice"), protocol.OpMemberRoles, args("user", "bob", "roles", []string{"moderator", "member"}))
	ok[protocol.MemberResult](h, caller("bob"), protocol.OpMemberMute, args("user", "carol", "duration_min", 1))
	// A global admin changes an owner's roles.
	ok[protocol.MemberResult](h, admin("root"), protocol.OpMemberRoles, args("user", "alice2", "roles", []string{"member"}))
	if v := h.view("alice2"); !slices.Equal(v.Roles, []string{"member"}) {
		t.Errorf("alice2 roles %v", v.Roles)
	}
}

func TestMembersListPages(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MemberCache = 2 })
	h.create("alice", protocol.TypePrivate, nil)
	var users []string
	for i := range 12 {
		users = append(users, fmt.Sprintf("u%02d", i))
	}
	ok[protocol.MembersResult](h, caller("alice"), protocol.OpMembersAdd, args("users", users[:6]))
	// The rest are added while nothing is durable: the list must show
	// pending records, and hide one removed while pending.
	h.manual = true
	ok[protocol.MembersResult](h, caller("alice"), protocol.OpMembersAdd, args("users", users[6:]))
	ok[protocol.MembersResult](h, caller("alice"), protocol.OpMembersRemove, args("users", []string{"u03"}))
	want := append([]string{"alice"}, slices.DeleteFunc(slices.Clone(users), func(u string) bool { return u == "u03" })...)
	slices.Sort(want)
	check := func(when string) {
		t.Helper()
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("%s: no end of pages", when)
			}
			r := ok[protocol.MembersListResult](h, caller("u00"), protocol.OpMembersList, args("cursor", cursor, "limit", 5))
			if len(r.Members) > 5 {
				t.Fatalf("%s: page of %d", when, len(r.Members))
			}
			for _, m := range r.Members {
				got = append(got, m.User)
			}
			if r.Cursor == "" {
				break
			}
			cursor = r.Cursor
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: listed %v, want %v", when, got, want)
		}
	}
	check("pending")
	h.commit()
	check("committed")
	h.reload()
	check("reloaded")
	h.fail(caller("stranger"), protocol.OpMembersList, args(), protocol.CodeNotMember)
	h.fail(caller("u00"), protocol.OpMembersList, args("limit", 101), protocol.CodeBadRequest)
	h.fail(caller("u00"), protocol.OpMembersList, args("cursor", strings.Repeat("x", 200)), protocol.CodeBadRequest)
}

func TestJoinTokenPerms(t *testing.T) {
	tests := []struct {
		typ        string
		perms      []string
		membership string // the record the join writes ("" = none)
		send       protocol.Code
		moderate   bool
	}{
		{protocol.TypePrivate, []string{PermRead, PermWrite}, protocol.MembershipMember, "", false},
		{protocol.TypePrivate, []string{PermRead}, protocol.MembershipViewer, protocol.CodeForbidden, false},
		{protocol.TypePrivate, []string{PermModerate}, protocol.MembershipMember, "", true},
		{protocol.TypeConversation, []string{PermWrite}, protocol.MembershipMember, "", false},
		{protocol.TypeStandard, []string{PermRead}, protocol.MembershipViewer, protocol.CodeForbidden, false},
		{protocol.TypeLive, []string{PermRead}, "", protocol.CodeForbidden, false},
		{protocol.TypeLive, []string{PermRead, PermWrite}, "", "", false},
		{protocol.TypeLive, []string{PermModerate}, "", "", true},
		{protocol.TypeBroadcast, []string{PermWrite}, protocol.MembershipViewer, protocol.CodeForbidden, false},
		{protocol.TypeBroadcast, []string{PermModerate}, protocol.MembershipViewer, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"/"+strings.Join(tt.perms, ","), func(t *testing.T) {
			h := newHarness(t)
			h.create("alice", tt.typ, map[string]any{"members": []string{"carol"}})
			h.join(caller("carol"), nil)
			bob := tokenCaller("bob", tt.perms...)
			r := h.join(bob, nil)
			switch {
			case tt.membership == "" && !noRecord(r.Member):
				t.Errorf("joined with a record %+v, want none", r.Member)
			case tt.membership != "" && (r.Member == nil || r.Member.Membership != tt.membership):
				t.Errorf("joined as %+v, want %s", r.Member, tt.membership)
			}
			plain := caller("bob") // the same session: its grant is in force
			if tt.send != "" {
				h.sendFails(plain, "b1", tt.send, 0)
			} else {
				h.mustSend(plain, "b1")
			}
			kick := h.do(plain, protocol.OpMemberKick, args("user", "carol"))
			if (kick.Err == nil) != tt.moderate {
				t.Errorf("kick by the token session: %v, want allowed=%v", kick.Err, tt.moderate)
			}
			// Another session of bob's has no grant.
			other := session("bob", "bob-other", "gw2")
			h.fail(other, protocol.OpMemberMute, args("user", "carol", "duration_min", 1), protocol.CodeForbidden)
			// The grant ends with the watch.
			ok[struct{}](h, plain, protocol.OpChannelUnwatch, args())
			h.fail(plain, protocol.OpMemberMute, args("user", "carol", "duration_min", 1), protocol.CodeForbidden)
		})
	}
}

func TestJoinTokenGrantLifetime(t *testing.T) {
	h := modChannel(t)
	tok := tokenCaller("helper", PermModerate)
	h.join(tok, nil)
	plain := caller("helper")
	ok[protocol.MemberResult](h, plain, protocol.OpMemberMute, args("user", "carol", "duration_min", 1))
	// A plain watch of the same session replaces the grant with none.
	ok[watchResult](h, plain, protocol.OpChannelWatch, args())
	h.fail(plain, protocol.OpMemberMute, args("user", "carol", "duration_min", 2), protocol.CodeForbidden)
	// The gateway's re-watch (after the activation changed) restores it.
	ok[watchResult](h, tok, protocol.OpChannelWatch, args())
	ok[protocol.MemberResult](h, plain, protocol.OpMemberMute, args("user", "carol", "duration_min", 2))
	// A restart forgets it until the gateway re-watches.
	h.reload()
	h.fail(plain, protocol.OpMemberMute, args("user", "carol", "duration_min", 3), protocol.CodeForbidden)
	ok[watchResult](h, tok, protocol.OpChannelWatch, args())
	ok[protocol.MemberResult](h, plain, protocol.OpMemberMute, args("user", "carol", "duration_min", 3))
	// Kicked by an owner, the session loses it: watching again does not
	// bring it back.
	ok[struct{}](h, caller("alice"), protocol.OpMemberKick, args("user", "helper"))
	h.fail(plain, protocol.OpMemberMute, args("user", "carol", "duration_min", 4), protocol.CodeForbidden)
	ok[watchResult](h, plain, protocol.OpChannelWatch, args())
	h.fail(plain, protocol.OpMemberMute, args("user", "carol", "duration_min", 4), protocol.CodeForbidden)
	// A banned user's token does not help.
	ok[protocol.MemberResult](h, caller("alice"), protocol.OpMemberBan, args("user", "helper", "duration_min", 0))
	h.fail(tok, protocol.OpChannelJoin, args(), protocol.CodeBanned)
}

func TestPrivateJoinRules(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypePrivate, nil)
	h.fail(caller("bob"), protocol.OpChannelJoin, args(), protocol.CodeForbidden)
	// A read-only token joiner may later get write from another token.
	r := h.join(tokenCaller("bob", PermRead), nil)
	if r.Member.Membership != protocol.MembershipViewer {
		t.Fatalf("read token join %+v", r.Member)
	}
	// Re-joining read-only writes nothing; plain join of a viewer
	// of a private channel keeps the viewer record.
	h.noop(tokenCaller("bob", PermRead), protocol.OpChannelJoin, args())
	r = h.join(caller("bob"), nil)
	if r.Member.Membership != protocol.MembershipViewer {
		t.Errorf("plain re-join %+v", r.Member)
	}
	h.sendFails(caller("bob"), "b1", protocol.CodeForbidden, 0)
	r = h.join(tokenCaller("bob", PermWrite), nil)
	if r.Member.Membership != protocol.MembershipMember || r.Channel.MemberCount != 2 {
		t.Errorf("write token join %+v count %d", r.Member, r.Channel.MemberCount)
	}
	// As a member now, a plain session sends.
	h.mustSend(session("bob", "b2", "gw2"), "b1")
}
