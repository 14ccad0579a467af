package client

import (
	"bytes"
	"encoding/json"
	"testing"
	"unsafe"

	"github.com/switchboard-chat/switchboard/protocol"
)

// slowEvent is the general path the fast one must agree with.
func slowEvent(t testing.TB, b []byte) (Event, bool) {
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return Event{}, false
	}
	return f.Event, f.Name != ""
}

func TestDecodeEventMatchesJSON(t *testing.T) {
	msg, _ := protocol.EncodeEvent(protocol.EventMessageNew, "general", 42, protocol.MessageResult{Message: &protocol.Message{ID: "m1", Segment: 7, Text: "héllo \"quoted\"\n"}})
	typing, _ := protocol.EncodeEvent(protocol.EventTyping, "general", 0, map[string]any{"user": "bob", "active": true})
	presence, _ := protocol.EncodeEvent(protocol.EventPresence, "", 0, map[string]any{"user": "bob"})
	nodata, _ := protocol.EncodeEvent(protocol.EventChannelDeleted, "c", 3, nil)
	cases := [][]byte{msg, typing, presence, nodata}
	for _, b := range cases {
		var fast Event
		if !decodeEvent(b, &fast) {
			t.Fatalf("fast path refused %s", b)
		}
		slow, _ := slowEvent(t, b)
		if fast.Name != slow.Name || fast.Channel != slow.Channel || fast.Seq != slow.Seq || !bytes.Equal(fast.Data, slow.Data) {
			t.Fatalf("fast %+v (data %s) != slow %+v (data %s)", fast, fast.Data, slow, slow.Data)
		}
	}
	// Frames the fast path must leave to encoding/json.
	for _, b := range []string{
		`{"id":1,"result":{}}`,
		`{"event":"a\"b","channel":"c"}`,
		`{"channel":"c","event":"x"}`,
		`{"event":"x","seq":,"data":{}}`,
		`{"event":"x","extra":1}`,
	} {
		var e Event
		if decodeEvent([]byte(b), &e) {
			t.Errorf("fast path accepted %s as %+v", b, e)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"event":"message.new","channel":"c","seq":1,"data":{"message":{}}}`))
	f.Add([]byte(`{"event":"typing","channel":"c","data":{"user":"u"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast Event
		if !decodeEvent(b, &fast) {
			return
		}
		slow, ok := slowEvent(t, b)
		if !ok {
			// Only the data may make encoding/json refuse the frame.
			if json.Valid(fast.Data) {
				t.Fatalf("fast path accepted what encoding/json refuses: %q", b)
			}
			return
		}
		if fast.Name != slow.Name || fast.Channel != slow.Channel || fast.Seq != slow.Seq {
			t.Fatalf("fast %+v != slow %+v for %q", fast, slow, b)
		}
	})
}

func BenchmarkDecodeEvent(b *testing.B) {
	ev, _ := protocol.EncodeEvent(protocol.EventMessageNew, "lt-room-0001", 123456, protocol.MessageResult{Message: &protocol.Message{
		ID: "01HZX", Channel: "lt-room-0001", Segment: 123400, User: "lt-u-42", Type: "text", Text: "lt 1234567890 padding padding padding", ClientID: "r1.42.1234567890",
	}})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var e Event
			decodeEvent(ev, &e)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var f frame
			_ = json.Unmarshal(ev, &f)
		}
	})
}

// TestInternedEventNamesAndChannels: events decoded with one interner
// repeat its strings while name and channel repeat, and change with them.
func TestInternedEventNamesAndChannels(t *testing.T) {
	in := new(interner)
	var a, b, c Event
	decodeEventInterned([]byte(`{"event":"message.new","channel":"room","seq":1,"data":{}}`), &a, in)
	decodeEventInterned([]byte(`{"event":"message.new","channel":"room","seq":2,"data":{}}`), &b, in)
	decodeEventInterned([]byte(`{"event":"typing","channel":"hall","data":{}}`), &c, in)
	if unsafe.StringData(a.Name) != unsafe.StringData(b.Name) || unsafe.StringData(a.Channel) != unsafe.StringData(b.Channel) {
		t.Fatal("a repeated name or channel was allocated anew")
	}
	if a.Name != "message.new" || c.Name != "typing" || c.Channel != "hall" || b.Seq != 2 {
		t.Fatalf("decoded %+v %+v %+v", a, b, c)
	}
}

