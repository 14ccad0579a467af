package channel

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

func summary(h *harness, user string) protocol.Channel {
	h.t.Helper()
	return ok[protocol.Channel](h, caller(user), OpSummary, nil)
}

// TestMentions: mentions of members advance their last_mentioned_segment
// and raise the mentioned flag until they read past it; ids of users who
// are not in the channel are dropped from the message, not refused.
func TestMentions(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	h.join(caller("bob"), nil)
	h.join(caller("carol"), nil)
	m := ok[messageResult](h, caller("alice"), protocol.OpMessageSend, map[string]any{
		"channel": channelID, "client_id": "m1", "text": "hey @bob @stranger",
		"mentions": []string{"bob", "stranger", "bob", "alice"},
	}).Message
	if !slices.Equal(m.Mentions, []string{"bob", "alice"}) {
		t.Fatalf("mentions %v: want non-members dropped and repeats once", m.Mentions)
	}
	for _, restart := range []bool{false, true} {
		if restart {
			h.reload()
		}
		bob := summary(h, "bob")
		if bob.Member.LastMentionedSegment != m.Segment || bob.Mentioned == nil || !*bob.Mentioned {
			t.Errorf("restart=%v: bob %+v mentioned %v", restart, bob.Member, bob.Mentioned)
		}
		if carol := summary(h, "carol"); *carol.Mentioned || carol.Member.LastMentionedSegment != 0 {
			t.Errorf("carol was not mentioned: %+v", carol.Member)
		}
		if a := summary(h, "alice"); *a.Mentioned {
			t.Errorf("alice mentioned herself: flag set")
		}
	}
	// Reading past the mention clears the flag; the segment stays.
	ok[protocol.MemberResult](h, caller("bob"), protocol.OpReadMark, map[string]any{"channel": channelID})
	if bob := summary(h, "bob"); *bob.Mentioned || bob.Member.LastMentionedSegment != m.Segment {
		t.Errorf("after read.mark: %+v mentioned %v", bob.Member, *bob.Mentioned)
	}
	// A mention in a reply counts too.
	r := ok[messageResult](h, caller("carol"), protocol.OpMessageSend, map[string]any{
		"channel": channelID, "client_id": "r", "text": "@bob", "parent_id": m.ID, "mentions": []string{"bob"},
	}).Message
	if bob := summary(h, "bob"); !*bob.Mentioned || bob.Member.LastMentionedSegment != r.Segment {
		t.Errorf("after a reply's mention: %+v", bob.Member)
	}

	many := make([]string, 51)
	for i := range many {
		many[i] = fmt.Sprint("u", i)
	}
	h.fail(caller("alice"), protocol.OpMessageSend, map[string]any{"channel": channelID, "client_id": "x", "text": "x", "mentions": many}, protocol.CodeTooLarge)
	h.fail(caller("alice"), protocol.OpMessageSend, map[string]any{"channel": channelID, "client_id": "x", "text": "x", "mentions": []string{"has space"}}, protocol.CodeBadRequest)
	h.fail(caller("alice"), protocol.OpMessageSend, map[string]any{"channel": channelID, "client_id": "x", "text": "x", "mentions": []string{strings.Repeat("u", 129)}}, protocol.CodeTooLong)
}

// TestMessagePayloads: types, data, metadata and tags, with their bounds.
func TestMessagePayloads(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	n := 0
	send := func(extra map[string]any) *Effects {
		n++
		args := map[string]any{"channel": channelID, "client_id": fmt.Sprint("c", n)}
		for k, v := range extra {
			args[k] = v
		}
		return h.do(caller("alice"), protocol.OpMessageSend, args)
	}
	for _, typ := range []string{"text", "image", "video", "file", "audio", "custom"} {
		if eff := send(map[string]any{"type": typ, "text": "x"}); eff.Err != nil {
			t.Errorf("type %s: %v", typ, eff.Err)
		}
	}
	eff := send(map[string]any{"type": "json", "data": map[string]any{"k": []int{1, 2}}, "metadata": map[string]any{"m": true}, "tags": []string{"a", "b"}})
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	var r messageResult
	_ = decodeInto(eff.Result, &r)
	if r.Message.Type != "json" || string(r.Message.Data) != `{"k":[1,2]}` || string(r.Message.Metadata) != `{"m":true}` || !slices.Equal(r.Message.Tags, []string{"a", "b"}) {
		t.Errorf("json message %+v", r.Message)
	}
	cases := []struct {
		extra map[string]any
		code  protocol.Code
	}{
		{map[string]any{"type": "system", "text": "x"}, protocol.CodeBadRequest},
		{map[string]any{"type": "gif", "text": "x"}, protocol.CodeBadRequest},
		{map[string]any{"type": "json", "text": "no data"}, protocol.CodeBadRequest},
		{map[string]any{"data": []int{1}}, protocol.CodeBadRequest},
		{map[string]any{"text": "x", "metadata": "str"}, protocol.CodeBadRequest},
		{map[string]any{"data": map[string]string{"k": strings.Repeat("d", 9000)}}, protocol.CodeTooLarge},
		{map[string]any{"text": "x", "metadata": map[string]string{"k": strings.Repeat("d", 9000)}}, protocol.CodeTooLarge},
		{map[string]any{"text": "x", "tags": make([]string, 17)}, protocol.CodeTooLarge},
		{map[string]any{"text": "x", "tags": []string{strings.Repeat("t", 201)}}, protocol.CodeTooLong},
		{map[string]any{"text": strings.Repeat("t", 4001)}, protocol.CodeTooLong},
		{map[string]any{}, protocol.CodeBadRequest},
	}
	for i, c := range cases {
		if eff := send(c.extra); eff.Err == nil || eff.Err.Code != c.code {
			t.Errorf("case %d: %v, want %s", i, eff.Err, c.code)
		}
	}
}

