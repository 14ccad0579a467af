package protocol

import (
	"encoding/json"
	"testing"
)

// TestAppendASCII: non-ASCII characters are escaped (a surrogate pair
// above U+FFFF), the JSON means the same, and the text is fit for an HTTP
// header.
func TestAppendASCII(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"id":0,"op":"connect","args":{"user_id":"a"}}`, `{"id":0,"op":"connect","args":{"user_id":"a"}}`},
		{`{"name":"Zoë"}`, `{"name":"Zo\u00eb"}`},
		{`{"name":"🎉!"}`, `{"name":"\ud83c\udf89!"}`},
		{"{\"name\":\"\xff\"}", `{"name":"\ufffd"}`},
	} {
		got := string(AppendASCII([]byte("x"), []byte(c.in)))
		if got != "x"+c.want {
			t.Errorf("AppendASCII(%q) = %q, want %q", c.in, got[1:], c.want)
			continue
		}
		for i := range len(got) {
			if got[i] < 0x20 || got[i] > 0x7e {
				t.Errorf("%q: byte %#x at %d", got, got[i], i)
			}
		}
		var a, b any
		if json.Unmarshal([]byte(c.in), &a) != nil || json.Unmarshal([]byte(c.want), &b) != nil {
			t.Fatalf("%q: not JSON", c.in)
		}
		if ja, _ := json.Marshal(a); string(ja) != mustMarshal(b) {
			t.Errorf("%q means %s, escaped %s", c.in, ja, mustMarshal(b))
		}
	}
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
