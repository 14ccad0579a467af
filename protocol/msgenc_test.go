package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

var eventMsgAt = At(time.Date(2026, 11, 22, 5, 0, 57, 530e6, time.UTC))

// TestEventMessageLeavesOutEmptyFields: a plain text message in an event
// is its id, segment, user, text, client id and time, and nothing else.
func TestEventMessageLeavesOutEmptyFields(t *testing.T) {
	m := &Message{ID: "2-ef3c94b46e7221d4", Channel: "general", Segment: 2, User: "alice", Type: MessageText,
		Text: "hello", Tags: []string{}, Mentions: []string{}, Attachments: []File{}, Reactions: map[string]int64{},
		Data: json.RawMessage("null"), ClientID: "a-1", CreatedAt: eventMsgAt}
	got := string(AppendEventMessage(nil, m))
	want := `{"id":"2-ef3c94b46e7221d4","segment":2,"user":"alice","text":"hello","client_id":"a-1","created_at":"2026-11-22T05:00:57.530Z"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestEventMessageRoundTrip: whatever a message holds, its event form is
// valid JSON that reads back as the same message, but for the channel.
func TestEventMessageRoundTrip(t *testing.T) {
	yes := true
	flags := int64(3)
	for _, m := range []*Message{
		{ID: "1-a", Channel: "c", Segment: 1, User: "u", Type: MessageText, Text: "plain"},
		{ID: "9-b", Channel: "c", Segment: 9, User: "ü<&>\"\\\n", Type: MessageJSON, Text: "line\nbreak \u2028 <b>",
			Data: json.RawMessage(`{"k":[1,"x"]}`), Metadata: json.RawMessage(`{"m":true}`), Tags: []string{"a", "é"},
			ParentID: "3-c", ReplyCount: 4, Mentions: []string{"bob", "carl"},
			Attachments: []File{{ID: "f1", URL: "/v1/files/f1", Type: "image", Name: "a.png", Size: 12, MIME: "image/png"}},
			Reactions:   map[string]int64{"👍": 2, "a": 1}, ClientID: "k-1", CreatedAt: eventMsgAt,
			EditedAt: At(eventMsgAt.Add(time.Minute)), Deleted: true},
		{ID: "4-d", Channel: "c", Segment: 4, Type: MessageSystem, Text: "bob joined",
			System: &SystemInfo{Kind: "member_joined", User: "bob"}, CreatedAt: eventMsgAt},
		// The reader's own fields never go into an event.
		{ID: "5-e", Channel: "c", Segment: 5, User: "u", Type: MessageImage, MyReactions: []string{"a"}, Favorite: &yes, FlagCount: &flags},
	} {
		b := AppendEventMessage(nil, m)
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %s", b)
		}
		var got Message
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		want := *m
		want.Channel, want.MyReactions, want.Favorite, want.FlagCount = "", nil, nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s read back as\n%+v\nwant\n%+v", b, got, want)
		}
	}
}

// FuzzEventMessage: any strings give valid JSON that reads back.
func FuzzEventMessage(f *testing.F) {
	f.Add("alice", "hello", "tag", "k-1")
	f.Add("\x00\xff", "a\"b\\c\u2029", "", "")
	f.Fuzz(func(t *testing.T, user, text, tag, clientID string) {
		m := &Message{ID: "1-a", Segment: 1, User: user, Type: MessageText, Text: text, ClientID: clientID, CreatedAt: eventMsgAt}
		if tag != "" {
			m.Tags = []string{tag}
		}
		b := AppendEventMessage(nil, m)
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %q", b)
		}
		var got Message
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		// encoding/json replaces invalid UTF-8; compare with its own
		// reading of the same strings.
		fix := func(s string) string {
			b, _ := json.Marshal(s)
			var r string
			_ = json.Unmarshal(b, &r)
			return r
		}
		if got.User != fix(user) || got.Text != fix(text) || got.ClientID != fix(clientID) {
			t.Fatalf("read back %q %q %q from %q", got.User, got.Text, got.ClientID, b)
		}
	})
}

// TestEventMessageEscapesAsEncodingJSON: data and metadata are written
// as encoding/json writes them in replies (HTML characters escaped), so
// an event and a reply carry the same bytes.
func TestEventMessageEscapesAsEncodingJSON(t *testing.T) {
	data := json.RawMessage(`{"a":"<b>&\u2028</b>","c":[1,2]}`)
	m := &Message{ID: "1-a", Segment: 1, User: "u", Type: MessageJSON, Data: data, Metadata: data}
	want, _ := json.Marshal(data)
	var got struct {
		Data, Metadata json.RawMessage
	}
	if err := json.Unmarshal(AppendEventMessage(nil, m), &got); err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != string(want) || string(got.Metadata) != string(want) {
		t.Fatalf("data %s, metadata %s, want %s", got.Data, got.Metadata, want)
	}
}

// referenceJSON is how encoding/json writes m by reflection (what
// Message.MarshalJSON did before AppendMessage).
func referenceJSON(t testing.TB, m *Message) []byte {
	type plain Message
	p := plain(*m)
	if p.Tags == nil {
		p.Tags = []string{}
	}
	if p.Mentions == nil {
		p.Mentions = []string{}
	}
	if p.Attachments == nil {
		p.Attachments = []File{}
	}
	if p.Reactions == nil {
		p.Reactions = map[string]int64{}
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAppendMessageIsEncodingJSON: the stored record and the reply of a
// message are byte for byte what encoding/json writes.
func TestAppendMessageIsEncodingJSON(t *testing.T) {
	yes, no := true, false
	flags := int64(2)
	for i, m := range []*Message{
		{},
		{ID: "1-a", Channel: "c", Segment: 1, User: "u", Type: MessageText, Text: "plain", CreatedAt: eventMsgAt},
		{ID: "9-b", Channel: "c<&>", Segment: 9, User: "ü<&>\"\\\n", Type: MessageJSON, Text: "line\nbreak \u2028 <b>\x00\xff",
			Data: json.RawMessage(`{"k":[1,"x <y>"],"s":"a b"}`), Metadata: json.RawMessage(`{"m":true}`), Tags: []string{"a", "é"},
			ParentID: "3-c", ReplyCount: 4, Mentions: []string{"bob", "carl"},
			Attachments: []File{{ID: "f1", URL: "/v1/files/f1", Type: "image", Name: "a<.png", Size: 12, MIME: "image/png"}},
			Reactions:   map[string]int64{"👍": 2, "a": 1}, MyReactions: []string{"a"}, Favorite: &yes, FlagCount: &flags,
			ClientID: "k-1", CreatedAt: eventMsgAt, EditedAt: At(eventMsgAt.Add(time.Minute)), Deleted: true},
		{ID: "4-d", Channel: "c", Segment: 4, Type: MessageSystem, Text: "bob joined", MyReactions: []string{}, Favorite: &no,
			System: &SystemInfo{Kind: "member_joined", User: "bob"}, CreatedAt: eventMsgAt, Data: json.RawMessage("null")},
		{ID: "5-e", Tags: []string{}, Mentions: []string{}, Attachments: []File{}, Reactions: map[string]int64{},
			Data: json.RawMessage("{ \"spaced\" : [ 1 , 2 ] }")},
	} {
		want := referenceJSON(t, m)
		if got := AppendMessage(nil, m); string(got) != string(want) {
			t.Fatalf("message %d:\ngot  %s\nwant %s", i, got, want)
		}
		if got, err := json.Marshal(m); err != nil || string(got) != string(want) {
			t.Fatalf("message %d through json.Marshal:\ngot  %s\nwant %s (%v)", i, got, want, err)
		}
	}
}

// FuzzAppendMessage: any strings and data encode as encoding/json does.
func FuzzAppendMessage(f *testing.F) {
	f.Add("alice", "hello", "tag", `{"a":1}`)
	f.Add("\x00\xff", "a\"b\\c\u2029", "", `{"x":"<y> &"}`)
	f.Fuzz(func(t *testing.T, user, text, tag, data string) {
		m := &Message{ID: "1-a", Channel: "c", Segment: 1, User: user, Type: MessageText, Text: text, ClientID: tag, CreatedAt: eventMsgAt}
		if tag != "" {
			m.Tags = []string{tag}
		}
		if json.Valid([]byte(data)) {
			m.Data = json.RawMessage(data)
		}
		if got, want := AppendMessage(nil, m), referenceJSON(t, m); string(got) != string(want) {
			t.Fatalf("got  %q\nwant %q", got, want)
		}
	})
}
