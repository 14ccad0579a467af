package protocol

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckJSON(t *testing.T) {
	nest := func(n int) string { return strings.Repeat(`{"a":`, n-1) + `{}` + strings.Repeat(`}`, n-1) }
	arrays := func(n int) string { return strings.Repeat(`[`, n) + strings.Repeat(`]`, n) }
	good := []string{
		`{}`, `[]`, `null`, `true`, `false`, `0`, `-0.5e-3`, `"x"`,
		` { "k" : [ 1 , 2.5 , "é" , { } , [ ] , null , true ] } `,
		`{"emoji":"👋","escaped":"\ud83d\udc4b","bmp":"\u00e9\u0000\n"}`,
		`{"big":1e308,"small":1e-400,"long":123456789012345678901234567890}`,
		nest(MaxJSONDepth), arrays(MaxJSONDepth),
		"{\"key é\":\"value ✓\"}",
	}
	for _, s := range good {
		if err := CheckJSON([]byte(s), MaxJSONDepth); err != nil {
			t.Errorf("%.60q refused: %v", s, err)
		}
	}
	bad := map[string]string{
		"invalid UTF-8 in a value":   "{\"k\":\"a\xffb\"}",
		"invalid UTF-8 in a key":     "{\"\xc3\":1}",
		"truncated sequence":         "[\"\xe2\x82\"]",
		"overlong encoding":          "\"\xc0\xaf\"",
		"encoded surrogate":          "\"\xed\xa0\x80\"",
		"lone high surrogate":        `{"k":"\ud800"}`,
		"lone low surrogate":         `{"k":"\udc00x"}`,
		"high then non-surrogate":    `"\ud800\u0041"`,
		"reversed pair":              `"\udc00\ud800"`,
		"raw control character":      "\"a\tb\"",
		"bad escape":                 `"\x"`,
		"short unicode escape":       `"\u12"`,
		"number out of range":        `{"n":1e999}`,
		"negative out of range":      `[-1.8e308]`,
		"huge integer":               "[" + strings.Repeat("9", 400) + "]",
		"too deep objects":           nest(MaxJSONDepth + 1),
		"too deep arrays":            arrays(MaxJSONDepth + 1),
		"leading zero":               `[01]`,
		"trailing comma":             `{"a":1,}`,
		"missing colon":              `{"a" 1}`,
		"two values":                 `{} {}`,
		"unterminated":               `{"a":"b`,
		"bare word":                  `{"a":nul}`,
		"empty":                      ``,
		"dot without digits":         `[1.]`,
		"exponent without digits":    `[1e]`,
		"unquoted key":               `{a:1}`,
		"single quotes":              `{'a':1}`,
		"infinity literal":           `[Infinity]`,
		"NaN literal":                `[NaN]`,
		"plus sign":                  `[+1]`,
		"nul byte outside a string":  "{\x00}",
		"utf-8 BOM before the value": "\xef\xbb\xbf{}",
	}
	for name, s := range bad {
		if err := CheckJSON([]byte(s), MaxJSONDepth); err == nil {
			t.Errorf("%s: %q accepted", name, s)
		} else if err.Code != CodeBadRequest {
			t.Errorf("%s: code %s", name, err.Code)
		}
	}
}

func TestCheckObject(t *testing.T) {
	for _, tt := range []struct {
		v    string
		code Code // "" accepted
	}{
		{``, ""}, {`null`, ""}, {`{}`, ""}, {`{"a":[1,{"b":"ü"}]}`, ""},
		{`[]`, CodeBadRequest}, {`"x"`, CodeBadRequest}, {`1`, CodeBadRequest},
		{`{"a":"` + strings.Repeat("x", 100) + `"}`, CodeTooLarge},
		{"{\"a\":\"\xff\"}", CodeBadRequest},
		{`{"a":"\udfff"}`, CodeBadRequest},
		{`{"a":2e400}`, CodeBadRequest},
		{strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40), CodeTooLarge},
	} {
		err := CheckObject("data", json.RawMessage(tt.v), 64)
		switch {
		case tt.code == "" && err != nil:
			t.Errorf("%.40q refused: %v", tt.v, err)
		case tt.code != "" && (err == nil || err.Code != tt.code):
			t.Errorf("%.40q: got %v, want %s", tt.v, err, tt.code)
		}
	}
	deep := strings.Repeat(`{"a":`, MaxJSONDepth+1) + `1` + strings.Repeat(`}`, MaxJSONDepth+1)
	if err := CheckObject("data", json.RawMessage(deep), 1<<20); err == nil {
		t.Errorf("data %d levels deep accepted", MaxJSONDepth+1)
	}
}

