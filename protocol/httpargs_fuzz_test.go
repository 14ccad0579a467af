package protocol

import (
	"encoding/json"
	"net/url"
	"reflect"
	"testing"
)

// FuzzHTTPArgs feeds the HTTP API's body decoder any body and query
// string, for any op. It never panics; a refusal is a bad_request; what
// it accepts is a JSON object of the op's args alone (exact names,
// nested objects too), which decodes again to the same value.
func FuzzHTTPArgs(f *testing.F) {
	seeds := []struct {
		op    byte
		body  string
		query string
	}{
		{22, `{"channel":"general","client_id":"c1","text":"héllo 👋","data":{"k":[1,2,{"x":null}]}}`, ""},
		{22, `{"text":"hi","mentions":["bob"],"tags":["a"],"type":"text"}`, ""},
		{25, ``, "limit=10&before=40&top_level=true&search=a+b"},
		{25, ``, "limit=ten&page=2"},
		{7, `{"type":"live","attached_to":{"stream_id":"s","bogus":1}}`, ""},
		{8, `{"channel":"c","rate_limit":{"count":1,"window_ms":1000}}`, ""},
		{4, `{"ids":["a","b"]}`, ""},
		{2, `{}`, ""},
		{2, `{"\u0078":1}`, ""},
		{22, `{"text":"a","text":"b"}`, ""},
		{22, `{"text":`, ""},
		{22, `[]`, ""},
		{22, `{"a":"\"}"}`, ""},
		{22, "{\"text\":\"\xff\"}", ""},
		{22, `{"text":"x"}   `, "text=y"},
	}
	for _, s := range seeds {
		f.Add(s.op, []byte(s.body), s.query)
	}
	ops := Ops()
	f.Fuzz(func(t *testing.T, which byte, body []byte, rawQuery string) {
		op := ops[int(which)%len(ops)]
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			q = nil
		}
		args, v, perr := op.HTTPArgs(body, q, map[string]string{"channel": "general"})
		if perr != nil {
			if perr.Code != CodeBadRequest && perr.Code != CodeTooLong && perr.Code != CodeTooLarge {
				t.Fatalf("refused with %s: %s", perr.Code, perr.Message)
			}
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(args, &m); err != nil {
			t.Fatalf("accepted args are not an object: %s: %v", args, err)
		}
		checkNames(t, op.shape, m)
		again, perr := op.Decode(args)
		if perr != nil {
			t.Fatalf("accepted args %s do not decode again: %v", args, perr)
		}
		if !reflect.DeepEqual(again, v) {
			t.Fatalf("decoded twice differently: %+v / %+v", v, again)
		}
	})
}

// checkNames fails unless every key of m (and of nested objects of
// object args) is an arg of sh, spelled exactly.
func checkNames(t *testing.T, sh *shape, m map[string]json.RawMessage) {
	t.Helper()
	for k, raw := range m {
		f := sh.fields[k]
		if f == nil {
			t.Fatalf("accepted unknown argument %q", k)
		}
		if f.nested != nil && len(raw) > 0 && raw[0] == '{' {
			var inner map[string]json.RawMessage
			if json.Unmarshal(raw, &inner) == nil {
				checkNames(t, f.nested, inner)
			}
		}
	}
}
