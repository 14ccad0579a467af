package channel

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

func (h *harness) reply(user, clientID, parentID string) protocol.Message {
	h.t.Helper()
	return ok[messageResult](h, caller(user), protocol.OpMessageSend,
		map[string]any{"channel": channelID, "client_id": clientID, "text": "re: " + parentID, "parent_id": parentID}).Message
}

func TestReplies(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	parent := h.send("alice", "p", "parent")
	r1 := h.reply("alice", "r1", parent.ID)
	if r1.Segment != 2 || r1.ParentID != parent.ID {
		t.Fatalf("reply %+v, want segment 2 in the thread of %s", r1, parent.ID)
	}
	h.send("alice", "top", "top level")
	// A resend of a reply counts once.
	if again := h.reply("alice", "r1", parent.ID); again.ID != r1.ID {
		t.Fatalf("resend of a reply made %s", again.ID)
	}
	h.reply("alice", "r2", parent.ID)
	for _, restart := range []bool{false, true} {
		if restart {
			h.reload()
		}
		hist := h.history(caller("alice"), nil)
		if !slices.Equal(segments(hist.Messages), []uint64{1, 2, 3, 4}) || hist.Messages[0].ReplyCount != 2 {
			t.Errorf("restart=%v: history %v, parent reply_count %d, want 1..4 and 2", restart, segments(hist.Messages), hist.Messages[0].ReplyCount)
		}
	}
	g := ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelGet, `{"channel":"general"}`)
	if g.Channel.LastMessage == nil || g.Channel.LastMessage.Segment != 4 || g.Channel.MessageCount != 4 {
		t.Errorf("channel %+v", g.Channel)
	}
}

func TestReplyErrors(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	parent := h.send("alice", "p", "parent")
	r := h.reply("alice", "r", parent.ID)
	tests := []struct {
		parent string
		code   protocol.Code
	}{
		{"99-0000000000000000", protocol.CodeNotFound},
		{"1-0000000000000000", protocol.CodeNotFound}, // right segment, wrong id
		{"nope", protocol.CodeNotFound},
		{r.ID, protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		h.fail(caller("alice"), protocol.OpMessageSend, map[string]any{"channel": channelID, "client_id": "x", "text": "x", "parent_id": tt.parent}, tt.code)
	}
}

func TestHistoryThreads(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MessageCache = 2 })
	h.create("alice", protocol.TypeStandard, nil)
	var parents []protocol.Message
	for i := 0; i < 3; i++ {
		parents = append(parents, h.send("alice", fmt.Sprint("p", i), "parent"))
	}
	// Segments 4..12: replies round-robin over the three threads.
	for i := 0; i < 9; i++ {
		h.reply("alice", fmt.Sprint("r", i), parents[i%3].ID)
	}
	top := h.send("alice", "last", "top") // 13
	h.reload()

	all := h.history(caller("bob"), map[string]any{"limit": 100})
	if !slices.Equal(segments(all.Messages), span(1, 13)) {
		t.Errorf("everything: %v", segments(all.Messages))
	}
	tl := h.history(caller("bob"), map[string]any{"top_level": true})
	if !slices.Equal(segments(tl.Messages), []uint64{1, 2, 3, 13}) || tl.HasMore {
		t.Errorf("top level: %v has_more=%v", segments(tl.Messages), tl.HasMore)
	}
	tl = h.history(caller("bob"), map[string]any{"top_level": true, "limit": 2})
	if !slices.Equal(segments(tl.Messages), []uint64{3, 13}) || !tl.HasMore {
		t.Errorf("top level, 2: %v has_more=%v", segments(tl.Messages), tl.HasMore)
	}
	tl = h.history(caller("bob"), map[string]any{"top_level": true, "limit": 2, "before": 3})
	if !slices.Equal(segments(tl.Messages), []uint64{1, 2}) || tl.HasMore {
		t.Errorf("top level before 3: %v has_more=%v", segments(tl.Messages), tl.HasMore)
	}
	th := h.history(caller("bob"), map[string]any{"parent_id": parents[1].ID})
	if !slices.Equal(segments(th.Messages), []uint64{5, 8, 11}) || th.HasMore {
		t.Errorf("thread of 2: %v has_more=%v", segments(th.Messages), th.HasMore)
	}
	th = h.history(caller("bob"), map[string]any{"parent_id": parents[1].ID, "after": 5, "limit": 1})
	if !slices.Equal(segments(th.Messages), []uint64{8}) || !th.HasMore {
		t.Errorf("thread of 2 after 5: %v has_more=%v", segments(th.Messages), th.HasMore)
	}
	if th := h.history(caller("bob"), map[string]any{"parent_id": top.ID}); len(th.Messages) != 0 || th.HasMore {
		t.Errorf("thread without replies: %v", segments(th.Messages))
	}
}

func TestHistorySearch(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MessageCache = 2 })
	h.create("alice", protocol.TypeStandard, nil)
	texts := []string{"Hello world", "nothing", "say HELLO", "hello again", "bye", "hello, deleted"}
	var ids []string
	for i, text := range texts {
		ids = append(ids, h.send("alice", fmt.Sprint("c", i), text).ID)
	}
	ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": ids[5]})
	h.reply("alice", "r", ids[0]) // "re: 1-…" does not match
	ok[messageResult](h, caller("alice"), protocol.OpMessageSend, map[string]any{"channel": channelID, "client_id": "r2", "text": "hello in a thread", "parent_id": ids[0]})
	h.reload()
	tests := []struct {
		args map[string]any
		want []uint64
		more bool
	}{
		{map[string]any{"search": "hello"}, []uint64{1, 3, 4, 8}, false},
		{map[string]any{"search": "HeLLo", "limit": 2}, []uint64{4, 8}, true},
		{map[string]any{"search": "hello", "limit": 2, "before": 4}, []uint64{1, 3}, false},
		{map[string]any{"search": "hello", "after": 1, "limit": 1}, []uint64{3}, true},
		{map[string]any{"search": "hello", "top_level": true}, []uint64{1, 3, 4}, false},
		{map[string]any{"search": "hello", "parent_id": ids[0]}, []uint64{8}, false},
		{map[string]any{"search": "zebra"}, nil, false},
	}
	for _, tt := range tests {
		r := h.history(caller("bob"), tt.args)
		if got := segments(r.Messages); !slices.Equal(got, tt.want) || r.HasMore != tt.more {
			t.Errorf("%v: %v has_more=%v, want %v has_more=%v", tt.args, got, r.HasMore, tt.want, tt.more)
		}
	}
	h.fail(caller("bob"), protocol.OpMessagesHistory, map[string]any{"channel": channelID, "search": strings.Repeat("s", 201)}, protocol.CodeTooLong)
}
