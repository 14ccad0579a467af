package channel

import (
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// A distinct conversation is reopened by creating it again: the caller,
// if it had left, comes back as a member (channel.added, reason created);
// OpOpen (sending to a user) brings back the other side too, unless
// banned. Nobody outside the member set gets in.
func TestDistinctConversationReopens(t *testing.T) {
	id := DistinctID([]string{"alice", "bob"})
	h := newHarnessFor(t, id)
	dm := func(others ...string) map[string]any {
		return map[string]any{"type": protocol.TypeConversation, "distinct": true, "members": others}
	}
	c := ok[protocol.ChannelCreateResult](h, caller("alice"), protocol.OpChannelCreate, dm("bob"))
	if !c.Created || c.Channel.MemberCount != 2 {
		t.Fatalf("create: %+v", c)
	}
	// The creator, its only owner, may leave a distinct conversation.
	h.do(caller("alice"), protocol.OpChannelLeave, map[string]any{"channel": id})
	eff := h.do(caller("alice"), protocol.OpChannelCreate, dm("bob"))
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	if !slices.Equal(eff.Notices, []Notice{{"alice", true, protocol.ReasonCreated}}) || len(eff.NoticeChannel) == 0 {
		t.Fatalf("notices %v (channel %s)", eff.Notices, eff.NoticeChannel)
	}
	again := ok[protocol.ChannelCreateResult](h, caller("alice"), protocol.OpChannelCreate, dm("bob"))
	if again.Created || again.Member.Membership != protocol.MembershipMember || again.Channel.MemberCount != 2 {
		t.Fatalf("reopened: %+v %+v", again.Channel, again.Member)
	}
	// Bob leaves; alice's create leaves him out, her open brings him back.
	h.do(caller("bob"), protocol.OpChannelLeave, map[string]any{"channel": id})
	if r := ok[protocol.ChannelCreateResult](h, caller("alice"), protocol.OpChannelCreate, dm("bob")); r.Channel.MemberCount != 1 {
		t.Fatalf("a create brought bob back: %+v", r.Channel)
	}
	eff = h.do(Caller{User: "alice"}, OpOpen, map[string]any{"users": []string{"bob"}})
	if eff.Err != nil || !slices.Equal(eff.Notices, []Notice{{"bob", true, protocol.ReasonCreated}}) {
		t.Fatalf("open: %v %v", eff.Err, eff.Notices)
	}
	if eff.Watching {
		t.Fatal("an open without a session watches")
	}
	// A banned side stays out, and a banned caller is refused. (Alice,
	// back as a plain member, moderates nothing: an admin bans.)
	h.fail(caller("alice"), protocol.OpMemberBan, map[string]any{"channel": id, "user": "bob", "duration_min": 0}, protocol.CodeForbidden)
	ok[protocol.MemberResult](h, admin("root"), protocol.OpMemberBan, map[string]any{"channel": id, "user": "bob", "duration_min": 0})
	if eff := h.do(Caller{User: "alice"}, OpOpen, map[string]any{"users": []string{"bob"}}); eff.Err != nil || len(eff.Notices) != 0 {
		t.Fatalf("open with bob banned: %v %v", eff.Err, eff.Notices)
	}
	h.fail(caller("bob"), protocol.OpChannelCreate, dm("alice"), protocol.CodeBanned)
	// Whoever is not of the set is refused, whatever it names.
	h.fail(caller("eve"), protocol.OpChannelCreate, dm("bob"), protocol.CodeForbidden)
	h.fail(caller("eve"), protocol.OpChannelCreate, dm("alice", "bob"), protocol.CodeForbidden)
}

// Over HTTP a create or a join watches nothing.
func TestCreateAndJoinWithoutASession(t *testing.T) {
	h := newHarness(t)
	eff := h.do(Caller{User: "alice"}, protocol.OpChannelCreate, map[string]any{"type": protocol.TypeStandard})
	if eff.Err != nil || eff.Watching || h.s.Watchers() != 0 {
		t.Fatalf("create: %v watching=%v watchers=%d", eff.Err, eff.Watching, h.s.Watchers())
	}
	eff = h.do(Caller{User: "bob"}, protocol.OpChannelJoin, map[string]any{"channel": channelID})
	if eff.Err != nil || eff.Watching || h.s.Watchers() != 0 {
		t.Fatalf("join: %v watching=%v watchers=%d", eff.Err, eff.Watching, h.s.Watchers())
	}
	if !slices.Equal(eff.Notices, []Notice{{"bob", true, protocol.ReasonJoined}}) {
		t.Fatalf("join notices %v", eff.Notices)
	}
}

// A deleted channel tells its members (channel.removed, deleted).
func TestDeleteNoticesMembers(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypePrivate, map[string]any{"members": []string{"bob", "carol"}})
	h.do(caller("alice"), protocol.OpMembersInvite, map[string]any{"channel": channelID, "users": []string{"dave"}})
	eff := h.do(caller("alice"), protocol.OpChannelDelete, map[string]any{"channel": channelID})
	want := []Notice{{"alice", false, protocol.ReasonDeleted}, {"bob", false, protocol.ReasonDeleted}, {"carol", false, protocol.ReasonDeleted}, {"dave", false, protocol.ReasonDeleted}}
	if eff.Err != nil || !slices.Equal(eff.Notices, want) {
		t.Fatalf("delete: %v notices %v", eff.Err, eff.Notices)
	}
}

// read.mark {message_id} marks up to that message.
func TestReadMarkMessageID(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	h.join(caller("bob"), nil)
	m1 := h.send("alice", "a", "one")
	h.send("alice", "b", "two")
	r := ok[protocol.MemberResult](h, caller("bob"), protocol.OpReadMark, map[string]any{"channel": channelID, "message_id": m1.ID})
	if r.Member.ReadSegment != m1.Segment || r.Member.UnreadCount != 1 {
		t.Fatalf("read.mark to %s: %+v", m1.ID, r.Member)
	}
	h.fail(caller("bob"), protocol.OpReadMark, map[string]any{"channel": channelID, "message_id": "9-00"}, protocol.CodeNotFound)
	h.fail(caller("bob"), protocol.OpReadMark, map[string]any{"channel": channelID, "message_id": m1.ID, "segment": 1}, protocol.CodeBadRequest)
}

// A server API key acting as itself (an admin with no user) is told
// without a name in system messages.
func TestSystemTextWithoutAnActor(t *testing.T) {
	for _, tt := range []struct {
		info protocol.SystemInfo
		want string
	}{
		{protocol.SystemInfo{Kind: protocol.SystemMemberAdded, User: "bob"}, "bob was added"},
		{protocol.SystemInfo{Kind: protocol.SystemMemberAdded, User: "bob", Actor: "alice"}, "alice added bob"},
		{protocol.SystemInfo{Kind: protocol.SystemMemberKicked, User: "bob", Reason: "spam"}, "bob was removed (kick): spam"},
		{protocol.SystemInfo{Kind: protocol.SystemChannelMuted, DurationMin: 5}, "the channel was muted for 5 min"},
	} {
		if got := systemText(tt.info); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.info, got, tt.want)
		}
	}
}