// TestAttachments: a send the gateway resolved embeds its files; only the
// uploader's own files attach; readers of the channel may fetch a file
// sent in it until its message is deleted.
func TestAttachments(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypePrivate, map[string]any{"members": []string{"bob"}})
	file := func(id, owner string) AttachedFile {
		return AttachedFile{File: protocol.File{ID: id, URL: "/v1/files/" + id, Type: "image", Name: "cat.png", Size: 42, MIME: "image/png"}, Owner: owner}
	}
	sendFiles := func(c Caller, clientID string, ids []string, files ...AttachedFile) *Effects {
		inner := encodeArgs(t, map[string]any{"channel": channelID, "client_id": clientID, "attachments": ids})
		return h.do(c, OpSendFiles, SendFilesArgs{Args: inner, Files: files})
	}
	eff := sendFiles(caller("alice"), "a", []string{"f1", "f2"}, file("f2", "alice"), file("f1", "alice"))
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	var r messageResult
	_ = decodeInto(eff.Result, &r)
	if len(r.Message.Attachments) != 2 || r.Message.Attachments[0].ID != "f1" || r.Message.Attachments[1] != file("f2", "alice").File {
		t.Fatalf("attachments %+v", r.Message.Attachments)
	}
	if h.history(caller("bob"), nil).Messages[0].Attachments[0].Name != "cat.png" {
		t.Error("history lost the attachments")
	}
	h.fail(caller("alice"), OpSendFiles, SendFilesArgs{Args: encodeArgs(t, map[string]any{"channel": channelID, "client_id": "b", "attachments": []string{"f3"}}), Files: []AttachedFile{file("f3", "bob")}}, protocol.CodeForbidden)
	h.fail(caller("alice"), OpSendFiles, SendFilesArgs{Args: encodeArgs(t, map[string]any{"channel": channelID, "client_id": "b", "attachments": []string{"f4"}})}, protocol.CodeNotFound)
	// A plain message.send cannot carry attachments: the gateway resolves them.
	h.fail(caller("alice"), protocol.OpMessageSend, map[string]any{"channel": channelID, "client_id": "b", "attachments": []string{"f1"}}, protocol.CodeBadRequest)
	tooMany := make([]string, 11)
	for i := range tooMany {
		tooMany[i] = fmt.Sprint("f", i)
	}
	h.fail(caller("alice"), OpSendFiles, SendFilesArgs{Args: encodeArgs(t, map[string]any{"channel": channelID, "client_id": "b", "attachments": tooMany})}, protocol.CodeTooLarge)

	check := func(c Caller, id string, code protocol.Code) {
		t.Helper()
		if code == "" {
			ok[struct{ Segment uint64 }](h, c, OpFileCheck, FileCheckArgs{File: id})
			return
		}
		h.fail(c, OpFileCheck, FileCheckArgs{File: id}, code)
	}
	h.reload()
	check(caller("bob"), "f1", "")
	check(admin("root"), "f2", "")
	check(caller("eve"), "f1", protocol.CodeNotMember)
	check(caller("bob"), "f9", protocol.CodeNotFound)
	ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": r.Message.ID})
	check(caller("bob"), "f1", protocol.CodeNotFound)
}

// TestReadMark: read_segment moves forward only; a move is announced by
// an ephemeral read event and lowers unread_count.
func TestReadMark(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	h.join(caller("bob"), nil)
	for i := 0; i < 5; i++ {
		h.send("alice", fmt.Sprint("c", i), "x")
	}
	mark := func(seg any) (protocol.MemberResult, *Effects) {
		args := map[string]any{"channel": channelID}
		if seg != nil {
			args["segment"] = seg
		}
		eff := h.do(caller("bob"), protocol.OpReadMark, args)
		if eff.Err != nil {
			t.Fatal(eff.Err)
		}
		var r protocol.MemberResult
		_ = decodeInto(eff.Result, &r)
		return r, eff
	}
	r, eff := mark(3)
	if r.Member.ReadSegment != 3 || r.Member.UnreadCount != 2 || len(eff.Events) != 1 || eff.Events[0].Seq != 0 {
		t.Fatalf("mark 3: %+v events %+v", r.Member, eff.Events)
	}
	if f := decodeFrame(t, eff.Events[0].Frame); f.Event != protocol.EventRead || string(f.Data) != `{"user":"bob","segment":3}` {
		t.Errorf("read event %s %s", f.Event, f.Data)
	}
	if r, eff := mark(2); r.Member.ReadSegment != 3 || len(eff.Events) != 0 || eff.Entry != nil {
		t.Errorf("backwards: %+v, %d events", r.Member, len(eff.Events))
	}
	if r, _ := mark(99); r.Member.ReadSegment != 5 || r.Member.UnreadCount != 0 {
		t.Errorf("past the end: %+v", r.Member)
	}
	h.send("alice", "more", "x")
	h.send("bob", "own", "x")
	h.send("alice", "more2", "x")
	h.reload()
	if s := summary(h, "bob"); *s.UnreadCount != 1 || s.Member.ReadSegment != 7 {
		t.Errorf("bob's own message is not unread: %+v unread %d", s.Member, *s.UnreadCount)
	}
	if r, _ := mark(nil); r.Member.ReadSegment != 8 || r.Member.UnreadCount != 0 {
		t.Errorf("mark all: %+v", r.Member)
	}
	h.fail(caller("eve"), protocol.OpReadMark, map[string]any{"channel": channelID}, protocol.CodeNotMember)
}

func decodeInto(b []byte, v any) error { return json.Unmarshal(b, v) }
