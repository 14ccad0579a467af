package main

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
	"github.com/switchboard-chat/switchboard/protocol/openapi"
)

// nextNotice waits for the next channel.added or channel.removed on c.
func nextNotice(t *testing.T, c *client.Client, name string) map[string]any {
	t.Helper()
	e := nextEvent(t, c, name)
	if e.Channel != "" || e.Seq != 0 {
		t.Fatalf("notice %s has channel %q seq %d at top level", name, e.Channel, e.Seq)
	}
	var d map[string]any
	if err := json.Unmarshal(e.Data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAPISendToUser: the first message to a user opens the distinct
// conversation (created), later ones reuse it; a side that left is
// brought back; the recipient's sessions hear channel.added.
func TestAPISendToUser(t *testing.T) {
	n, signer := apiNode(t)
	putUsers(t, n, "alice", "bob")
	bobWS := dialToken(t, n, sessionToken(t, signer, "bob", time.Hour))
	alice := keyAPI(t, n, "alice")
	const path, tmpl = "/v1/users/bob/messages", "/v1/users/{id}/messages"

	first := alice.with("Idempotency-Key", "dm-1").do("POST", path, map[string]any{"text": "hi bob"}, tmpl).want(t, 201, "")
	ch := first.str("channel.id")
	if first.body["created"] != true || !strings.HasPrefix(ch, "dm-") || first.str("message.channel") != ch || first.str("message.client_id") != "dm-1" {
		t.Fatalf("first send: %s", first.raw)
	}
	added := nextNotice(t, bobWS, protocol.EventChannelAdded)
	if added["reason"] != protocol.ReasonCreated || added["channel"].(map[string]any)["id"] != ch {
		t.Fatalf("bob's notice: %v", added)
	}
	// The same key sends once; a new message reuses the conversation.
	again := alice.with("Idempotency-Key", "dm-1").do("POST", path, map[string]any{"text": "hi bob"}, tmpl).want(t, 201, "")
	if again.str("message.id") != first.str("message.id") || again.body["created"] != false || again.body["duplicate"] != true {
		t.Fatalf("resend: %s", again.raw)
	}
	second := alice.do("POST", path, map[string]any{"text": "are you there?"}, tmpl).want(t, 201, "")
	if second.str("channel.id") != ch || second.body["created"] != false || second.str("message.id") == first.str("message.id") {
		t.Fatalf("second send: %s", second.raw)
	}
	// Bob answers with channel.create distinct over WebSocket: the same one.
	ctx := ctxT(t)
	got, _, err := bobWS.CreateChannel(ctx, protocol.ChannelCreateArgs{Type: protocol.TypeConversation, Distinct: true, Members: []string{"alice"}})
	if err != nil || got.ID != ch {
		t.Fatalf("bob's distinct create: %+v %v", got, err)
	}

	// Bob leaves; alice's next message brings him back and tells him.
	if err := bobWS.Leave(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if r := nextNotice(t, bobWS, protocol.EventChannelRemoved); r["reason"] != protocol.ReasonLeft || r["channel"] != ch {
		t.Fatalf("bob's removal notice: %v", r)
	}
	alice.do("POST", path, map[string]any{"text": "come back"}, tmpl).want(t, 201, "")
	if a := nextNotice(t, bobWS, protocol.EventChannelAdded); a["reason"] != protocol.ReasonCreated {
		t.Fatalf("bob's notice on coming back: %v", a)
	}
	h, err := bobWS.History(ctx, protocol.HistoryArgs{Channel: ch})
	if err != nil || h.Messages[len(h.Messages)-1].Text != "come back" {
		t.Fatalf("bob's history: %+v %v", h, err)
	}
	// Alice leaves; sending again brings her back as a member.
	keyAPI(t, n, "alice").do("POST", "/v1/rpc/channel.leave", map[string]any{"channel": ch}).want(t, 200, "")
	alice.do("GET", "/v1/channels/"+ch+"/messages", nil).want(t, 403, "not_member")
	alice.do("POST", path, map[string]any{"text": "me again"}, tmpl).want(t, 201, "")
	alice.do("GET", "/v1/channels/"+ch+"/messages", nil).want(t, 200, "")

	alice.do("POST", "/v1/users/nobody/messages", map[string]any{"text": "hello?"}, tmpl).want(t, 404, "not_found")
	alice.do("POST", path, map[string]any{"text": "x", "channel": ch}, tmpl).want(t, 400, "bad_request")
	keyAPI(t, n, "").do("POST", path, map[string]any{"text": "from whom?"}, tmpl).want(t, 400, "bad_request")
}

// TestAPITokensAndUsers: PUT /v1/users/{id} creates and updates a user
// before it ever connects; POST /v1/tokens mints tokens the node accepts.
func TestAPITokensAndUsers(t *testing.T) {
	n, _ := apiNode(t)
	admin := keyAPI(t, n, "")
	u := admin.do("PUT", "/v1/users/dana", map[string]any{"name": "Dana", "metadata": map[string]any{"team": "ops"}}, "/v1/users/{id}").want(t, 200, "")
	if u.str("user.name") != "Dana" || !strings.Contains(string(u.raw), `"metadata":{"team":"ops"}`) {
		t.Fatalf("create: %s", u.raw)
	}
	u = admin.do("PUT", "/v1/users/dana", map[string]any{"description": "on call"}, "/v1/users/{id}").want(t, 200, "")
	if u.str("user.name") != "Dana" || u.str("user.description") != "on call" {
		t.Fatalf("update keeps the other fields: %s", u.raw)
	}
	admin.do("PUT", "/v1/users/dana", map[string]any{"nick": "d"}, "/v1/users/{id}").want(t, 400, "bad_request")
	admin.do("PUT", "/v1/users/dana", map[string]any{"name": strings.Repeat("n", 1000)}, "/v1/users/{id}").want(t, 400, "too_long")

	tok := admin.do("POST", "/v1/tokens", map[string]any{"user": "dana", "name": "Dana", "ttl_s": 120}, "/v1/tokens").want(t, 201, "")
	exp, err := time.Parse(time.RFC3339, tok.str("expires_at"))
	if err != nil || time.Until(exp) > 121*time.Second || time.Until(exp) < 100*time.Second {
		t.Fatalf("expires_at %s: %v", tok.str("expires_at"), err)
	}
	dana := dialToken(t, n, tok.str("token"))
	ctx := ctxT(t)
	if _, _, err := dana.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "ops", Type: protocol.TypePrivate}); err != nil {
		t.Fatal(err)
	}
	// The same token authenticates HTTP requests as dana.
	api{t: t, addr: n.Addr(), authz: "Bearer " + tok.str("token")}.do("GET", "/v1/channels/ops", nil, "/v1/channels/{id}").want(t, 200, "")

	// A join token lets a user who was never invited into the private
	// channel, with the perms it names.
	admin.do("PUT", "/v1/users/erin", map[string]any{}, "/v1/users/{id}").want(t, 200, "")
	jt := admin.do("POST", "/v1/tokens", map[string]any{"user": "erin", "channel": "ops", "perms": []string{"read"}}, "/v1/tokens").want(t, 201, "")
	erin := keyAPI(t, n, "erin")
	erin.do("POST", "/v1/rpc/channel.join", map[string]any{"channel": "ops"}).want(t, 403, "forbidden")
	if j := erin.do("POST", "/v1/rpc/channel.join", map[string]any{"token": jt.str("token")}, "/v1/rpc/channel.join").want(t, 200, ""); j.str("member.membership") != "viewer" {
		t.Fatalf("join by a read token: %s", j.raw)
	}
	erin.do("POST", "/v1/channels/ops/messages", map[string]any{"text": "may I?"}).want(t, 403, "forbidden")

	// A join token is good again after a leave; one minted with
	// single_use is good for one join only.
	erin.do("POST", "/v1/rpc/channel.leave", map[string]any{"channel": "ops"}).want(t, 200, "")
	erin.do("POST", "/v1/rpc/channel.join", map[string]any{"token": jt.str("token")}).want(t, 200, "")
	admin.do("PUT", "/v1/users/fay", map[string]any{}, "/v1/users/{id}").want(t, 200, "")
	once := admin.do("POST", "/v1/tokens", map[string]any{"user": "fay", "channel": "ops", "single_use": true}, "/v1/tokens").want(t, 201, "").str("token")
	fay := keyAPI(t, n, "fay")
	if j := fay.do("POST", "/v1/rpc/channel.join", map[string]any{"token": once}, "/v1/rpc/channel.join").want(t, 200, ""); j.str("member.membership") != "member" {
		t.Fatalf("join by a single-use token: %s", j.raw)
	}
	fay.do("POST", "/v1/rpc/channel.leave", map[string]any{"channel": "ops"}).want(t, 200, "")
	fay.do("POST", "/v1/rpc/channel.join", map[string]any{"token": once}, "/v1/rpc/channel.join").want(t, 401, "token_invalid")

	for _, bad := range []map[string]any{
		{"user": "dana", "ttl_s": 0},
		{"user": "dana", "channel": "ops", "perms": []string{"fly"}},
		{"user": "dana", "channel": "ops", "admin": true},
		{"user": "dana", "perms": []string{"read"}},
		{"user": "dana", "single_use": true},
		{"user": "dana", "channel": "ops", "single_use": "yes"},
		{"user": ""},
		{"user": "dana", "expires": 5},
	} {
		admin.do("POST", "/v1/tokens", bad, "/v1/tokens").want(t, 400, "bad_request")
	}
	// A node without the secret cannot sign.
	dev := testNode(t, func(c *Config) { c.APIKey = apiKey })
	keyAPI(t, dev, "").do("POST", "/v1/tokens", map[string]any{"user": "dana"}, "/v1/tokens").want(t, 409, "invalid_state")
}

// TestOpenAPIServedAndEveryRouteAnswers: GET /v1/openapi.json needs no
// credential, and every operation in it is routed (answers neither 404
// for want of a route nor 405), with real ids in its path.
func TestOpenAPIServedAndEveryRouteAnswers(t *testing.T) {
	n, _ := apiNode(t)
	resp, err := http.Get("http://" + n.Addr() + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	err = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || d.OpenAPI != "3.1.0" || len(d.Paths) < 40 {
		t.Fatalf("openapi.json: %d %s %d paths %v", resp.StatusCode, d.OpenAPI, len(d.Paths), err)
	}
	putUsers(t, n, "alice", "bob")
	alice := keyAPI(t, n, "alice")
	alice.do("POST", "/v1/channels", map[string]any{"id": "c", "type": "standard", "members": []string{"bob"}}).want(t, 201, "")
	mid := alice.do("POST", "/v1/channels/c/messages", map[string]any{"text": "x"}).str("message.id")
	fill := strings.NewReplacer("{id}", "c", "{message_id}", mid, "{name}", "like", "{user}", "bob")
	type route struct{ method, path, tmpl string }
	var routes []route
	for p, item := range d.Paths {
		for m := range item {
			path := fill.Replace(p)
			if strings.HasPrefix(p, "/v1/users/{id}") {
				path = strings.Replace(p, "{id}", "bob", 1)
			}
			routes = append(routes, route{strings.ToUpper(m), path, p})
		}
	}
	// Deleting the channel goes last, so every other route finds it.
	sort.Slice(routes, func(i, j int) bool {
		last := func(r route) bool { return r.method == "DELETE" && r.tmpl == "/v1/channels/{id}" }
		if last(routes[i]) != last(routes[j]) {
			return last(routes[j])
		}
		return routes[i].path+routes[i].method < routes[j].path+routes[j].method
	})
	for _, r := range routes {
		var body any
		if r.method == "POST" || r.method == "PUT" || r.method == "PATCH" {
			body = map[string]any{}
		}
		a := alice
		if r.tmpl == "/v1/users/{id}" || r.tmpl == "/v1/tokens" {
			a = keyAPI(t, n, "") // API key only
		}
		got := a.do(r.method, r.path, body, r.tmpl)
		if got.status == 405 || (got.status == 404 && strings.Contains(got.str("error.message"), "no route")) {
			t.Errorf("%s %s is not routed: %d %s", r.method, r.path, got.status, got.raw)
		}
	}
}

// switchboard openapi prints the document the API serves.
func TestOpenAPICommand(t *testing.T) {
	var out, errb strings.Builder
	if code := run([]string{"openapi"}, &out, &errb); code != 0 || out.String() != string(openapi.Document())+"\n" {
		t.Fatalf("exit %d, %d bytes, stderr %q", code, out.Len(), errb.String())
	}
	if code := run([]string{"openapi", "--yaml"}, &out, &errb); code != 2 {
		t.Fatalf("openapi with a flag: exit %d", code)
	}
}