func TestDecodeReply(t *testing.T) {
	var f frame
	if !decodeReply([]byte(`{"id":12,"result":{"seq":3}}`), &f) || string(f.ID) != "12" || string(f.Result) != `{"seq":3}` {
		t.Fatalf("decoded %s %s", f.ID, f.Result)
	}
	for _, b := range []string{
		`{"id":1,"error":{"code":"not_found"}}`,
		`{"id":"a","result":{}}`,
		`{"id":01,"result":{}}`,
		`{"id":1,"result":3}`,
		`{"event":"x"}`,
		`{"id":1,"result":{}`,
	} {
		if decodeReply([]byte(b), &f) {
			t.Errorf("fast path took %s", b)
		}
	}
}

// TestParseWatchResultMatchesJSON: the members the client reads of a join
// result are what encoding/json reads.
func TestParseWatchResultMatchesJSON(t *testing.T) {
	for _, b := range []string{
		`{"channel":{"id":"general","name":"G {\"x\"}","last_message":{"id":"m"}},"member":{"user":"bob"},"messages":[{"id":"a","text":"]"}],"seq":2}`,
		`{"channel":{"id":"g\u00e9n"},"seq":5,"events":[{"event":"message.new","channel":"g","seq":5,"data":{}}],"events_has_more":true,"reset":false}`,
		`{"channel":null,"seq":null,"reset":true}`,
	} {
		got, ok := parseWatchResult([]byte(b))
		var want struct {
			Channel struct {
				ID string `json:"id"`
			} `json:"channel"`
			Seq           uint64            `json:"seq"`
			Events        []json.RawMessage `json:"events"`
			EventsHasMore bool              `json:"events_has_more"`
			Reset         bool              `json:"reset"`
		}
		if err := json.Unmarshal([]byte(b), &want); err != nil || !ok {
			t.Fatalf("%s: %v / %v", b, err, ok)
		}
		if got.Channel != want.Channel.ID || got.Seq != want.Seq || len(got.Events) != len(want.Events) ||
			got.EventsHasMore != want.EventsHasMore || got.Reset != want.Reset {
			t.Fatalf("%s: read %+v, encoding/json %+v", b, got, want)
		}
	}
	for _, b := range []string{`{"seq":"x"}`, `{"channel":{"id":7}}`, `{"events":{}}`, `[]`, `{"seq":1`} {
		if r, ok := parseWatchResult([]byte(b)); ok {
			t.Errorf("read %s as %+v", b, r)
		}
	}
}

func TestConnectUser(t *testing.T) {
	if id, ok := connectUser([]byte(`{"session_id":"s","limits":{"user":{"id":"no"}},"user":{"name":"A","id":"alice"}}`)); !ok || id != "alice" {
		t.Fatalf("read %q %v", id, ok)
	}
	if id, ok := connectUser([]byte(`{"session":"s"}`)); !ok || id != "" {
		t.Fatalf("a result without a user: %q %v", id, ok)
	}
	if _, ok := connectUser([]byte(`{"user":`)); ok {
		t.Fatal("read a broken result")
	}
}

// TestWatchOfFollowsForget: the cached watch of the last channel is the
// map's, and a forgotten channel's is not answered from the cache.
func TestWatchOfFollowsForget(t *testing.T) {
	w1, w2 := &watch{seq: 1}, &watch{seq: 2}
	c := &Client{watched: map[string]*watch{"a": w1, "b": {}}}
	for range 2 { // from the map, then from the cache
		if c.watchOf("a") != w1 {
			t.Fatal("watchOf does not answer the map's watch")
		}
	}
	if c.watchOf("zz") != nil {
		t.Fatal("watchOf answers a channel not watched")
	}
	c.forget("a")
	if c.watchOf("a") != nil {
		t.Fatal("a forgotten channel's watch was answered")
	}
	c.watched["a"] = w2
	if c.watchOf("b") == nil || c.watchOf("a") != w2 {
		t.Fatal("a channel watched again answers its old watch")
	}
}
