package client

import (
	"bytes"
	"encoding/json"
	"testing"

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
