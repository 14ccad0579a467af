package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name  string
		frame string
		id    string // the id returned, "" for none
		op    string
		args  string
		fail  bool
	}{
		{name: "number id", frame: `{"id":7,"op":"me"}`, id: `7`, op: "me"},
		{name: "string id and args", frame: `{"id":"a-1","op":"message.send","args":{"channel":"g","text":"hi"}}`, id: `"a-1"`, op: "message.send", args: `{"channel":"g","text":"hi"}`},
		{name: "no id", frame: `{"op":"me"}`, op: "me"},
		{name: "null id", frame: `{"id":null,"op":"me"}`, op: "me"},
		{name: "null args", frame: `{"id":1,"op":"me","args":null}`, id: `1`, op: "me"},
		{name: "empty args", frame: `{"id":1,"op":"me","args":{}}`, id: `1`, op: "me", args: `{}`},
		{name: "whitespace", frame: " \t{ \"id\" : 2 ,\r\n \"op\" : \"me\" } \r", id: `2`, op: "me"},
		{name: "float id", frame: `{"id":-1.5e3,"op":"me"}`, id: `-1.5e3`, op: "me"},
		{name: "longest string id", frame: `{"id":"` + long(62) + `","op":"me"}`, id: `"` + long(62) + `"`, op: "me"},
		{name: "escaped id", frame: `{"id":"\u00e9\n","op":"me"}`, id: `"\u00e9\n"`, op: "me"},
		{name: "unknown fields", frame: `{"id":1,"op":"me","extra":[1,2]}`, id: `1`, op: "me"},

		{name: "empty", frame: ``, fail: true},
		{name: "null", frame: `null`, fail: true},
		{name: "array", frame: `[{"id":1,"op":"me"}]`, fail: true},
		{name: "string", frame: `"me"`, fail: true},
		{name: "truncated", frame: `{"id":1,"op":"me"`, fail: true},
		{name: "trailing data", frame: `{"id":1,"op":"me"} x`, fail: true},
		{name: "two objects", frame: `{"id":1,"op":"me"}{"id":2,"op":"me"}`, fail: true},
		{name: "no op", frame: `{"id":1}`, id: `1`, fail: true},
		{name: "op a number", frame: `{"id":1,"op":5}`, id: `1`, fail: true},
		{name: "op null", frame: `{"id":1,"op":null}`, id: `1`, fail: true},
		{name: "op empty", frame: `{"id":1,"op":""}`, id: `1`, fail: true},
		{name: "op an object", frame: `{"id":1,"op":{}}`, id: `1`, fail: true},
		{name: "args an array", frame: `{"id":1,"op":"me","args":[]}`, id: `1`, fail: true},
		{name: "args a string", frame: `{"id":1,"op":"me","args":"{}"}`, id: `1`, fail: true},
		{name: "args a number", frame: `{"id":1,"op":"me","args":5}`, id: `1`, fail: true},
		{name: "args true", frame: `{"id":"x","op":"me","args":true}`, id: `"x"`, fail: true},
		{name: "id true", frame: `{"id":true,"op":"me"}`, fail: true},
		{name: "id an object", frame: `{"id":{},"op":"me"}`, fail: true},
		{name: "id an array", frame: `{"id":[1],"op":"me"}`, fail: true},
		{name: "id too long", frame: `{"id":"` + long(63) + `","op":"me"}`, fail: true},
		{name: "huge string id", frame: `{"id":"` + long(100000) + `","op":"me"}`, fail: true},
		{name: "huge number id", frame: `{"id":1` + strings.Repeat("0", 70) + `,"op":"me"}`, fail: true},
		{name: "id out of range", frame: `{"id":1e999,"op":"me"}`, fail: true},
		{name: "id not UTF-8", frame: "{\"id\":\"a\xffb\",\"op\":\"me\"}", fail: true},
		{name: "id with a broken sequence", frame: "{\"id\":\"\xe2\x82\",\"op\":\"me\"}", fail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeRequest([]byte(tt.frame))
			if string(req.ID) != tt.id {
				t.Errorf("id %q, want %q", req.ID, tt.id)
			}
			if tt.fail {
				if err == nil {
					t.Fatalf("decoded %+v, want bad_request", req)
				}
				if err.Code != CodeBadRequest {
					t.Errorf("code %s, want bad_request", err.Code)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if req.Op != tt.op || string(req.Args) != tt.args {
				t.Errorf("op %q args %q, want %q %q", req.Op, req.Args, tt.op, tt.args)
			}
		})
	}
}

