package protocol

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeRecord(t *testing.T) {
	for _, c := range []struct {
		line string
		kind string // "" when refused
		msg  string // part of the refusal
	}{
		{`{"kind":"user","id":"u1","name":"Ann"}`, KindUser, ""},
		{`{"id":"u1","kind":"user"}`, KindUser, ""},
		{`{"kind":"message","id":"m","channel":"c","segment":3,"user":"u","created_at":"2020-01-02T03:04:05Z","reacted":{"+1":["a"]},"reply_count":2}`, KindMessage, ""},
		{`{"kind":"member","user":"u","channel":"c","roles":["owner"],"unread_count":4}`, KindMember, ""},
		{`{"kind":"channel","id":"c","type":"standard","member_count":3,"last_message":{"id":"x"}}`, KindChannel, ""},
		{`{"kind":"thread","id":"x"}`, "", `unknown kind "thread"`},
		{`{"id":"x"}`, "", "needs a kind"},
		{`{"kind":"user","id":"u","nmae":"typo"}`, "", `unknown field "nmae"`},
		{`{"kind":"message","id":"m","attachments":[{"id":"f","bogus":1}]}`, "", `unknown field "bogus"`},
		{`{"kind":"message","id":"m","segment":"three"}`, "", "message record"},
		{`{"kind":"message","id":"m","created_at":"yesterday"}`, "", "RFC 3339"},
		{`{"kind":"user","id":"u"} {"kind":"user"}`, "", "one JSON object"},
		{`["kind","user"]`, "", "one JSON object"},
		{`{"kind":"user","id":"u"`, "", ""},
	} {
		v, perr := DecodeRecord([]byte(c.line))
		if c.kind == "" {
			if perr == nil || perr.Code != CodeBadRequest || !strings.Contains(perr.Message, c.msg) {
				t.Errorf("%s: %v, want a bad_request with %q", c.line, perr, c.msg)
			}
			continue
		}
		if perr != nil || reflect.TypeOf(v).Elem() != recordTypes[c.kind] {
			t.Errorf("%s: %T %v", c.line, v, perr)
		}
	}
}

func TestScanRecordAndHeads(t *testing.T) {
	line := `{"kind":"message","id":"m\u0031","channel":"c","segment":12,"user":"u","parent_id":"p","reacted":{"+1":["a","b\"c"],"x":[]}}`
	f, perr := ScanRecord([]byte(line), true)
	if perr != nil || f.Kind != KindMessage || f.ID != "m1" || f.Segment != 12 || f.ParentID != "p" || strings.Join(f.Reactors, ",") != `a,b"c` {
		t.Fatalf("%+v %v", f, perr)
	}
	if _, perr := ScanRecord([]byte(`{"kind":"message","segment":-1}`), false); perr == nil {
		t.Error("a negative segment read")
	}
	if _, perr := ScanRecord([]byte(`{"kind":"message","reacted":{"+1":"a"}}`), true); perr == nil {
		t.Error("a reacted that is not lists read")
	}
	// A line cut short still tells its kind and channel.
	h := HeadOf([]byte(`{"kind":"message","id":"m","channel":"general","text":"aaaaaaaaaaaa`))
	if h.Kind != KindMessage || h.Channel != "general" {
		t.Errorf("head %+v", h)
	}
	if h := HeadOf([]byte(`{"kind":"channel","id":"c1","name":"x`)); h.Channel != "c1" {
		t.Errorf("a channel record's head %+v", h)
	}
}

// FuzzDecodeRecord feeds the import's record decoders any line: they
// never panic, a refusal is a bad_request, and what DecodeRecord accepts
// encodes to JSON that decodes again to the same record.
func FuzzDecodeRecord(f *testing.F) {
	for _, s := range []string{
		`{"kind":"user","id":"u1","name":"Ann","metadata":{"a":[1]}}`,
		`{"kind":"message","id":"m","channel":"c","segment":3,"user":"u","created_at":"2020-01-02T03:04:05Z","reacted":{"+1":["a"]},"reactions":{"+1":2},"attachments":[{"id":"f","size":3}],"system":{"kind":"k"}}`,
		`{"kind":"member","user":"u","channel":"c","roles":["owner"],"muted_until":null}`,
		`{"kind":"channel","id":"c","type":"standard","rate_limit":{"count":1,"window_ms":5},"attached_to":{"room_id":"r"}}`,
		`{"kind":"message","reacted":{"a":["\u00e9",""]}}`,
		`{"kind":"user"`, `{}`, `null`, "{\"kind\":\"user\",\"id\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		_ = HeadOf(line)
		if _, perr := ScanRecord(line, true); perr != nil && perr.Code != CodeBadRequest {
			t.Fatalf("scan: %v", perr)
		}
		v, perr := DecodeRecord(line)
		if perr != nil {
			if perr.Code != CodeBadRequest {
				t.Fatalf("decode: %v", perr)
			}
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode %T: %v", v, err)
		}
		w, perr := DecodeRecord(b)
		if perr != nil {
			t.Fatalf("%s decoded, but its encoding %s does not: %v", line, b, perr)
		}
		b2, _ := json.Marshal(w)
		if string(b) != string(b2) {
			t.Fatalf("not stable:\n%s\n%s", b, b2)
		}
	})
}

func TestLeadingString(t *testing.T) {
	for _, c := range []struct {
		in, key, want string
		ok            bool
	}{
		{`{"kind":"user","id":"x"}`, "kind", "user", true},
		{`{"id":"7-ab","x":1}`, "id", "7-ab", true},
		{`{"kind":"us\"er"}`, "kind", "", false},
		{`{"kinds":"user"}`, "kind", "", false},
		{`{"id":"x"}`, "kind", "", false},
		{`{"kind":3}`, "kind", "", false},
		{`{"kind":"open`, "kind", "", false},
		{``, "kind", "", false},
	} {
		got, ok := LeadingString([]byte(c.in), c.key)
		if got != c.want || ok != c.ok {
			t.Errorf("%s %s: %q %v", c.in, c.key, got, ok)
		}
	}
}
