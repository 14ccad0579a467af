package protocol

import (
	"encoding/json"
	"testing"
	"time"
)

// The reference encodings: encoding/json by reflection, as before
// Channel and WatchResult had MarshalJSON.
type (
	plainChannel struct {
		ID              string          `json:"id"`
		Type            string          `json:"type"`
		Name            string          `json:"name"`
		Description     string          `json:"description"`
		Image           string          `json:"image"`
		Metadata        json.RawMessage `json:"metadata"`
		Tags            []string        `json:"tags"`
		Public          bool            `json:"public"`
		Distinct        bool            `json:"distinct"`
		MemberCount     int64           `json:"member_count"`
		MessageCount    int64           `json:"message_count"`
		LastSegment     uint64          `json:"last_segment"`
		LastMessage     *Message        `json:"last_message"`
		MutedUntil      Time            `json:"muted_until"`
		RateLimit       *RateLimit      `json:"rate_limit"`
		SlowModeMS      int64           `json:"slow_mode_ms"`
		AutoDeleteFlags int             `json:"auto_delete_flags"`
		AttachedTo      *AttachedTo     `json:"attached_to"`
		TypingEvents    *bool           `json:"typing_events,omitempty"`
		CreatedBy       string          `json:"created_by,omitempty"`
		CreatedAt       Time            `json:"created_at,omitzero"`
		UpdatedAt       Time            `json:"updated_at,omitzero"`
		LastActivity    Time            `json:"last_activity,omitzero"`
		Deleted         bool            `json:"deleted"`
		Member          *Member         `json:"member,omitempty"`
		UnreadCount     *int64          `json:"unread_count,omitempty"`
		Mentioned       *bool           `json:"mentioned,omitempty"`
	}
	plainWatchResult struct {
		Channel         *plainChannel     `json:"channel"`
		Member          *Member           `json:"member"`
		Messages        []*Message        `json:"messages"`
		HasMore         bool              `json:"has_more"`
		MessagesHasMore bool              `json:"messages_has_more"`
		Seq             uint64            `json:"seq"`
		Events          []json.RawMessage `json:"events,omitzero"`
		EventsHasMore   bool              `json:"events_has_more,omitempty"`
		Reset           bool              `json:"reset,omitempty"`
	}
)

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testChannels() []*Channel {
	yes, no := true, false
	unread := int64(7)
	return []*Channel{
		{},
		{ID: "general", Type: TypeStandard, Name: "General", Tags: []string{}, MemberCount: 3, CreatedAt: eventMsgAt},
		{ID: "c<&>", Type: TypeLive, Name: "ü<&>\"\\\n", Description: "d\u2028", Image: "i", Metadata: json.RawMessage(`{ "k" : ["<v>"] }`),
			Tags: []string{"a", "é"}, Public: true, Distinct: true, MemberCount: -1, MessageCount: 9, LastSegment: 12,
			LastMessage: &Message{ID: "12-a", Channel: "c", Segment: 12, Text: "hi", CreatedAt: eventMsgAt},
			MutedUntil:  At(eventMsgAt.Add(time.Hour)), RateLimit: &RateLimit{Count: 5, WindowMS: 1000}, SlowModeMS: 3000,
			AutoDeleteFlags: 2, AttachedTo: &AttachedTo{StreamID: "s1", PostID: "p<1>"}, TypingEvents: &no, CreatedBy: "bob",
			CreatedAt: eventMsgAt, UpdatedAt: eventMsgAt, LastActivity: eventMsgAt, Deleted: true,
			Member: &Member{User: "bob", Channel: "c", Membership: MembershipMember, Roles: []string{RoleOwner}}, UnreadCount: &unread, Mentioned: &yes},
		{ID: "x", AttachedTo: &AttachedTo{}, TypingEvents: &yes, Metadata: json.RawMessage("null")},
	}
}

