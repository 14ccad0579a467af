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

func decodeInto(b []byte, v any) error { return json.Unmarshal(b, v) }
