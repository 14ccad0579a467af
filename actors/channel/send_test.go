package channel

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestSendSegmentsAndSeqs(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, map[string]any{"members": []string{"bob"}})
	h.join(caller("bob"), nil) // a member already: writes nothing
	for i := 1; i <= 10; i++ {
		h.tick(time.Millisecond * 1500)
		user := []string{"alice", "bob"}[i%2]
		eff := h.do(caller(user), protocol.OpMessageSend, map[string]any{"channel": channelID, "client_id": fmt.Sprint("c", i), "text": fmt.Sprint("m", i)})
		if eff.Err != nil {
			t.Fatal(eff.Err)
		}
		var r messageResult
		_ = json.Unmarshal(eff.Result, &r)
		m := r.Message
		if m.Segment != uint64(i) || m.User != user || m.Channel != channelID || m.Type != protocol.MessageText ||
			m.Text != fmt.Sprint("m", i) || m.ClientID != fmt.Sprint("c", i) || !m.CreatedAt.Equal(protocol.At(h.now).Time) || m.Deleted {
			t.Fatalf("message %d: %+v", i, m)
		}
		if seg, ok := parseMessageID(m.ID); !ok || seg != m.Segment {
			t.Errorf("id %q does not name segment %d", m.ID, m.Segment)
		}
		if len(eff.Events) != 1 || eff.Events[0].Seq != uint64(i) {
			t.Fatalf("message %d: events %+v", i, eff.Events)
		}
		f := decodeFrame(t, eff.Events[0].Frame)
		var ev messageResult
		_ = json.Unmarshal(f.Data, &ev)
		if f.Event != protocol.EventMessageNew || f.Channel != channelID || ev.Message.ID != m.ID || ev.Message.Segment != m.Segment {
			t.Errorf("event %+v data %+v", f, ev.Message)
		}
	}
	g := ok[protocol.ChannelResult](h, caller("bob"), protocol.OpChannelGet, `{"channel":"general"}`)
	if g.Channel.LastSegment != 10 || g.Channel.MessageCount != 10 || g.Channel.LastMessage == nil || g.Channel.LastMessage.Segment != 10 {
		t.Errorf("channel after 10 sends: %+v", g.Channel)
	}
	// Sending marks everything up to one's own message read.
	if g.Member.ReadSegment != 9 || g.Member.UnreadCount != 1 {
		t.Errorf("bob read %d unread %d, want 9 and 1", g.Member.ReadSegment, g.Member.UnreadCount)
	}
	// Segments continue across a restart.
	h.reload()
	if m := h.send("bob", "after", "x"); m.Segment != 11 {
		t.Errorf("segment after reload %d, want 11", m.Segment)
	}
}