func testMembers() []*Member {
	return []*Member{
		{},
		{User: "alice", Channel: "general", Membership: MembershipViewer, Roles: []string{}},
		{User: "b<&>", Channel: "c\n", Membership: MembershipMember, Roles: []string{"owner", "é"}, MutedUntil: eventMsgAt,
			MuteReason: "spam <b>", BannedUntil: At(eventMsgAt.Add(time.Minute)), BanReason: "r", ReadSegment: 4,
			LastMentionedSegment: 3, UnreadCount: -2, CreatedAt: eventMsgAt, LastActivity: eventMsgAt},
	}
}

// TestAppendChannelIsEncodingJSON: channel and member objects, and the
// join and watch result holding them, are byte for byte what
// encoding/json writes by reflection.
func TestAppendChannelIsEncodingJSON(t *testing.T) {
	for i, c := range testChannels() {
		want := mustJSON(t, (*plainChannel)(c))
		if got := string(AppendChannel(nil, c)); got != want {
			t.Fatalf("channel %d:\ngot  %s\nwant %s", i, got, want)
		}
		if got := mustJSON(t, c); got != want {
			t.Fatalf("channel %d through json.Marshal:\ngot  %s\nwant %s", i, got, want)
		}
		if got := mustJSON(t, []Channel{*c}); got != "["+want+"]" {
			t.Fatalf("channel %d in a list: %s", i, got)
		}
	}
	for i, m := range testMembers() {
		if got, want := string(AppendMember(nil, m)), mustJSON(t, m); got != want {
			t.Fatalf("member %d:\ngot  %s\nwant %s", i, got, want)
		}
	}
	chs, ms := testChannels(), testMembers()
	for i, r := range []*WatchResult{
		{},
		{Channel: chs[1], Member: ms[1], Messages: []*Message{}, Seq: 4},
		{Channel: chs[2], Member: ms[2], Messages: []*Message{{ID: "1-a", Text: "<x>", CreatedAt: eventMsgAt}, nil}, HasMore: true, MessagesHasMore: true,
			Seq: 9, Events: []json.RawMessage{json.RawMessage(`{"event":"x", "data":{}}`), json.RawMessage(`{"e":"<&>"}`)}, EventsHasMore: true, Reset: true},
		{Channel: chs[3], Events: []json.RawMessage{}},
	} {
		want := mustJSON(t, plainWatchResult{(*plainChannel)(r.Channel), r.Member, r.Messages, r.HasMore, r.MessagesHasMore, r.Seq, r.Events, r.EventsHasMore, r.Reset})
		if got := mustJSON(t, r); got != want {
			t.Fatalf("watch result %d:\ngot  %s\nwant %s", i, got, want)
		}
	}
}

// FuzzAppendChannel: any strings, tags and metadata encode as
// encoding/json does.
func FuzzAppendChannel(f *testing.F) {
	f.Add("general", "General", "tag", `{"a":1}`, int64(3))
	f.Add("\x00\xff", "a\"b\\c\u2029", "<t>", `{"x":"<y> &"}`, int64(-1))
	f.Fuzz(func(t *testing.T, id, name, tag, meta string, n int64) {
		c := &Channel{ID: id, Name: name, Description: tag + name, MemberCount: n, CreatedBy: tag, CreatedAt: eventMsgAt}
		if tag != "" {
			c.Tags = []string{tag, name}
			c.AttachedTo = &AttachedTo{RoomID: tag}
		}
		if json.Valid([]byte(meta)) {
			c.Metadata = json.RawMessage(meta)
		}
		m := &Member{User: id, Channel: name, Membership: tag, MuteReason: name, Roles: c.Tags}
		if got, want := string(AppendChannel(nil, c)), mustJSON(t, (*plainChannel)(c)); got != want {
			t.Fatalf("channel\ngot  %q\nwant %q", got, want)
		}
		if got, want := string(AppendMember(nil, m)), mustJSON(t, m); got != want {
			t.Fatalf("member\ngot  %q\nwant %q", got, want)
		}
	})
}
