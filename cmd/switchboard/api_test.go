package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/protocol"
)

// End-to-end tests of the server HTTP API against a real node: every
// resource URL, rpc for a sample of ops, every reachable status code,
// who may do what, and bodies the server refuses without changing
// anything. Each answer is checked against the OpenAPI document.

// putUsers creates users through the API.
func putUsers(t *testing.T, n addresser, users ...string) {
	t.Helper()
	for _, u := range users {
		keyAPI(t, n, "").do("PUT", "/v1/users/"+u, map[string]any{"name": strings.ToUpper(u[:1]) + u[1:]}, "/v1/users/{id}").want(t, 200, "")
	}
}

func TestAPIResources(t *testing.T) {
	n, _ := apiNode(t)
	putUsers(t, n, "alice", "bob", "carol")
	alice, carol := keyAPI(t, n, "alice"), keyAPI(t, n, "carol")

	c := alice.do("POST", "/v1/channels", map[string]any{"id": "team", "type": "private", "name": "Team", "members": []string{"bob"}}, "/v1/channels").want(t, 201, "")
	if c.str("channel.id") != "team" || c.body["created"] != true || c.str("member.membership") != "member" {
		t.Fatalf("create: %s", c.raw)
	}
	alice.do("GET", "/v1/channels/team", nil, "/v1/channels/{id}").want(t, 200, "")
	if u := alice.do("PATCH", "/v1/channels/team", map[string]any{"description": "the team"}, "/v1/channels/{id}").want(t, 200, ""); u.str("channel.description") != "the team" {
		t.Fatalf("update: %s", u.raw)
	}
	if l := alice.do("GET", "/v1/channels?limit=5", nil, "/v1/channels").want(t, 200, ""); !strings.Contains(string(l.raw), `"id":"team"`) {
		t.Fatalf("list: %s", l.raw)
	}

	keyed := alice.with("Idempotency-Key", "send-1")
	s := keyed.do("POST", "/v1/channels/team/messages", map[string]any{"text": "hello"}, "/v1/channels/{id}/messages").want(t, 201, "")
	mid := s.str("message.id")
	if s.str("message.client_id") != "send-1" || s.str("message.user") != "alice" {
		t.Fatalf("send: %s", s.raw)
	}
	again := keyed.do("POST", "/v1/channels/team/messages", map[string]any{"text": "hello, again"}, "/v1/channels/{id}/messages").want(t, 200, "")
	if again.str("message.id") != mid || again.body["duplicate"] != true || again.str("message.text") != "hello" {
		t.Fatalf("resend: %s", again.raw)
	}
	// A send with neither client_id nor Idempotency-Key gets its own id.
	other := alice.do("POST", "/v1/channels/team/messages", map[string]any{"text": "second"}, "/v1/channels/{id}/messages").want(t, 201, "")
	if other.str("message.client_id") == "" || other.str("message.id") == mid {
		t.Fatalf("unkeyed send: %s", other.raw)
	}
	h := alice.do("GET", "/v1/channels/team/messages?limit=10&top_level=true", nil, "/v1/channels/{id}/messages").want(t, 200, "")
	if msgs, _ := h.body["messages"].([]any); len(msgs) != 2 {
		t.Fatalf("history: %s", h.raw)
	}
	if h := alice.do("GET", "/v1/channels/team/messages?after=1&limit=1", nil, "/v1/channels/{id}/messages").want(t, 200, ""); !strings.Contains(string(h.raw), `"text":"second"`) {
		t.Fatalf("history after: %s", h.raw)
	}
	if e := alice.do("PATCH", "/v1/channels/team/messages/"+mid, map[string]any{"text": "hello, team"}, "/v1/channels/{id}/messages/{message_id}").want(t, 200, ""); e.str("message.text") != "hello, team" {
		t.Fatalf("edit: %s", e.raw)
	}
	bob := keyAPI(t, n, "bob")
	if r := bob.do("PUT", "/v1/channels/team/messages/"+mid+"/reactions/like", nil, "/v1/channels/{id}/messages/{message_id}/reactions/{name}").want(t, 200, ""); !strings.Contains(string(r.raw), `"reactions":{"like":1}`) {
		t.Fatalf("react: %s", r.raw)
	}
	if r := bob.do("DELETE", "/v1/channels/team/messages/"+mid+"/reactions/like", nil, "/v1/channels/{id}/messages/{message_id}/reactions/{name}").want(t, 200, ""); !strings.Contains(string(r.raw), `"reactions":{}`) {
		t.Fatalf("unreact: %s", r.raw)
	}
	alice.do("GET", "/v1/channels/team/members", nil, "/v1/channels/{id}/members").want(t, 200, "")
	alice.do("POST", "/v1/channels/team/members", map[string]any{"users": []string{"carol"}}, "/v1/channels/{id}/members").want(t, 200, "")
	alice.do("POST", "/v1/channels/team/members", map[string]any{"users": []string{"carol"}}, "/v1/channels/{id}/members").want(t, 409, "already_member")
	carol.do("GET", "/v1/channels/team/messages", nil, "/v1/channels/{id}/messages").want(t, 200, "")
	alice.do("DELETE", "/v1/channels/team/members/carol", nil, "/v1/channels/{id}/members/{user}").want(t, 200, "")
	carol.do("GET", "/v1/channels/team/messages", nil, "/v1/channels/{id}/messages").want(t, 403, "not_member")
	if d := alice.do("DELETE", "/v1/channels/team/messages/"+mid, nil, "/v1/channels/{id}/messages/{message_id}").want(t, 200, ""); d.body["message"].(map[string]any)["deleted"] != true {
		t.Fatalf("delete message: %s", d.raw)
	}
	if u := alice.do("GET", "/v1/users/bob", nil, "/v1/users/{id}").want(t, 200, ""); u.str("user.name") != "Bob" {
		t.Fatalf("user: %s", u.raw)
	}
	alice.do("GET", "/v1/users/nobody", nil, "/v1/users/{id}").want(t, 404, "not_found")

	// rpc: any op, args in the body.
	if me := alice.do("POST", "/v1/rpc/me", map[string]any{}, "/v1/rpc/me").want(t, 200, ""); me.str("user.id") != "alice" {
		t.Fatalf("me: %s", me.raw)
	}
	if r := bob.do("POST", "/v1/rpc/read.mark", map[string]any{"channel": "team", "message_id": mid}, "/v1/rpc/read.mark").want(t, 200, ""); r.body["member"].(map[string]any)["read_segment"] != float64(1) {
		t.Fatalf("read.mark up to alice's first message (segment 1): %s", r.raw)
	}
	keyAPI(t, n, "").do("POST", "/v1/rpc/channels.query", map[string]any{"type": "standard"}, "/v1/rpc/channels.query").want(t, 200, "")
	alice.do("POST", "/v1/rpc/channel.create", map[string]any{"id": "open", "type": "standard"}, "/v1/rpc/channel.create").want(t, 200, "")
	if j := carol.do("POST", "/v1/rpc/channel.join", map[string]any{"channel": "open"}, "/v1/rpc/channel.join").want(t, 200, ""); j.str("member.membership") != "member" {
		t.Fatalf("join over HTTP: %s", j.raw)
	}
	alice.do("POST", "/v1/rpc/member.mute", map[string]any{"channel": "open", "user": "carol", "duration_min": 5}, "/v1/rpc/member.mute").want(t, 200, "")
	carol.do("POST", "/v1/channels/open/messages", map[string]any{"text": "hi"}, "/v1/channels/{id}/messages").want(t, 403, "muted")
	alice.do("DELETE", "/v1/channels/team", nil, "/v1/channels/{id}").want(t, 200, "")
	alice.do("GET", "/v1/channels/team", nil, "/v1/channels/{id}").want(t, 404, "not_found")
}