func TestSendIdempotent(t *testing.T) {
	tiny := func(c *Config) { c.IdemCache = 1; c.MessageCache = 1 }
	steps := []struct {
		name string
		do   func(h *harness, orig protocol.Message)
		want func(orig protocol.Message, got protocol.Message) bool
	}{
		{"plain", func(*harness, protocol.Message) {}, func(o, g protocol.Message) bool { return g.Text == o.Text && !g.Deleted }},
		{"after edit", func(h *harness, o protocol.Message) {
			ok[messageResult](h, caller("alice"), protocol.OpMessageEdit, map[string]any{"channel": channelID, "message_id": o.ID, "text": "edited"})
		}, func(o, g protocol.Message) bool { return g.Text == "edited" && !g.EditedAt.IsZero() }},
		{"after delete", func(h *harness, o protocol.Message) {
			ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": o.ID})
		}, func(o, g protocol.Message) bool { return g.Deleted && g.Text == "" }},
	}
	for _, st := range steps {
		for _, restart := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s restart=%v", st.name, restart), func(t *testing.T) {
				h := newHarness(t, tiny)
				h.create("alice", protocol.TypeStandard, nil)
				orig := h.send("alice", "same", "original")
				st.do(h, orig)
				// Push the key and the message out of their caches.
				for i := 0; i < 5; i++ {
					h.send("alice", fmt.Sprint("other", i), "filler")
				}
				if restart {
					h.reload()
				}
				last, seq := h.s.LastSegment(), h.s.LastSeq()
				// Whatever the resend says, even what a first send could
				// not say, it gets the original.
				resends := map[string]map[string]any{
					"other text":    {"channel": channelID, "client_id": "same", "text": "different text"},
					"text too long": {"channel": channelID, "client_id": "same", "text": strings.Repeat("x", h.cfg.Limits.MaxTextLen+1)},
					"no text":       {"channel": channelID, "client_id": "same"},
					"bad type":      {"channel": channelID, "client_id": "same", "type": "bogus", "data": []int{1}},
				}
				for name, args := range resends {
					eff := h.do(caller("alice"), protocol.OpMessageSend, args)
					if eff.Err != nil {
						t.Fatalf("resend (%s): %v", name, eff.Err)
					}
					if eff.Entry != nil || len(eff.Events) != 0 {
						t.Fatalf("resend wrote: entry=%v events=%d", eff.Entry != nil, len(eff.Events))
					}
					var r messageResult
					_ = json.Unmarshal(eff.Result, &r)
					if r.Message.ID != orig.ID || r.Message.Segment != orig.Segment || !st.want(orig, r.Message) {
						t.Fatalf("resend returned %+v, want the original %s in its current state", r.Message, orig.ID)
					}
				}
				if h.s.LastSegment() != last || h.s.LastSeq() != seq {
					t.Errorf("resends moved segment %d→%d seq %d→%d", last, h.s.LastSegment(), seq, h.s.LastSeq())
				}
				// Another user's identical client id is another message.
				h.join(caller("bob"), nil) // adds the system message last+1
				if m := h.send("bob", "same", "bob's"); m.Segment != last+2 || m.User != "bob" {
					t.Errorf("bob's send: %+v", m)
				}
			})
		}
	}
}

func TestSendValidation(t *testing.T) {
	l := protocol.DefaultLimits()
	tests := []struct {
		name string
		args any
		code protocol.Code
	}{
		{"no client id", `{"channel":"general","text":"hi"}`, protocol.CodeBadRequest},
		{"client id with space", `{"channel":"general","client_id":"a b","text":"hi"}`, protocol.CodeBadRequest},
		{"client id too long", map[string]any{"channel": channelID, "client_id": strings.Repeat("c", l.MaxIDLen+1), "text": "hi"}, protocol.CodeTooLong},
		{"client id not a string", `{"channel":"general","client_id":5,"text":"hi"}`, protocol.CodeBadRequest},
		{"text too long", map[string]any{"channel": channelID, "client_id": "c", "text": strings.Repeat("é", l.MaxTextLen/2+1)}, protocol.CodeTooLong},
		{"data too large", map[string]any{"channel": channelID, "client_id": "c", "data": map[string]string{"k": strings.Repeat("v", l.MaxDataBytes)}}, protocol.CodeTooLarge},
		{"metadata too large", map[string]any{"channel": channelID, "client_id": "c", "text": "x", "metadata": map[string]string{"k": strings.Repeat("v", l.MaxDataBytes)}}, protocol.CodeTooLarge},
		{"data array", `{"channel":"general","client_id":"c","data":[1,2]}`, protocol.CodeBadRequest},
		{"data string", `{"channel":"general","client_id":"c","text":"x","data":"s"}`, protocol.CodeBadRequest},
		{"data number", `{"channel":"general","client_id":"c","text":"x","data":12}`, protocol.CodeBadRequest},
		{"metadata array", `{"channel":"general","client_id":"c","text":"x","metadata":[]}`, protocol.CodeBadRequest},
		{"empty", `{"channel":"general","client_id":"c"}`, protocol.CodeBadRequest},
		{"empty text", `{"channel":"general","client_id":"c","text":""}`, protocol.CodeBadRequest},
		{"null data only", `{"channel":"general","client_id":"c","data":null}`, protocol.CodeBadRequest},
		{"bad type", `{"channel":"general","client_id":"c","text":"x","type":"gif"}`, protocol.CodeBadRequest},
		{"system type", `{"channel":"general","client_id":"c","text":"x","type":"system"}`, protocol.CodeBadRequest},
		{"too many tags", map[string]any{"channel": channelID, "client_id": "c", "text": "x", "tags": make([]string, l.MaxTags+1)}, protocol.CodeTooLarge},
		{"args array", `[]`, protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.create("alice", protocol.TypeStandard, nil)
			h.send("alice", "first", "first")
			h.fail(caller("alice"), protocol.OpMessageSend, tt.args, tt.code)
		})
	}
}

