package channel

import (
	"encoding/json"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestSoleOwnerCannotLeave: a channel is never left without an owner by
// its owners; with a second owner (made by an admin) the first may go.
func TestSoleOwnerCannotLeave(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	h.join(caller("bob"), nil)
	h.fail(caller("alice"), protocol.OpChannelLeave, map[string]any{"channel": channelID}, protocol.CodeInvalidState)
	ok[protocol.MemberResult](h, admin("root"), protocol.OpMemberRoles, args("user", "bob", "roles", []string{protocol.RoleOwner}))
	ok[json.RawMessage](h, caller("alice"), protocol.OpChannelLeave, map[string]any{"channel": channelID})
	h.fail(caller("bob"), protocol.OpChannelLeave, map[string]any{"channel": channelID}, protocol.CodeInvalidState)
}

// TestOwnSystemMessagesAreNotUnread: what a member does (here a channel
// mute, which posts a system message in their name) is never unread to
// them, while it is to the others.
func TestOwnSystemMessagesAreNotUnread(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	h.join(caller("bob"), nil)
	ok[json.RawMessage](h, caller("alice"), protocol.OpChannelMute, map[string]any{"channel": channelID, "duration_min": 5})
	if s := summary(h, "alice"); *s.UnreadCount != 0 {
		t.Errorf("alice's own mute is unread to her: %d", *s.UnreadCount)
	}
	if s := summary(h, "bob"); *s.UnreadCount == 0 {
		t.Error("alice's mute is not unread to bob")
	}
}

// TestDeleteDoesNotSetEditedAt: a deletion is not an edit.
func TestDeleteDoesNotSetEditedAt(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	m := h.send("alice", "c1", "x")
	d := ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": m.ID}).Message
	if !d.Deleted || !d.EditedAt.IsZero() {
		t.Fatalf("deleted %v edited_at %v", d.Deleted, d.EditedAt)
	}
}

// TestHistoryBeforeZeroIsEmpty: nothing lies below segment 0.
func TestHistoryBeforeZeroIsEmpty(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	h.send("alice", "c1", "x")
	if r := h.history(caller("alice"), map[string]any{"before": 0}); len(r.Messages) != 0 || r.HasMore {
		t.Fatalf("before 0: %d messages, has_more %v", len(r.Messages), r.HasMore)
	}
}

// TestReplyDeletionNamesItsActor: the parent's message.updated after a
// reply is deleted says who deleted it.
func TestReplyDeletionNamesItsActor(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	h.join(caller("bob"), nil)
	parent := h.send("alice", "p", "parent")
	reply := ok[messageResult](h, caller("bob"), protocol.OpMessageSend, map[string]any{"channel": channelID, "client_id": "r", "text": "reply", "parent_id": parent.ID}).Message
	eff := h.do(caller("bob"), protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": reply.ID})
	for _, e := range eff.Events {
		f := decodeFrame(t, e.Frame)
		if f.Event != protocol.EventMessageUpdated {
			continue
		}
		var d struct {
			Message protocol.Message `json:"message"`
			Actor   string           `json:"actor"`
		}
		_ = json.Unmarshal(f.Data, &d)
		if d.Message.ID == parent.ID && d.Actor != "bob" {
			t.Fatalf("parent update actor %q, want bob", d.Actor)
		}
		return
	}
	t.Fatal("no message.updated for the parent")
}
