package channel

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// FuzzObjectValidation drives message.send and channel.create the way a
// client's frame reaches them: through the frame decoder, then the
// channel's validation. Whatever is accepted must come back out — in the
// reply, in every event frame, in a history page and after a reload from
// the store — as valid UTF-8, strict JSON (protocol.CheckJSON) whose data
// and metadata are within the size and depth bounds.
func FuzzObjectValidation(f *testing.F) {
	for _, s := range []string{
		`{"channel":"general","client_id":"c1","text":"héllo 👋","data":{"k":[1,2,{"x":null}]},"metadata":{"m":"ü"}}`,
		`{"channel":"general","client_id":"c2","type":"json","data":{"deep":[[[[{"a":1e300}]]]]}}`,
		"{\"channel\":\"general\",\"client_id\":\"c3\",\"text\":\"\xff\"}",
		`{"channel":"general","client_id":"c4","data":{"s":"\ud800"}}`,
		`{"channel":"general","client_id":"c5","metadata":{"n":1e999}}`,
		`{"channel":"general","client_id":"c6","tags":["a","ü"],"mentions":["bob"]}`,
		`{"type":"standard","name":"Général","description":"d","metadata":{"a":{"b":[true,false]}},"tags":["x"]}`,
		`{"type":"private","name":"\u00e9","image":"https://x/y.png","metadata":null}`,
		"{\"type\":\"standard\",\"name\":\"a\xc3\"}",
	} {
		f.Add([]byte(s), s[2] == 't')
	}
	f.Fuzz(func(t *testing.T, args []byte, create bool) {
		op := protocol.OpMessageSend
		if create {
			op = protocol.OpChannelCreate
		}
		frame := append(append([]byte(`{"id":1,"op":"`+op+`","args":`), args...), '}')
		req, perr := protocol.DecodeRequest(frame)
		if perr != nil || req.Op != op {
			return // refused at the edge (or args was not one value)
		}
		h := newHarness(t)
		if !create {
			h.do(caller("alice"), protocol.OpChannelCreate, map[string]any{"type": protocol.TypeStandard})
		}
		eff := h.s.Handle(Command{Op: op, Args: req.Args, Caller: caller("alice")}, h.now)
		if eff.Err != nil {
			return
		}
		l := h.cfg.Limits
		checkOut := func(what string, b []byte) {
			t.Helper()
			if !utf8.Valid(b) {
				t.Fatalf("%s for %q is not valid UTF-8: %q", what, args, b)
			}
			if err := protocol.CheckJSON(b, 64); err != nil {
				t.Fatalf("%s for %q is not strict JSON (%v): %q", what, args, err, b)
			}
		}
		checkOut("reply", eff.Result)
		for _, ev := range eff.Events {
			checkOut("event", ev.Frame)
		}
		if eff.Entry != nil {
			h.apply(eff.Entry)
			h.s.Committed(eff.Index)
		}
		var objs []json.RawMessage
		if create {
			h.reload()
			got := ok[json.RawMessage](h, caller("alice"), protocol.OpChannelGet, map[string]any{"channel": channelID})
			checkOut("channel.get", got)
			var r struct {
				Channel protocol.Channel `json:"channel"`
			}
			if err := json.Unmarshal(got, &r); err != nil {
				t.Fatal(err)
			}
			objs = append(objs, r.Channel.Metadata)
		} else {
			h.reload()
			got := ok[json.RawMessage](h, caller("alice"), protocol.OpMessagesHistory, map[string]any{"channel": channelID})
			checkOut("history", got)
			var r protocol.HistoryResult
			if err := json.Unmarshal(got, &r); err != nil || len(r.Messages) == 0 {
				t.Fatalf("history %s: %v", got, err)
			}
			m := r.Messages[len(r.Messages)-1]
			objs = append(objs, m.Data, m.Metadata)
		}
		for _, o := range objs {
			if len(o) > l.MaxDataBytes {
				t.Fatalf("%q: stored object of %d bytes, the limit is %d", args, len(o), l.MaxDataBytes)
			}
			if len(o) > 0 {
				if err := protocol.CheckJSON(o, protocol.MaxJSONDepth); err != nil {
					t.Fatalf("%q: stored object %q: %v", args, o, err)
				}
			}
		}
	})
}

// TestStoredInvalidUTF8IsRepairedOnTheWayOut: data stored by a server
// that did not yet refuse invalid UTF-8 reaches clients repaired, in a
// history page and in a resume's replayed events.
func TestStoredInvalidUTF8IsRepairedOnTheWayOut(t *testing.T) {
	h := newHarness(t)
	h.do(caller("alice"), protocol.OpChannelCreate, map[string]any{"type": protocol.TypeStandard})
	m := h.send("alice", "c1", "hi")
	// Rewrite the message and its events as an older server stored them.
	poison := func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte(`"data":null`), []byte("\"data\":{\"k\":\"\xff\",\"s\":\"\\ud800\"}"))
	}
	e := &persistence.Entry{}
	rec, err := h.log.Get(persistence.TableMessage, persistence.U64(m.Segment))
	if err != nil {
		t.Fatal(err)
	}
	e.Put(persistence.TableMessage, persistence.U64(m.Segment), poison(rec))
	evs, err := h.log.Scan(persistence.TableEvent, persistence.Range{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range evs {
		e.Put(persistence.TableEvent, r.Key, poison(r.Value))
	}
	h.apply(e)
	h.reload()
	for _, out := range [][]byte{
		ok[json.RawMessage](h, caller("alice"), protocol.OpMessagesHistory, map[string]any{"channel": channelID}),
		ok[json.RawMessage](h, caller("alice"), protocol.OpChannelWatch, map[string]any{"channel": channelID, "since_seq": 0}),
	} {
		if !utf8.Valid(out) || protocol.CheckJSON(out, 64) != nil {
			t.Fatalf("sent %q", out)
		}
		if !bytes.Contains(out, []byte("\ufffd")) {
			t.Fatalf("the stored data did not come out: %s", out)
		}
	}
}