// TestDecodeRequestRefusesWhatIsNotStrict: the frame decoder refuses
// invalid UTF-8, lone surrogates, out-of-range numbers and over-deep data
// anywhere in a frame, keeping the id for the error reply.
func TestDecodeRequestRefusesWhatIsNotStrict(t *testing.T) {
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + `1` + strings.Repeat(`}`, n) }
	for name, args := range map[string]string{
		"text not UTF-8":          "{\"channel\":\"g\",\"text\":\"\xff\"}",
		"data key not UTF-8":      "{\"channel\":\"g\",\"data\":{\"\xfe\":1}}",
		"metadata deep string":    "{\"metadata\":{\"a\":[[{\"b\":\"\xc3\"}]]}}",
		"escaped lone surrogate":  `{"channel":"g","text":"\ud83d"}`,
		"number out of range":     `{"channel":"g","data":{"n":1e400}}`,
		"data too deep":           `{"channel":"g","data":` + deep(MaxJSONDepth+1) + `}`,
		"unknown field not UTF-8": "{\"channel\":\"g\",\"x\xff\":1}",
	} {
		req, err := DecodeRequest([]byte(`{"id":7,"op":"message.send","args":` + args + `}`))
		if err == nil || err.Code != CodeBadRequest {
			t.Errorf("%s: got %v, want bad_request", name, err)
		}
		if string(req.ID) != "7" {
			t.Errorf("%s: id %q lost", name, req.ID)
		}
	}
	ok := `{"id":7,"op":"message.send","args":{"channel":"g","text":"é 👋 \ud83d\udc4b","data":` + deep(MaxJSONDepth) + `}}`
	if _, err := DecodeRequest([]byte(ok)); err != nil {
		t.Errorf("valid frame refused: %v", err)
	}
}

// FuzzCheckJSON: whatever CheckJSON accepts is one valid JSON value in
// valid UTF-8 that a standard decoder reads (numbers as float64) and
// re-encodes, within the depth bound.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,2,{"b":null}],"c":"é"}`, `[]`, `"\ud83d\udc4b"`, `"\ud800"`, "\"\xff\"", `1e999`, `[[[[[]]]]]`,
		`{"a":1e308,"b":-0.0,"c":"\u0000"}`, `{"k":"\\\"\/\b\f\n\r\t"}`, `01`, `{"a" : 1 , }`,
	} {
		f.Add([]byte(s), 4)
	}
	f.Fuzz(func(t *testing.T, b []byte, depth int) {
		depth = 1 + abs(depth)%40
		if CheckJSON(b, depth) != nil {
			return
		}
		if !utf8.Valid(b) || !json.Valid(b) {
			t.Fatalf("%q accepted but not valid UTF-8 JSON", b)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%q accepted but a standard decoder fails: %v", b, err)
		}
		if d := depthOf(v); d > depth {
			t.Fatalf("%q accepted at depth %d, bound %d", b, d, depth)
		}
		out, err := json.Marshal(v)
		if err != nil || CheckJSON(out, depth) != nil {
			t.Fatalf("%q: re-encoded %q (%v) is not strict", b, out, err)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func depthOf(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
		return d + 1
	case []any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
		return d + 1
	}
	return 0
}

// TestSanitize: stored JSON with invalid UTF-8 or lone surrogates comes
// out repaired and strict; valid JSON comes out untouched.
func TestSanitize(t *testing.T) {
	for _, s := range []string{`{"a":"é \ud83d\udc4b","n":[1,2.5e3]}`, `null`, ``, `{"x":"\u00e9"}`} {
		if got := string(Sanitize(json.RawMessage(s))); got != s {
			t.Errorf("Sanitize(%q) = %q, want it untouched", s, got)
		}
	}
	for _, s := range []string{"{\"a\":\"b\xffc\",\"\xfe\":[\"\\ud800\"]}", `{"k":"\udc00"}`, "{\"event\":\"message.new\",\"seq\":3,\"data\":{\"t\":\"\xc3\"}}"} {
		got := Sanitize(json.RawMessage(s))
		if err := CheckJSON(got, MaxJSONDepth); err != nil || !utf8.Valid(got) {
			t.Errorf("Sanitize(%q) = %q: %v", s, got, err)
		}
	}
	if got := string(Sanitize(json.RawMessage("{\"seq\":3,\"a\":\"\xff\"}"))); got != "{\"a\":\"\ufffd\",\"seq\":3}" {
		t.Errorf("Sanitize = %q", got)
	}
}