func TestDecodeArgs(t *testing.T) {
	var a struct {
		Name string `json:"name"`
		At   Time   `json:"at"`
	}
	if err := DecodeArgs(nil, &a); err != nil {
		t.Errorf("no args: %v", err)
	}
	if err := DecodeArgs(json.RawMessage(`{"name":"n","at":"2026-03-01T12:00:00Z"}`), &a); err != nil || a.Name != "n" || a.At.IsZero() {
		t.Errorf("good args: %v %+v", err, a)
	}
	for _, bad := range []string{`{"name":1}`, `[]`, `{"at":"yesterday"}`, `{"at":5}`, `{`} {
		if err := DecodeArgs(json.RawMessage(bad), &a); err == nil || err.Code != CodeBadRequest {
			t.Errorf("%s: %v, want bad_request", bad, err)
		}
	}
	if err := DecodeArgs(json.RawMessage(`{"name":[1]}`), &a); err == nil || !strings.Contains(err.Message, "name") {
		t.Errorf("error %v does not name the field", err)
	}
	// Client data is never echoed in the error.
	if err := DecodeArgs(json.RawMessage(`{"name":"x" SECRET}`), &a); err == nil || strings.Contains(err.Message, "SECRET") {
		t.Errorf("error %v", err)
	}
}