func TestSendKinds(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	r := ok[messageResult](h, caller("alice"), protocol.OpMessageSend,
		`{"channel":"general","client_id":"j","type":"json","data":{ "a" : [1, 2] },"metadata":{"m":true},"tags":["t"]}`)
	m := r.Message
	if m.Type != protocol.MessageJSON || string(m.Data) != `{"a":[1,2]}` || string(m.Metadata) != `{"m":true}` || len(m.Tags) != 1 {
		t.Errorf("json message %+v", m)
	}
}

func TestSendPermissions(t *testing.T) {
	tests := []struct {
		typ   string
		who   Caller
		setup func(h *harness, who Caller)
		code  protocol.Code
	}{
		{protocol.TypeStandard, caller("carol"), nil, protocol.CodeNotMember},
		{protocol.TypeStandard, caller("carol"), func(h *harness, c Caller) { h.join(c, nil) }, ""},
		{protocol.TypeStandard, caller("carol"), func(h *harness, c Caller) {
			ok[watchResult](h, c, protocol.OpChannelWatch, `{"channel":"general"}`)
		}, protocol.CodeNotMember},
		{protocol.TypeStandard, caller("bob"), nil, ""},
		{protocol.TypeStandard, admin("root"), nil, ""},
		{protocol.TypePrivate, caller("bob"), nil, ""},
		{protocol.TypePrivate, caller("carol"), nil, protocol.CodeNotMember},
		{protocol.TypeConversation, caller("carol"), nil, protocol.CodeNotMember},
		{protocol.TypeBroadcast, caller("alice"), nil, ""},
		{protocol.TypeBroadcast, caller("mod"), nil, ""},
		{protocol.TypeBroadcast, admin("root"), nil, ""},
		{protocol.TypeBroadcast, caller("bob"), nil, protocol.CodeForbidden},
		{protocol.TypeBroadcast, caller("carol"), func(h *harness, c Caller) { h.join(c, nil) }, protocol.CodeForbidden},
		{protocol.TypeLive, caller("carol"), nil, protocol.CodeNotMember},
		{protocol.TypeLive, caller("carol"), func(h *harness, c Caller) { h.join(c, nil) }, ""},
		{protocol.TypeLive, caller("carol"), func(h *harness, c Caller) {
			ok[watchResult](h, c, protocol.OpChannelWatch, `{"channel":"general"}`)
		}, ""},
		{protocol.TypeLive, caller("carol"), func(h *harness, c Caller) {
			h.join(c, nil)
			ok[struct{}](h, c, protocol.OpChannelUnwatch, `{"channel":"general"}`)
		}, protocol.CodeNotMember},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%d %s/%s", i, tt.typ, tt.who.User), func(t *testing.T) {
			h := roles(t, tt.typ)
			if tt.setup != nil {
				tt.setup(h, tt.who)
			}
			args := `{"channel":"general","client_id":"c1","text":"hello"}`
			if tt.code != "" {
				h.fail(tt.who, protocol.OpMessageSend, args, tt.code)
				return
			}
			if r := ok[messageResult](h, tt.who, protocol.OpMessageSend, args); r.Message.User != tt.who.User {
				t.Errorf("sent %+v", r.Message)
			}
		})
	}
}
