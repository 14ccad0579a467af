package channel

import (
	"fmt"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

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
