package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeRequest feeds the decoder whole WebSocket messages, one frame
// or several separated by newlines, as a client may pack them. For every
// frame: no panic; a success has a non-empty op and args that are an
// object when present; a failure is bad_request; any id returned is a
// valid, bounded JSON number or string, so the reply built from it is
// valid JSON in a valid UTF-8 text frame; an accepted frame is strict
// JSON (CheckJSON) throughout.
func FuzzDecodeRequest(f *testing.F) {
	seeds := []string{
		`{"id":1,"op":"connect","args":{"token":"eyJhbGciOiJIUzI1NiJ9.e30.sig"}}`,
		`{"id":2,"op":"channel.join","args":{"channel":"general","since_seq":41}}`,
		`{"id":"a1","op":"message.send","args":{"channel":"general","client_id":"c-1","text":"héllo 👋","data":{"k":[1,2,{"x":null}]}}}`,
		`{"id":3,"op":"messages.history","args":{"channel":"general","before":100,"limit":25,"top_level":true}}`,
		`{"id":4,"op":"me"}`,
		`{"op":"typing.start","args":{"channel":"general"}}`,
		"{\"id\":5,\"op\":\"me\"}\n{\"id\":6,\"op\":\"channels.list\",\"args\":{\"limit\":10}}\n",
		"{\"id\":7,\"op\":\"me\"}\r\n\r\n{\"id\":8,\"op\":\"logout\",\"args\":{}}\r\n",
		"\n\n  \n{\"id\":9,\"op\":\"me\"}",
		`{"id":10,"op":"me","args":[]}`,
		`{"id":null,"op":null,"args":null}`,
		`{"id":true,"op":"me"}`,
		`{"id":1e999,"op":"me"}`,
		"{\"id\":\"\xff\",\"op\":\"me\"}",
		`{"id":"\ud800","op":"me"}`,
		`{"ID":1,"OP":"me","Args":{}}`,
		`{"id":1,"id":2,"op":"a","op":"b"}`,
		`{"id":1,"op":"me"`,
		`[]`,
		`null`,
		``,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		checkFrame(t, msg)
		SplitFrames(msg, func(frame []byte) {
			if bytes.IndexByte(frame, '\n') >= 0 || len(bytes.TrimSpace(frame)) == 0 {
				t.Fatalf("SplitFrames passed %q", frame)
			}
			checkFrame(t, frame)
		})
	})
}

func checkFrame(t *testing.T, frame []byte) {
	req, err := DecodeRequest(frame)
	// The one-pass decoder agrees with encoding/json wherever it answers.
	if fast, ok := decodeRequestFast(frame); ok {
		slow, serr := decodeRequestSlow(frame)
		if serr != nil || fast.Op != slow.Op || !bytes.Equal(fast.ID, slow.ID) || !bytes.Equal(fast.Args, slow.Args) ||
			(fast.ID == nil) != (slow.ID == nil) || (fast.Args == nil) != (slow.Args == nil) {
			t.Fatalf("frame %q: one pass %+v, encoding/json %+v %v", frame, fast, slow, serr)
		}
	}
	if len(req.ID) > 0 {
		if len(req.ID) > maxIDLen || !json.Valid(req.ID) || !utf8.Valid(req.ID) {
			t.Fatalf("frame %q: id %q", frame, req.ID)
		}
		if c := req.ID[0]; c != '"' && c != '-' && (c < '0' || c > '9') {
			t.Fatalf("frame %q: id %q is neither a number nor a string", frame, req.ID)
		}
	}
	var reply []byte
	if err != nil {
		if err.Code != CodeBadRequest {
			t.Fatalf("frame %q: code %s", frame, err.Code)
		}
		reply = AppendError(nil, req.ID, err)
	} else {
		if req.Op == "" {
			t.Fatalf("frame %q: decoded without an op", frame)
		}
		if perr := CheckJSON(frame, frameDepth); perr != nil {
			t.Fatalf("frame %q: accepted but not strict JSON: %v", frame, perr)
		}
		if req.Args != nil {
			var obj map[string]json.RawMessage
			if json.Unmarshal(req.Args, &obj) != nil || obj == nil {
				t.Fatalf("frame %q: args %q are not an object", frame, req.Args)
			}
		}
		reply = AppendResult(nil, req.ID, []byte(`{}`))
	}
	if !json.Valid(reply) || !utf8.Valid(reply) {
		t.Fatalf("frame %q: reply %q is not valid JSON text", frame, reply)
	}
}
