package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// End-to-end checks of the channel rules an audit tightened: who may edit,
// delete, react and reply, reserved ids, setting caps, shared files and
// join-token rights, over real WebSockets against an in-process node.

func TestChannelRulesE2E(t *testing.T) {
	n := testNode(t)
	cs := setup(t, n, "rules", protocol.TypeStandard, "alice", "bob")
	alice, bob := cs[0], cs[1]
	ctx := ctxT(t)
	m, err := bob.Send(ctx, sendArgs("rules", "mine"))
	if err != nil {
		t.Fatal(err)
	}
	edit := a("rules", "message_id", m.ID, "text", "edited")

	// Muted authors do not edit or react; unmuted, they edit again.
	expect(t, alice, protocol.OpMemberMute, a("rules", "user", "bob", "duration_min", 5), "")
	expect(t, bob, protocol.OpMessageEdit, edit, protocol.CodeMuted)
	expect(t, bob, protocol.OpReactionAdd, a("rules", "message_id", m.ID, "name", "up"), protocol.CodeMuted)
	expect(t, alice, protocol.OpMemberUnmute, a("rules", "user", "bob"), "")
	expect(t, bob, protocol.OpMessageEdit, edit, "")
	// Gone, they neither edit nor delete.
	if err := bob.Leave(ctx, "rules"); err != nil {
		t.Fatal(err)
	}
	expect(t, bob, protocol.OpMessageEdit, edit, protocol.CodeNotMember)
	expect(t, bob, protocol.OpMessageDelete, a("rules", "message_id", m.ID), protocol.CodeNotMember)
	if _, err := bob.Join(ctx, "rules"); err != nil {
		t.Fatal(err)
	}

	// Reactions count against the channel's rate limit with messages.
	expect(t, alice, protocol.OpChannelUpdate, a("rules", "rate_limit", map[string]any{"count": 2, "window_ms": 60000}), "")
	expect(t, bob, protocol.OpReactionAdd, a("rules", "message_id", m.ID, "name", "a"), "")
	expect(t, bob, protocol.OpReactionAdd, a("rules", "message_id", m.ID, "name", "b"), "")
	err = bob.Call(ctx, protocol.OpReactionAdd, a("rules", "message_id", m.ID, "name", "c"), nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeRateLimited || pe.RetryAfterMS <= 0 {
		t.Fatalf("third reaction: %v", err)
	}
	expect(t, bob, protocol.OpMessageSend, a("rules", "client_id", "over", "text", "x"), protocol.CodeRateLimited)

	// Caps and ids.
	expect(t, alice, protocol.OpChannelUpdate, a("rules", "slow_mode_ms", int64(6*time.Hour/time.Millisecond)+1), protocol.CodeBadRequest)
	expect(t, alice, protocol.OpChannelUpdate, a("rules", "rate_limit", map[string]any{"count": 1, "window_ms": int64(1) << 62}), protocol.CodeBadRequest)
	expect(t, alice, protocol.OpChannelUpdate, a("rules", "attached_to", map[string]any{"stream_id": "not an id"}), protocol.CodeBadRequest)
	expect(t, alice, protocol.OpChannelCreate, map[string]any{"id": "dm-0123456789abcdef01234567", "type": "conversation", "members": []string{"bob"}}, protocol.CodeBadRequest)
	expect(t, alice, protocol.OpChannelCreate, map[string]any{"type": "conversation", "distinct": true, "members": []string{"bob"}}, "")

	// No reply under a deleted message.
	expect(t, alice, protocol.OpChannelUpdate, a("rules", "rate_limit", map[string]any{"count": 0, "window_ms": 0}), "")
	expect(t, alice, protocol.OpMessageDelete, a("rules", "message_id", m.ID), "")
	expect(t, alice, protocol.OpMessageSend, a("rules", "client_id", "r", "text", "late", "parent_id", m.ID), protocol.CodeInvalidState)

	// Lifting what a user without a record does not have.
	for _, op := range []string{protocol.OpMemberUnmute, protocol.OpMemberUnban} {
		if res := expect(t, alice, op, a("rules", "user", "nobody"), ""); string(res) != `{"member":null}` {
			t.Errorf("%s of nobody: %s", op, res)
		}
	}
}

// TestSharedFileE2E: a file sent in two messages is readable by the
// channel until the last of them is deleted.
func TestSharedFileE2E(t *testing.T) {
	n := testNode(t)
	cs := setup(t, n, "files", protocol.TypePrivate, "alice", "bob")
	alice := cs[0]
	ctx := ctxT(t)
	f := mustUpload(t, n, "Dev alice", "cat.png", "image/png", png)
	var ms []*protocol.Message
	for _, text := range []string{"once", "twice"} {
		m, err := alice.Send(ctx, protocol.SendArgs{Channel: "files", Text: text, Attachments: []string{f.ID}})
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	bobReads := func() int {
		status, _, _ := download(t, n, "Dev bob", f.URL)
		return status
	}
	expect(t, alice, protocol.OpMessageDelete, a("files", "message_id", ms[0].ID), "")
	if s := bobReads(); s != http.StatusOK {
		t.Fatalf("after deleting one of two messages: %d", s)
	}
	expect(t, alice, protocol.OpMessageDelete, a("files", "message_id", ms[1].ID), "")
	if s := bobReads(); s != http.StatusForbidden {
		t.Fatalf("after deleting both: %d", s)
	}
}

// TestJoinTokenRightsE2E: a read-only token does not take a member's
// send rights; a token moderator ranks as a moderator when targeted.
func TestJoinTokenRightsE2E(t *testing.T) {
	n := authNode(t)
	alice := dialAs(t, n, "alice", false)
	bob := dialAs(t, n, "bob", false)
	mod := dialAs(t, n, "mod", false)
	dave := dialAs(t, n, "dave", false)
	expect(t, alice, protocol.OpChannelCreate, map[string]any{"id": "stage", "type": "private", "members": []string{"bob", "mod"}}, "")
	expect(t, alice, protocol.OpMemberRoles, a("stage", "user", "mod", "roles", []string{"moderator"}), "")
	expect(t, mod, protocol.OpChannelJoin, a("stage"), "")

	res := expect(t, bob, protocol.OpChannelJoin, map[string]any{"token": mintJoin(t, "bob", "stage", "read")}, "")
	var jr protocol.WatchResult
	if err := json.Unmarshal(res, &jr); err != nil || jr.Member == nil || jr.Member.Membership != protocol.MembershipMember {
		t.Fatalf("member's read token join: %s", res)
	}
	expect(t, bob, protocol.OpMessageSend, a("stage", "client_id", "b1", "text", "still here"), "")

	expect(t, dave, protocol.OpChannelJoin, map[string]any{"token": mintJoin(t, "dave", "stage", "moderate")}, "")
	expect(t, mod, protocol.OpMemberMute, a("stage", "user", "dave", "duration_min", 1), protocol.CodeForbidden)
	expect(t, dave, protocol.OpMemberMute, a("stage", "user", "mod", "duration_min", 1), protocol.CodeForbidden)
	expect(t, alice, protocol.OpMemberMute, a("stage", "user", "dave", "duration_min", 1), "")
}
