package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/protocol"
)

// strictConn is a raw connection that checks every frame the server sends
// it: valid UTF-8 (RFC 6455 makes a browser fail the connection
// otherwise) and strictly decodable JSON — no lone surrogate escapes, no
// number beyond float64, one value.
type strictConn struct {
	*rawConn
	frames int
	events map[string]int // events seen, by name
}

func strictDial(t *testing.T, addr, user string) *strictConn {
	t.Helper()
	c := &strictConn{rawConn: rawDialAddr(t, addr), events: map[string]int{}}
	c.write(`{"id":1,"op":"connect","args":{"user_id":"` + user + `"}}`)
	if m := c.reply(); m["result"] == nil {
		t.Fatalf("connect %s: %v", user, m)
	}
	return c
}

// next reads one frame and checks it.
func (c *strictConn) next() map[string]any {
	c.t.Helper()
	f := c.nextRaw()
	c.frames++
	if !utf8.Valid(f) {
		c.t.Fatalf("server sent a frame that is not valid UTF-8: %q", f)
	}
	if err := protocol.CheckJSON(f, 64); err != nil {
		c.t.Fatalf("server sent a frame a strict decoder refuses (%v): %q", err, f)
	}
	var m map[string]any
	if err := json.Unmarshal(f, &m); err != nil {
		c.t.Fatalf("server sent invalid JSON %q: %v", f, err)
	}
	return m
}

// call sends one request frame and returns its reply, checking every
// event that arrives before it too.
func (c *strictConn) call(id int, op, args string) map[string]any {
	c.t.Helper()
	c.write(fmt.Sprintf(`{"id":%d,"op":%q,"args":%s}`, id, op, args))
	for {
		m := c.next()
		if name, isEvent := m["event"].(string); isEvent {
			c.events[name]++
			continue
		}
		if got, _ := m["id"].(float64); int(got) != id {
			c.t.Fatalf("reply %v to request %d", m, id)
		}
		return m
	}
}

func (c *strictConn) ok(id int, op, args string) map[string]any {
	c.t.Helper()
	m := c.call(id, op, args)
	if m["result"] == nil {
		c.t.Fatalf("%s %s: %v", op, args, m)
	}
	return m["result"].(map[string]any)
}

// TestHostileInputNeverReachesAClient: invalid UTF-8 (raw or as a lone
// surrogate escape), numbers beyond float64 and over-deep objects are
// refused with bad_request wherever they appear in a frame — data,
// metadata, keys, names, any op — and change nothing; everything the
// node sends, to the sender and to a watcher, replies, events, history,
// discovery and profiles, is valid UTF-8 and strictly decodable.
func TestHostileInputNeverReachesAClient(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node process")
	}
	t.Parallel()
	p := startProc(t, "--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", t.TempDir(), "--failure-detection", "fast")
	alice := strictDial(t, p.addr, "alice")
	bob := strictDial(t, p.addr, "bob")
	alice.ok(2, "channel.create", `{"id":"unicode","type":"standard","name":"Ünïcode ✓","metadata":{"k":"✓ \ud83d\udc4b"},"tags":["ü"]}`)
	bob.ok(2, "channel.join", `{"channel":"unicode"}`)

	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + `1` + strings.Repeat(`}`, n) }
	hostile := []struct{ op, args string }{
		{"message.send", "{\"channel\":\"unicode\",\"client_id\":\"h1\",\"text\":\"bad \xff\"}"},
		{"message.send", "{\"channel\":\"unicode\",\"client_id\":\"h2\",\"data\":{\"\xfe\":1}}"},
		{"message.send", `{"channel":"unicode","client_id":"h3","data":{"k":"\ud800"}}`},
		{"message.send", `{"channel":"unicode","client_id":"h4","metadata":{"n":1e999}}`},
		{"message.send", `{"channel":"unicode","client_id":"h5","data":` + deep(protocol.MaxJSONDepth+1) + `}`},
		{"message.send", "{\"channel\":\"unicode\",\"client_id\":\"h6\",\"tags\":[\"\xc3\"]}"},
		{"channel.create", "{\"id\":\"bad\",\"type\":\"standard\",\"metadata\":{\"k\":[\"\xe2\x82\"]}}"},
		{"channel.create", `{"id":"bad","type":"standard","name":"\udfff"}`},
		{"channel.update", "{\"channel\":\"unicode\",\"metadata\":{\"x\":\"\xff\"}}"},
		{"channel.update", "{\"channel\":\"unicode\",\"description\":\"\xc0\xaf\"}"},
		{"user.update", "{\"name\":\"\xff\"}"},
		{"user.update", `{"metadata":{"a":"\udc00"}}`},
		{"user.update", `{"metadata":` + deep(protocol.MaxJSONDepth+1) + `}`},
		{"messages.history", "{\"channel\":\"unicode\",\"search\":\"\xff\"}"},
		{"channels.query", "{\"tags\":[\"\xff\"]}"},
	}
	for i, h := range hostile {
		m := alice.call(100+i, h.op, h.args)
		if errCode(m) != string(protocol.CodeBadRequest) {
			t.Errorf("%s %q: got %v, want bad_request", h.op, h.args, m)
		}
	}
	// A connect with a name that is not UTF-8 is refused too.
	c := &strictConn{rawConn: rawDialAddr(t, p.addr), events: map[string]int{}}
	c.write("{\"id\":1,\"op\":\"connect\",\"args\":{\"user_id\":\"carol\",\"name\":\"\xff\"}}")
	if m := c.next(); errCode(m) != string(protocol.CodeBadRequest) {
		t.Errorf("connect with a bad name: %v", m)
	}

	// Valid Unicode of every kind goes through, at the depth bound.
	alice.ok(200, "message.send", `{"channel":"unicode","client_id":"ok1","text":"é 👋 \ud83d\udc4b \u0000","data":`+
		deep(protocol.MaxJSONDepth)+`,"metadata":{"n":1e308,"s":"\u2028"}}`)
	alice.ok(201, "user.update", `{"name":"Alïce","metadata":{"k":"✓"}}`)
	alice.ok(202, "channel.update", `{"channel":"unicode","description":"ça va"}`)

	// Everything readable, through every read path.
	hist := alice.ok(300, "messages.history", `{"channel":"unicode"}`)
	users := 0
	for _, raw := range hist["messages"].([]any) {
		m := raw.(map[string]any)
		if m["type"] != protocol.MessageSystem {
			users++
			if m["client_id"] != "ok1" {
				t.Errorf("a refused message was stored: %v", m)
			}
		}
	}
	if users != 1 {
		t.Errorf("history holds %d user messages, want 1", users)
	}
	alice.ok(301, "channel.get", `{"channel":"unicode"}`)
	alice.ok(302, "channels.query", `{"limit":10}`)
	alice.ok(303, "channels.list", `{}`)
	alice.ok(304, "users.get", `{"ids":["alice","bob"]}`)
	alice.ok(305, "members.list", `{"channel":"unicode"}`)
	bob.ok(306, "messages.history", `{"channel":"unicode"}`)
	bob.ok(307, "channel.watch", `{"channel":"unicode","since_seq":0}`)
	if bob.events[protocol.EventMessageNew] != 1 || bob.events[protocol.EventChannelUpdated] != 1 {
		t.Errorf("bob saw events %v, want one message.new and one channel.updated", bob.events)
	}
}