// TestAPIStatusCodes: each status of the contract's table that a request
// can reach, with its headers; refused bodies change nothing.
func TestAPIStatusCodes(t *testing.T) {
	n, signer := apiNode(t)
	putUsers(t, n, "alice", "bob")
	alice := keyAPI(t, n, "alice")
	alice.do("POST", "/v1/channels", map[string]any{"id": "room", "type": "standard"}, "/v1/channels").want(t, 201, "")
	alice.do("POST", "/v1/channels/room/messages", map[string]any{"text": "one"}, "/v1/channels/{id}/messages").want(t, 201, "")
	last := func() string {
		return strconv.Itoa(int(alice.do("GET", "/v1/channels/room", nil).body["channel"].(map[string]any)["last_segment"].(float64)))
	}
	before := last()

	// 400: not JSON, an unknown field (named), a wrong type, an arg
	// given twice, an op that needs a session, an op that acts as a user
	// without one.
	send := "/v1/channels/room/messages"
	for body, say := range map[string]string{
		`{"text":`:                           "not JSON",
		`{"text":"x","colour":1}`:            `"colour"`,
		`{"text":7}`:                         "text has the wrong type",
		`["x"]`:                              "a JSON object",
		`{"text":"x","channel":"elsewhere"}`: "says otherwise",
	} {
		r := alice.do("POST", send, body, "/v1/channels/{id}/messages").want(t, 400, "bad_request")
		if !strings.Contains(r.str("error.message"), say) {
			t.Errorf("%s: %s, want it to say %s", body, r.raw, say)
		}
	}
	alice.do("GET", "/v1/channels/room/messages?page=2", nil, "/v1/channels/{id}/messages").want(t, 400, "bad_request")
	alice.do("POST", "/v1/rpc/typing.start", map[string]any{"channel": "room"}).want(t, 400, "bad_request")
	keyAPI(t, n, "").do("POST", send, map[string]any{"text": "as whom?"}, "/v1/channels/{id}/messages").want(t, 400, "bad_request")
	// 413: a body over --max-frame-bytes.
	big := `{"text":"` + strings.Repeat("x", protocol.DefaultLimits().MaxFrameBytes) + `"}`
	alice.do("POST", send, big, "/v1/channels/{id}/messages").want(t, 413, "too_large")
	if got := last(); got != before {
		t.Fatalf("refused bodies moved the channel from segment %s to %s", before, got)
	}

	// 401 with WWW-Authenticate: no credential, a key that is not one, an
	// expired session token; dev-style credentials are refused here.
	for _, a := range []api{
		{t: t, addr: n.Addr()},
		{t: t, addr: n.Addr(), authz: "Bearer not-a-key"},
		{t: t, addr: n.Addr(), authz: "Bearer " + sessionToken(t, signer, "alice", -time.Minute)},
		{t: t, addr: n.Addr(), as: "alice"},
		{t: t, addr: n.Addr(), authz: "Dev alice"},
	} {
		r := a.do("GET", "/v1/channels", nil, "/v1/channels")
		if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%q as %q: %d %s %v", a.authz, a.as, r.status, r.raw, r.header)
		}
	}
	expired := api{t: t, addr: n.Addr(), authz: "Bearer " + sessionToken(t, signer, "alice", -time.Minute)}
	expired.do("GET", "/v1/channels", nil).want(t, 401, "token_expired")

	// 403, 404, 405, 409.
	alice.do("POST", "/v1/channels", map[string]any{"id": "secret", "type": "private"}, "/v1/channels").want(t, 201, "")
	keyAPI(t, n, "bob").do("GET", "/v1/channels/secret/messages", nil, "/v1/channels/{id}/messages").want(t, 403, "not_member")
	alice.do("GET", "/v1/channels/none/messages", nil, "/v1/channels/{id}/messages").want(t, 404, "not_found")
	alice.do("POST", "/v1/channels/room/members", map[string]any{"users": []string{"nobody"}}, "/v1/channels/{id}/members").want(t, 404, "not_found")
	alice.do("GET", "/v1/nowhere", nil).want(t, 404, "not_found")
	alice.do("POST", "/v1/rpc/no.such.op", map[string]any{}).want(t, 404, "not_found")
	r := alice.do("PUT", "/v1/channels", nil).want(t, 405, "bad_request")
	if allow := r.header.Get("Allow"); allow != "GET, POST" {
		t.Errorf("Allow %q", allow)
	}
	alice.do("POST", "/v1/channels", map[string]any{"id": "room", "type": "standard"}, "/v1/channels").want(t, 409, "invalid_state")

	// 429 with Retry-After: the channel's rate limit.
	alice.do("PATCH", "/v1/channels/room", map[string]any{"rate_limit": map[string]any{"count": 1, "window_ms": 60000}}, "/v1/channels/{id}").want(t, 200, "")
	alice.do("PUT", "/v1/channels/room/members/x", nil).want(t, 405, "bad_request")
	bob := keyAPI(t, n, "bob")
	bob.do("POST", "/v1/rpc/channel.join", map[string]any{"channel": "room"}).want(t, 200, "")
	bob.do("POST", send, map[string]any{"text": "first"}, "/v1/channels/{id}/messages").want(t, 201, "")
	r = bob.do("POST", send, map[string]any{"text": "second"}, "/v1/channels/{id}/messages").want(t, 429, "rate_limited")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 60 || r.body["error"].(map[string]any)["retry_after_ms"] == nil {
		t.Errorf("rate limited: Retry-After %q, %s", r.header.Get("Retry-After"), r.raw)
	}
}

