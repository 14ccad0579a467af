package channel

import (
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestLiveViewersWriteNothing joins 5,000 viewers to a live channel (from
// two gateways) and checks that not one entry is appended, no event or
// notice is produced, and member_count stays: viewers are ephemeral.
// Moderation of a viewer still persists.
func TestLiveViewersWriteNothing(t *testing.T) {
	t.Parallel() // CPU-bound on its own harness: shares nothing
	const viewers = 5000
	h := newHarness(t)
	h.create("host", protocol.TypeLive, map[string]any{"attached_to": map[string]any{"stream_id": "s1"}})
	h.send("host", "h1", "welcome")
	appended := h.log.Appended()
	seq, seg := h.s.LastSeq(), h.s.LastSegment()
	join := encodeArgs(t, args())
	for i := range viewers {
		c := session(fmt.Sprint("viewer", i), fmt.Sprint("s", i), fmt.Sprint("gw", i%2))
		// Straight to Handle: the harness's per-command state
		// fingerprint costs O(watchers), too much 5,000 times over.
		eff := h.s.Handle(Command{Op: protocol.OpChannelJoin, Args: join, Caller: c}, h.now)
		if eff.Err != nil || eff.Entry != nil || len(eff.Events) > 0 || len(eff.Notices) > 0 || !eff.Watching {
			t.Fatalf("viewer %d join: err=%v entry=%v events=%d notices=%v", i, eff.Err, eff.Entry != nil, len(eff.Events), eff.Notices)
		}
	}
	if got := h.log.Appended(); got != appended {
		t.Fatalf("%d viewers appended %d entries, want 0", viewers, got-appended)
	}
	if h.s.LastSeq() != seq || h.s.LastSegment() != seg {
		t.Errorf("viewers moved seq %d→%d segment %d→%d", seq, h.s.LastSeq(), seg, h.s.LastSegment())
	}
	if n := h.s.Watchers(); n != viewers+1 {
		t.Errorf("watchers %d, want %d", n, viewers+1)
	}
	if c := h.channel(); c.MemberCount != 1 {
		t.Errorf("member_count %d, want 1 (the host)", c.MemberCount)
	}
	// Viewers may send while watching (a message is a write, of course).
	h.mustSend(session("viewer7", "s7", "gw1"), "v7")
	// Leaving writes nothing either.
	before := h.log.Appended()
	ok[struct{}](h, session("viewer8", "s8", "gw0"), protocol.OpChannelLeave, args())
	if h.log.Appended() != before {
		t.Errorf("a viewer's leave wrote")
	}
	// A moderation record of a viewer persists.
	eff := h.do(caller("host"), protocol.OpMemberMute, args("user", "viewer9", "duration_min", 0))
	if eff.Err != nil || eff.Entry == nil {
		t.Fatalf("mute of a viewer: %v", eff.Err)
	}
	h.reload()
	h.join(session("viewer9", "s9", "gw1"), nil)
	h.sendFails(session("viewer9", "s9", "gw1"), "v9", protocol.CodeMuted, 0)
}

func TestSystemMessagesInHistory(t *testing.T) {
	h := modChannel(t)
	h.join(caller("dave"), nil)                                                                               // member_joined
	ok[struct{}](h, caller("dave"), protocol.OpChannelLeave, args())                                          // member_left
	ok[struct{}](h, caller("mod"), protocol.OpMemberKick, args("user", "carol", "reason", "r1"))              // member_kicked
	ok[protocol.MemberResult](h, caller("mod"), protocol.OpMemberBan, args("user", "bob", "duration_min", 7)) // member_banned
	ok[protocol.ChannelResult](h, caller("mod"), protocol.OpChannelMute, args("duration_min", 0))             // channel_muted
	ok[protocol.ChannelResult](h, caller("mod"), protocol.OpChannelUnmute, args())                            // channel_unmuted
	h.reload()
	msgs := h.history(caller("alice"), nil).Messages
	want := []protocol.SystemInfo{
		{Kind: protocol.SystemMemberJoined, User: "dave"},
		{Kind: protocol.SystemMemberLeft, User: "dave"},
		{Kind: protocol.SystemMemberKicked, User: "carol", Actor: "mod", Reason: "r1"},
		{Kind: protocol.SystemMemberBanned, User: "bob", Actor: "mod", DurationMin: 7},
		{Kind: protocol.SystemChannelMuted, Actor: "mod"},
		{Kind: protocol.SystemChannelUnmuted, Actor: "mod"},
	}
	if len(msgs) != len(want) {
		t.Fatalf("history has %d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		if m.Type != protocol.MessageSystem || m.System == nil || *m.System != want[i] || m.Segment != uint64(i+1) || m.Text == "" {
			t.Errorf("message %d: %+v system %+v, want %+v", i, m, m.System, want[i])
		}
	}
	if !slices.Equal([]string{msgs[2].Text, msgs[3].Text}, []string{"mod removed carol (kick): r1", "mod banned bob for 7 min"}) {
		t.Errorf("texts %q %q", msgs[2].Text, msgs[3].Text)
	}
	// System messages cannot be edited or sent by clients.
	h.fail(caller("mod"), protocol.OpMessageEdit, args("message_id", msgs[4].ID, "text", "x"), protocol.CodeForbidden)
	h.fail(caller("alice"), protocol.OpMessageSend, args("client_id", "s", "type", "system", "text", "fake"), protocol.CodeBadRequest)
	if c := h.channel(); c.MessageCount != 6 || c.LastSegment != 6 {
		t.Errorf("counters %d/%d", c.MessageCount, c.LastSegment)
	}
}
