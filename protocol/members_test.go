package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
)

// members lists b's members as EachMember walks them.
func members(b []byte) (keys, values []string, ok bool) {
	ok = EachMember(b, func(k, v []byte) bool {
		keys, values = append(keys, string(k)), append(values, string(v))
		return true
	})
	return keys, values, ok
}

func TestEachMember(t *testing.T) {
	keys, values, ok := members([]byte(` { "a" : 1 ,"b":"x\"}]" , "c":{"d":[1,{"e":"]"}]},"f":[] ,"g":null,"h":-1.5e3 } `))
	want := []string{"1", `"x\"}]"`, `{"d":[1,{"e":"]"}]}`, "[]", "null", "-1.5e3"}
	if !ok || len(values) != len(want) || keys[2] != "c" {
		t.Fatalf("walked %v %v ok=%v", keys, values, ok)
	}
	for i := range want {
		if values[i] != want[i] {
			t.Fatalf("value %d = %s, want %s", i, values[i], want[i])
		}
	}
	if _, _, ok := members([]byte(`{}`)); !ok {
		t.Fatal("empty object refused")
	}
	stopped := 0
	if !EachMember([]byte(`{"a":1,"b":2}`), func(k, v []byte) bool { stopped++; return false }) || stopped != 1 {
		t.Fatal("fn returning false did not stop the walk")
	}
	for _, bad := range []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a":"x}`, `{"a":{"b":1}`, `{"a":1}x`, `{a:1}`, `"s"`} {
		if _, _, ok := members([]byte(bad)); ok {
			t.Errorf("walked %q", bad)
		}
	}
}

func TestMemberUint(t *testing.T) {
	for in, want := range map[string]uint64{
		`{"channel":{"seq":9},"seq":42}`:            42,
		`{"seq":0}`:                                 0,
		`{"seq":18446744073709551615}`:              1<<64 - 1,
		`{"messages":[{"seq":1}],"seq":7,"x":true}`: 7,
	} {
		if got, ok := MemberUint([]byte(in), "seq"); !ok || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{`{"seq":-1}`, `{"seq":1.5}`, `{"seq":"1"}`, `{"seq":01}`, `{"seq":18446744073709551616}`, `{"other":1}`, `{"seq":null}`, `[1]`} {
		if got, ok := MemberUint([]byte(in), "seq"); ok {
			t.Errorf("%s: read %d", in, got)
		}
	}
}

// FuzzEachMember: no input panics it, and on every JSON object it walks
// exactly the members encoding/json sees, values byte for byte.
func FuzzEachMember(f *testing.F) {
	f.Add([]byte(`{"id":1,"result":{"channel":{"id":"c"},"seq":2,"events":[]}}`))
	f.Add([]byte(`{"a":"\\\"","b":[{"c":"}"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, values, ok := members(b)
		var want map[string]json.RawMessage
		if !json.Valid(b) || json.Unmarshal(b, &want) != nil || want == nil {
			return
		}
		if !ok {
			t.Fatalf("refused the object %q", b)
		}
		seen := make(map[string]int)
		unescaped := make([]string, len(keys))
		for i, k := range keys {
			if json.Unmarshal([]byte(`"`+k+`"`), &unescaped[i]) != nil {
				t.Fatalf("key %q is not a JSON string body", k)
			}
			seen[unescaped[i]]++
			if !json.Valid([]byte(values[i])) {
				t.Fatalf("value %q of %q is not JSON", values[i], k)
			}
		}
		for i, key := range unescaped {
			if w := want[key]; seen[key] == 1 && !bytes.Equal(w, []byte(values[i])) {
				t.Fatalf("%q: walked %q, encoding/json %q", key, values[i], w)
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("walked %d distinct members, encoding/json %d", len(seen), len(want))
		}
	})
}
