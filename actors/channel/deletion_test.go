package channel

import (
	"encoding/json"
	"testing"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// What a deletion removes: reactions, favorites and file records.

// TestSharedFileOutlivesOneOfItsMessages: a file sent in two messages
// stays readable until the last of them is deleted, across restarts; a
// file record written before files kept their messages still counts.
func TestSharedFileOutlivesOneOfItsMessages(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypePrivate, map[string]any{"members": []string{"bob"}})
	f := AttachedFile{File: protocol.File{ID: "f1", URL: "/v1/files/f1", Type: "image", Name: "cat.png", Size: 42, MIME: "image/png"}, Owner: "alice"}
	sendFile := func(clientID string) protocol.Message {
		inner := encodeArgs(t, map[string]any{"channel": channelID, "client_id": clientID, "attachments": []string{f.ID}})
		return ok[messageResult](h, caller("alice"), OpSendFiles, SendFilesArgs{Args: inner, Files: []AttachedFile{f}}).Message
	}
	readable := func(want bool) {
		t.Helper()
		if want {
			ok[struct{ Segment uint64 }](h, caller("bob"), OpFileCheck, FileCheckArgs{File: f.ID})
			return
		}
		h.fail(caller("bob"), OpFileCheck, FileCheckArgs{File: f.ID}, protocol.CodeNotFound)
	}
	del := func(m protocol.Message) {
		t.Helper()
		ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, args("message_id", m.ID))
	}
	first, second, third := sendFile("a"), sendFile("b"), sendFile("c")
	del(second)
	readable(true)
	h.reload()
	readable(true)
	del(first)
	h.reload()
	readable(true)
	del(third)
	readable(false)
	h.reload()
	readable(false)

	// The former record shape: one record naming one message.
	legacy := sendFile("d")
	later := sendFile("e")
	e := &persistence.Entry{}
	e.Del(persistence.TableAux, fileSegKey(f.ID, legacy.Segment))
	e.Put(persistence.TableAux, fileKey(f.ID), encode(legacy.Segment))
	h.apply(e)
	h.load()
	del(later)
	readable(true) // through the former record
	del(legacy)
	readable(false)
	h.reload()
	readable(false)
}

// auxKeys lists the stored aux keys that start with prefix.
func auxKeys(t *testing.T, h *harness, prefix string) []string {
	t.Helper()
	recs, err := h.log.Scan(persistence.TableAux, persistence.Range{After: []byte(prefix), Before: prefixEnd([]byte(prefix))})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Key))
	}
	return out
}

// TestDeletionClearsReactionsAndFavorites: a deleted message keeps no
// reactions or favorites, and its users' counts (the favorites budget
// among them) drop with them.
func TestDeletionClearsReactionsAndFavorites(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Rich.MaxFavorites = 1; c.Rich.AuxCache = 1 })
	h.create("alice", protocol.TypeStandard, nil)
	h.join(caller("bob"), nil)
	h.join(caller("carol"), nil)
	m := h.send("alice", "m", "hello")
	keep := h.send("alice", "k", "kept")
	h.react(caller("bob"), protocol.OpReactionAdd, m.ID, "up")
	h.react(caller("bob"), protocol.OpReactionAdd, m.ID, "heart")
	h.react(caller("carol"), protocol.OpReactionAdd, m.ID, "up")
	h.react(caller("carol"), protocol.OpReactionAdd, keep.ID, "up")
	ok[struct{}](h, caller("bob"), protocol.OpMessageFavorite, args("message_id", m.ID, "on", true))
	h.fail(caller("bob"), protocol.OpMessageFavorite, args("message_id", keep.ID, "on", true), protocol.CodeTooLarge)
	h.reload()

	eff := h.do(caller("alice"), protocol.OpMessageDelete, args("message_id", m.ID))
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	var d messageResult
	_ = json.Unmarshal(decodeFrame(t, eff.Events[0].Frame).Data, &d)
	if !d.Message.Deleted || len(d.Message.Reactions) != 0 {
		t.Fatalf("message.deleted %+v", d.Message)
	}
	for _, reload := range []bool{false, true} {
		if reload {
			h.reload()
		}
		for _, pre := range []string{string(msgReactPrefix(m.Segment)), nsMsgFav, nsFav, string(reactUserPrefix("bob")), string(countKey("bob"))} {
			if keys := auxKeys(t, h, pre); len(keys) != 0 {
				t.Errorf("reload=%v: %q left behind", reload, keys)
			}
		}
		if keys := auxKeys(t, h, string(reactUserPrefix("carol"))); len(keys) != 1 || len(auxKeys(t, h, nsMsgReact)) != 1 {
			t.Errorf("carol's other reaction: %q", keys)
		}
		if uc, err := h.s.userCounts("carol"); err != nil || uc.Reactions != 1 {
			t.Errorf("carol's counts %+v %v", uc, err)
		}
		hist := h.history(caller("bob"), nil).Messages
		for _, hm := range hist {
			if hm.ID == m.ID && (len(hm.Reactions) != 0 || len(hm.MyReactions) != 0 || *hm.Favorite) {
				t.Errorf("history shows the deleted message with %+v", hm)
			}
		}
	}
	// Bob's favorite no longer takes his budget.
	ok[struct{}](h, caller("bob"), protocol.OpMessageFavorite, args("message_id", keep.ID, "on", true))
}

// TestDeletionReadFailureRefuses: the deletion's reads come before its
// writes, so a failed one refuses it whole, for an author's delete and for
// a deletion by flags alike.
func TestDeletionReadFailureRefuses(t *testing.T) {
	for _, op := range []string{protocol.OpMessageDelete, protocol.OpMessageFlag} {
		t.Run(op, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Rich.AuxCache = 1 })
			h.create("alice", protocol.TypeStandard, nil)
			h.join(caller("bob"), nil)
			ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, args("auto_delete_flags", 1))
			m := h.send("alice", "m", "hello")
			h.react(caller("bob"), protocol.OpReactionAdd, m.ID, "up")
			fr := h.failLater(persistence.TableAux)
			c := caller("alice")
			if op == protocol.OpMessageFlag {
				c = caller("bob")
			}
			fr.on = true
			h.fail(c, op, args("message_id", m.ID), protocol.CodeInternal)
			fr.on = false
			ok[json.RawMessage](h, c, op, args("message_id", m.ID))
			if keys := auxKeys(t, h, nsMsgReact); len(keys) != 0 {
				t.Errorf("left behind: %q", keys)
			}
		})
	}
}
