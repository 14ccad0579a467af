package protocol

import (
	"encoding/json"
	"testing"
	"time"
)

// referenceUserJSON is how encoding/json writes u by reflection (what
// json.Marshal did before User.MarshalJSON).
func referenceUserJSON(t testing.TB, u *User) []byte {
	type plain User
	b, err := json.Marshal((*plain)(u))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAppendUserIsEncodingJSON: a stored profile and the user object of
// a reply are byte for byte what encoding/json writes.
func TestAppendUserIsEncodingJSON(t *testing.T) {
	for i, u := range []*User{
		{},
		{ID: "alice", Status: StatusOffline},
		{ID: "bob", Name: "Bob", Image: "https://x/b.png", Status: StatusOnline, LastSeen: eventMsgAt, CreatedAt: eventMsgAt, UpdatedAt: At(eventMsgAt.Add(time.Hour))},
		{ID: "c<&>", Name: "ü<&>\"\\\n", Description: "line\nbreak \u2028 <b>\x00\xff", Image: "i",
			Metadata: json.RawMessage(`{"k":[1,"x <y>"],"s":"a b"}`), Status: StatusOnline, Admin: true, CreatedAt: eventMsgAt},
		{ID: "d", Metadata: json.RawMessage("{ \"spaced\" : [ 1 , 2 ] }"), UpdatedAt: eventMsgAt},
	} {
		want := referenceUserJSON(t, u)
		if got := AppendUser(nil, u); string(got) != string(want) {
			t.Fatalf("user %d:\ngot  %s\nwant %s", i, got, want)
		}
		if got, err := json.Marshal(u); err != nil || string(got) != string(want) {
			t.Fatalf("user %d through json.Marshal:\ngot  %s\nwant %s (%v)", i, got, want, err)
		}
		if got, err := json.Marshal(struct{ U User }{*u}); err != nil || string(got) != `{"U":`+string(want)+`}` {
			t.Fatalf("user %d as a field: %s (%v)", i, got, err)
		}
	}
}

// FuzzAppendUser: any strings and metadata encode as encoding/json does.
func FuzzAppendUser(f *testing.F) {
	f.Add("alice", "Alice", "", `{"a":1}`, true)
	f.Add("\x00\xff", "a\"b\\c\u2029", "<img>", `{"x":"<y> &"}`, false)
	f.Fuzz(func(t *testing.T, id, name, image, meta string, admin bool) {
		u := &User{ID: id, Name: name, Image: image, Description: name + image, Status: StatusOnline, Admin: admin, LastSeen: eventMsgAt}
		if json.Valid([]byte(meta)) {
			u.Metadata = json.RawMessage(meta)
		}
		if got, want := AppendUser(nil, u), referenceUserJSON(t, u); string(got) != string(want) {
			t.Fatalf("got  %q\nwant %q", got, want)
		}
	})
}

// TestAppendPresenceEvent: the frame is EncodeEvent's, byte for byte.
func TestAppendPresenceEvent(t *testing.T) {
	for _, e := range []PresenceEvent{{}, {User: "alice", Status: StatusOnline, LastSeen: eventMsgAt}, {User: "b<&>\n\xff", Status: StatusOffline}} {
		want, err := EncodeEvent(EventPresence, "", 0, e)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendPresenceEvent(nil, &e); string(got) != string(want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}