// TestAPIUnavailable: 503 with Retry-After when no node hosts the actors.
func TestAPIUnavailable(t *testing.T) {
	n, _ := apiNode(t, func(c *Config) { c.Roles = []cluster.Role{cluster.RoleGateway} })
	r := keyAPI(t, n, "alice").do("GET", "/v1/channels/any/messages", nil, "/v1/channels/{id}/messages").want(t, 503, "unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("no Retry-After: %v", r.header)
	}
}

// TestAPIRights: an API key alone is a global admin; with
// X-Switchboard-User it has that user's rights and no more; a session
// token is its user, and only its user.
func TestAPIRights(t *testing.T) {
	n, signer := apiNode(t)
	putUsers(t, n, "alice", "bob", "eve")
	alice := keyAPI(t, n, "alice")
	alice.do("POST", "/v1/channels", map[string]any{"id": "private", "type": "private", "members": []string{"bob"}}, "/v1/channels").want(t, 201, "")
	m := alice.do("POST", "/v1/channels/private/messages", map[string]any{"text": "for members"}, "/v1/channels/{id}/messages").want(t, 201, "")
	hist := "/v1/channels/private/messages"

	admin := keyAPI(t, n, "")
	admin.do("GET", hist, nil, "/v1/channels/{id}/messages").want(t, 200, "")
	api{t: t, addr: n.Addr(), authz: "Bearer " + apiKey2}.do("GET", hist, nil).want(t, 200, "") // the second key
	keyAPI(t, n, "eve").do("GET", hist, nil, "/v1/channels/{id}/messages").want(t, 403, "not_member")
	keyAPI(t, n, "eve").do("GET", "/v1/channels/private", nil, "/v1/channels/{id}").want(t, 403, "not_member")
	keyAPI(t, n, "eve").do("POST", "/v1/rpc/channel.join", map[string]any{"channel": "private"}).want(t, 403, "forbidden")

	jwt := func(user string) api {
		return api{t: t, addr: n.Addr(), authz: "Bearer " + sessionToken(t, signer, user, time.Hour)}
	}
	jwt("bob").do("GET", hist, nil, "/v1/channels/{id}/messages").want(t, 200, "")
	jwt("eve").do("GET", hist, nil, "/v1/channels/{id}/messages").want(t, 403, "not_member")
	// A session token cannot act as another user, and is not an API key.
	withAs := jwt("eve")
	withAs.as = "bob"
	withAs.do("GET", hist, nil).want(t, 403, "forbidden")
	jwt("alice").do("PUT", "/v1/users/mallory", map[string]any{}, "/v1/users/{id}").want(t, 403, "forbidden")
	jwt("alice").do("POST", "/v1/tokens", map[string]any{"user": "alice"}, "/v1/tokens").want(t, 403, "forbidden")
	keyAPI(t, n, "alice").do("POST", "/v1/tokens", map[string]any{"user": "alice"}, "/v1/tokens").want(t, 403, "forbidden")
	// bob, through the key, edits only his own messages.
	keyAPI(t, n, "bob").do("PATCH", hist+"/"+m.str("message.id"), map[string]any{"text": "mine now"}, "/v1/channels/{id}/messages/{message_id}").want(t, 403, "forbidden")
	// The admin moderates without being a member.
	admin.do("DELETE", hist+"/"+m.str("message.id"), nil, "/v1/channels/{id}/messages/{message_id}").want(t, 200, "")
}