func TestSplitFrames(t *testing.T) {
	tests := []struct {
		msg  string
		want []string
	}{
		{``, nil},
		{"\n\n", nil},
		{` `, nil},
		{`{"a":1}`, []string{`{"a":1}`}},
		{"{\"a\":1}\n{\"b\":2}", []string{`{"a":1}`, `{"b":2}`}},
		{"{\"a\":1}\n", []string{`{"a":1}`}},
		{"\n\n{\"a\":1}\n\n\n{\"b\":2}\n\n", []string{`{"a":1}`, `{"b":2}`}},
		{"{\"a\":1}\r\n{\"b\":2}\r\n", []string{"{\"a\":1}\r", "{\"b\":2}\r"}},
		{" \r\n\t\n\r\n{\"a\":1}\n \t \n", []string{`{"a":1}`}},
	}
	for _, tt := range tests {
		var got []string
		SplitFrames([]byte(tt.msg), func(f []byte) { got = append(got, string(f)) })
		if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
			t.Errorf("SplitFrames(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
	// Frames split from a CRLF message decode.
	n := 0
	SplitFrames([]byte("{\"id\":1,\"op\":\"me\"}\r\n\r\n{\"id\":2,\"op\":\"me\"}\r\n"), func(f []byte) {
		if _, err := DecodeRequest(f); err != nil {
			t.Errorf("frame %q: %v", f, err)
		}
		n++
	})
	if n != 2 {
		t.Errorf("%d frames, want 2", n)
	}
}

func TestAppendReplies(t *testing.T) {
	ids := []json.RawMessage{nil, json.RawMessage(`7`), json.RawMessage(`"a\"b"`), json.RawMessage(`-1.5e3`)}
	for _, id := range ids {
		for _, result := range [][]byte{nil, []byte(`{}`), []byte(`{"message":{"id":"1-a","text":"hi\nthere"}}`), []byte(`[1,2]`)} {
			b := AppendResult([]byte(`{"event":"x"}`+"\n"), id, result)
			_, frame, _ := strings.Cut(string(b), "\n")
			var r struct {
				ID     json.RawMessage `json:"id"`
				Result json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal([]byte(frame), &r); err != nil {
				t.Fatalf("AppendResult(%s, %s) = %s: %v", id, result, frame, err)
			}
			if want := string(id); want != "" && string(r.ID) != want || want == "" && string(r.ID) != "null" {
				t.Errorf("id %s, want %s", r.ID, id)
			}
		}
		for _, e := range []*Error{
			Errorf(CodeBadRequest, "bad %q", "input\n\"quoted\""),
			{Code: CodeRateLimited, Message: "slow down", RetryAfterMS: 250},
			{Code: CodeInternal},
		} {
			b := AppendError(nil, id, e)
			var r struct {
				ID    json.RawMessage `json:"id"`
				Error *Error          `json:"error"`
			}
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("AppendError(%s, %v) = %s: %v", id, e, b, err)
			}
			if *r.Error != *e || string(r.ID) != string(id) {
				t.Errorf("AppendError(%s, %v) = %s", id, e, b)
			}
			if e.RetryAfterMS == 0 && strings.Contains(string(b), "retry_after_ms") {
				t.Errorf("retry_after_ms without a delay: %s", b)
			}
		}
	}
}

func TestEncodeEvent(t *testing.T) {
	b, err := EncodeEvent(EventMessageNew, "general", 42, map[string]int{"x": 1})
	if err != nil || string(b) != `{"event":"message.new","channel":"general","seq":42,"data":{"x":1}}` {
		t.Errorf("persisted event %s %v", b, err)
	}
	b, err = EncodeEvent(EventTyping, "general", 0, map[string]any{"user": "u", "active": true})
	if err != nil || strings.Contains(string(b), "seq") {
		t.Errorf("ephemeral event %s %v, want no seq", b, err)
	}
}

func TestAsError(t *testing.T) {
	known := Errorf(CodeNotFound, "no channel %s", "x")
	tests := []struct {
		err  error
		want *Error
	}{
		{nil, nil},
		{known, known},
		{fmt.Errorf("route: %w", known), known},
		{errors.New("disk on fire at /var/secret"), &Error{Code: CodeInternal, Message: "internal error"}},
		{&Error{Code: "made_up", Message: "leak"}, &Error{Code: CodeInternal, Message: "internal error"}},
	}
	for _, tt := range tests {
		got := AsError(tt.err)
		if (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
			t.Errorf("AsError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	for code, retry := range map[Code]bool{CodeUnavailable: true, CodeRateLimited: true, CodeBadRequest: false, CodeInternal: false, CodeForbidden: false} {
		if code.Retryable() != retry || !code.Known() {
			t.Errorf("%s: retryable %v known %v", code, code.Retryable(), code.Known())
		}
	}
	if Code("nope").Known() {
		t.Errorf("an unknown code is known")
	}
}

// TestDecodeRequestOnePass: the frames clients send take the one-pass
// decoder; anything unusual goes to encoding/json, with the same result
// as ever (TestDecodeRequest, FuzzDecodeRequest).
func TestDecodeRequestOnePass(t *testing.T) {
	for _, f := range []string{
		`{"id":1,"op":"message.send","args":{"channel":"general","client_id":"c-1","text":"héllo"}}`,
		` { "op" : "me" , "id" : "a-1" } `,
		`{"id":null,"op":"typing.start","args":null}`,
		`{"id":1,"id":2,"op":"a","op":"b"}`,
	} {
		fast, ok := decodeRequestFast([]byte(f))
		if !ok {
			t.Errorf("%s: not decoded in one pass", f)
			continue
		}
		slow, err := decodeRequestSlow([]byte(f))
		if err != nil || fast.Op != slow.Op || string(fast.ID) != string(slow.ID) || string(fast.Args) != string(slow.Args) {
			t.Errorf("%s: one pass %+v, encoding/json %+v %v", f, fast, slow, err)
		}
	}
	for _, f := range []string{
		`{"ID":1,"OP":"me"}`,                                 // keys encoding/json matches without case
		`{"id":1,"op":"m\u0065"}`,                            // an escaped op
		`{"id":1,"op":"me","extra":1}`,                       // a key the envelope does not have
		`{"id":1,"op":"me"} x`,                               // data after the object
		`{"id":1,"op":""}`,                                   // an empty op
		`{"id":1,"op":"me","args":[]}`,                       // args not an object
		`{"id":true,"op":"me"}`,                              // an id that is no number or string
		`{"id":1,"op":"me","args":{"a":` + "\"\xff\"" + `}}`, // not strict
	} {
		if _, ok := decodeRequestFast([]byte(f)); ok {
			t.Errorf("%s: decoded in one pass", f)
		}
	}
}
