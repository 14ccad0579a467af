package client

import "bytes"

// decodeEvent parses an event frame in the exact shape the server writes
// ({"event":"…","channel":"…","seq":N,"data":…}, fields in that order,
// channel, seq and data optional) without reflection: a live room's
// viewers decode every message, and this keeps that cheap. Anything else
// (a reply, escapes in a name, another field order) reports false and
// takes encoding/json. e.Data aliases b; it is not validated here (it is
// the rest of a frame the server encoded with encoding/json, and whoever
// reads it unmarshals it, which validates it): skipping that scan is a
// third of the cost of an event.
func decodeEvent(b []byte, e *Event) bool {
	rest, ok := bytes.CutPrefix(b, []byte(`{"event":"`))
	if !ok {
		return false
	}
	var name, ch []byte
	if name, rest, ok = plainString(rest); !ok || len(name) == 0 {
		return false
	}
	if r, ok := bytes.CutPrefix(rest, []byte(`,"channel":"`)); ok {
		if ch, rest, ok = plainString(r); !ok {
			return false
		}
	}
	var seq uint64
	if r, ok := bytes.CutPrefix(rest, []byte(`,"seq":`)); ok {
		i := 0
		for ; i < len(r) && r[i] >= '0' && r[i] <= '9'; i++ {
			if i >= 19 {
				return false
			}
			seq = seq*10 + uint64(r[i]-'0')
		}
		if i == 0 || (i > 1 && r[0] == '0') {
			return false
		}
		rest = r[i:]
	}
	var data []byte
	if r, ok := bytes.CutPrefix(rest, []byte(`,"data":`)); ok {
		r = bytes.TrimRight(r, " \t\r")
		if len(r) < 2 || r[len(r)-1] != '}' {
			return false
		}
		data = r[:len(r)-1]
		if len(data) == 0 {
			return false
		}
		rest = r[len(r)-1:]
	}
	if !bytes.Equal(bytes.TrimRight(rest, " \t\r"), []byte("}")) {
		return false
	}
	*e = Event{Name: string(name), Channel: string(ch), Seq: seq, Data: data}
	return true
}

// plainString reads a JSON string body up to its closing quote; it fails
// on escapes, control characters and non-ASCII bytes, which the caller leaves to
// encoding/json.
func plainString(b []byte) (s, rest []byte, ok bool) {
	for i, c := range b {
		switch {
		case c == '"':
			return b[:i], b[i+1:], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, nil, false
		}
	}
	return nil, nil, false
}
