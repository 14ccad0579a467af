package client

import (
	"bytes"
	"encoding/json"

	"github.com/switchboard-chat/switchboard/protocol"
)

// decodeEvent parses an event frame in the exact shape the server writes
// ({"event":"…","channel":"…","seq":N,"data":…}, fields in that order,
// channel, seq and data optional) without reflection: a live room's
// viewers decode every message, and this keeps that cheap. Anything else
// (a reply, escapes in a name, another field order) reports false and
// takes encoding/json. e.Data aliases b; it is not validated here (it is
// the rest of a frame the server encoded with encoding/json, and whoever
// reads it unmarshals it, which validates it): skipping that scan is a
// third of the cost of an event.
func decodeEvent(b []byte, e *Event) bool { return decodeEventInterned(b, e, nil) }

// decodeEventInterned is decodeEvent taking the name and channel from in
// when they repeat the last event's (nil: none).
func decodeEventInterned(b []byte, e *Event, in *interner) bool {
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
		var n int
		if seq, n = uintPrefix(r); n == 0 {
			return false
		}
		rest = r[n:]
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
	if in == nil {
		in = new(interner)
	}
	*e = Event{Name: in.get(&in.name, name), Channel: in.get(&in.channel, ch), Seq: seq, Data: data}
	return true
}

// uintPrefix reads the JSON unsigned integer b starts with (at most 19
// digits, no leading zero) and returns it and its length; size 0: there
// is none.
func uintPrefix(b []byte) (n uint64, size int) {
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i >= 19 {
			return 0, 0
		}
		n = n*10 + uint64(b[i]-'0')
	}
	if i == 0 || (i > 1 && b[0] == '0') {
		return 0, 0
	}
	return n, i
}

// interner keeps the last event's name and channel, which the next event
// most often repeats (a live room's viewer gets one channel's
// message.new after message.new), so they are not allocated anew. A read
// loop has one; it is not safe for concurrent use.
type interner struct{ name, channel string }

func (in *interner) get(last *string, b []byte) string {
	if string(b) != *last {
		*last = string(b)
	}
	return *last
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

// decodeReply parses a success reply in the exact shape the server writes
// ({"id":N,"result":…}, protocol.AppendResult) without reflection; f.Result
// aliases b and is not validated here (see decodeEvent: whoever reads it
// unmarshals it). Anything else (an error reply, a string id, an event)
// reports false and takes encoding/json.
func decodeReply(b []byte, f *frame) bool {
	rest, ok := bytes.CutPrefix(b, []byte(`{"id":`))
	if !ok {
		return false
	}
	_, i := uintPrefix(rest)
	if i == 0 {
		return false
	}
	id := rest[:i]
	r, ok := bytes.CutPrefix(rest[i:], []byte(`,"result":`))
	if !ok {
		return false
	}
	r = bytes.TrimRight(r, " \t\r")
	if len(r) < 3 || r[len(r)-1] != '}' || (r[0] != '{' && r[0] != '[') {
		return false
	}
	*f = frame{ID: id, Result: r[:len(r)-1]}
	return true
}

// watchResult is what the client reads of a join, watch or create result.
type watchResult struct {
	Channel       string
	Seq           uint64
	Events        []json.RawMessage
	EventsHasMore bool
	Reset         bool
}

// parseWatchResult reads the few members of a join, watch or create
// result the client needs (channel.id, seq, events, events_has_more,
// reset) and skips the rest (the channel, member and message page)
// undecoded: encoding/json would decode all of it, and a load test
// joins thousands of sessions. Each member it reads is decoded as
// encoding/json would; ok is false where that fails.
func parseWatchResult(b []byte) (r watchResult, ok bool) {
	ok = true
	walked := protocol.EachMember(b, func(k, v []byte) bool {
		switch string(k) {
		case "channel":
			if !protocol.EachMember(v, func(k, v []byte) bool {
				if string(k) == "id" {
					ok = jsonString(v, &r.Channel)
				}
				return ok
			}) && string(v) != "null" {
				ok = false
			}
		case "seq":
			if r.Seq, ok = protocol.ParseUint(v); !ok {
				ok = json.Unmarshal(v, &r.Seq) == nil
			}
		case "events":
			ok = json.Unmarshal(v, &r.Events) == nil
		case "events_has_more":
			ok = json.Unmarshal(v, &r.EventsHasMore) == nil
		case "reset":
			ok = json.Unmarshal(v, &r.Reset) == nil
		}
		return ok
	})
	return r, walked && ok
}

// jsonString decodes a JSON string, without encoding/json when it has
// no escapes.
func jsonString(v []byte, s *string) bool {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && bytes.IndexByte(v, '\\') < 0 {
		*s = string(v[1 : len(v)-1])
		return true
	}
	return json.Unmarshal(v, s) == nil
}

// connectUser reads the user's id from a connect result (user.id; empty
// when it has none); ok is false when the result is not an object.
func connectUser(b []byte) (id string, ok bool) {
	ok = true
	walked := protocol.EachMember(b, func(k, v []byte) bool {
		if string(k) != "user" {
			return true
		}
		protocol.EachMember(v, func(k, v []byte) bool {
			if string(k) == "id" {
				ok = jsonString(v, &id)
				return false
			}
			return true
		})
		return false
	})
	return id, walked && ok
}
