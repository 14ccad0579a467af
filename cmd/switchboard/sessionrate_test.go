package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestSessionRequestRate: a session makes at most --session-burst
// requests at once and --session-rate a second after that; a request past
// it is answered rate_limited with when to retry, and changes nothing;
// ping is free. The Go client waits such a short refusal out for requests
// safe to repeat, and returns it for others.
func TestSessionRequestRate(t *testing.T) {
	n := testNode(t, func(c *Config) { c.Gateway.SessionRate, c.Gateway.SessionBurst = 4, 4 })
	alice := dial(t, n, "alice")
	ctx := ctxT(t)
	expect(t, alice, protocol.OpChannelCreate, map[string]any{"id": "paced", "type": "standard"}, "")
	for i := range 3 {
		expect(t, alice, protocol.OpMessageSend, a("paced", "client_id", fmt.Sprintf("m%d", i), "text", "hi"), "")
	}
	// The burst is spent: a request not safe to repeat hears of it.
	err := alice.Call(ctx, protocol.OpChannelCreate, map[string]any{"id": "refused", "type": "standard"}, nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeRateLimited || pe.RetryAfterMS < 1 || pe.RetryAfterMS > 250 ||
		!strings.Contains(pe.Message, "4 requests a second, 4 at once") {
		t.Fatalf("a create past the burst: %v", err)
	}
	if err := alice.Call(ctx, protocol.OpPing, struct{}{}, nil); err != nil {
		t.Fatalf("ping at the limit: %v", err)
	}
	// Sends are safe to repeat: each waits for its turn, four a second.
	start := time.Now()
	for i := range 4 {
		expect(t, alice, protocol.OpMessageSend, a("paced", "client_id", fmt.Sprintf("a%d", i), "text", "hi"), "")
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Fatalf("four sends past the burst took %v: faster than 4 a second", took)
	}

	// The refused create stored nothing; history holds every send once.
	expect(t, alice, protocol.OpChannelGet, a("refused"), protocol.CodeNotFound)
	var h protocol.HistoryResult
	if err := alice.Call(ctx, protocol.OpMessagesHistory, a("paced"), &h); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range h.Messages {
		if m.ClientID != "" {
			ids = append(ids, m.ClientID)
		}
	}
	if strings.Join(ids, ",") != "m0,m1,m2,a0,a1,a2,a3" {
		t.Fatalf("history client_ids %v, want m0,m1,m2,a0,a1,a2,a3", ids)
	}
	m := string(scrape(t, n))
	if !strings.Contains(m, `switchboard_request_duration_seconds_count{code="rate_limited",op="channel.create"} 1`) ||
		!strings.Contains(m, `switchboard_request_duration_seconds_count{code="rate_limited",op="message.send"}`) {
		t.Errorf("the refusals are not counted in the request metrics:\n%s", grepLines(m, "rate_limited"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAPIUserRequestRate: a user's HTTP API requests (with a session
// token), files included, have the bound a WebSocket session has, per
// user: past the burst a request is answered 429 rate_limited with
// Retry-After, and changes nothing; another user, and a server API key acting as the same user,
// are not held by it; the user may go on once the wait is over.
func TestAPIUserRequestRate(t *testing.T) {
	n, signer := apiNode(t, func(c *Config) { c.Gateway.SessionRate, c.Gateway.SessionBurst = 2, 3 })
	putUsers(t, n, "alice", "bob")
	alice := api{t: t, addr: n.Addr(), authz: "Bearer " + sessionToken(t, signer, "alice", time.Hour)}
	bob := api{t: t, addr: n.Addr(), authz: "Bearer " + sessionToken(t, signer, "bob", time.Hour)}

	alice.do("POST", "/v1/channels", map[string]any{"id": "paced", "type": "standard"}, "/v1/channels").want(t, 201, "")
	alice.do("GET", "/v1/channels/paced", nil, "/v1/channels/{id}").want(t, 200, "")
	alice.do("GET", "/v1/channels/paced", nil, "/v1/channels/{id}").want(t, 200, "")
	r := alice.do("POST", "/v1/channels", map[string]any{"id": "refused", "type": "standard"}, "/v1/channels").want(t, 429, "rate_limited")
	if r.header.Get("Retry-After") != "1" || !strings.Contains(string(r.raw), "2 HTTP requests a second, 3 at once") {
		t.Fatalf("the refusal: Retry-After %q, %s", r.header.Get("Retry-After"), r.raw)
	}
	// The files endpoints take from the same bucket.
	if r := alice.do("GET", "/v1/files/f-none", nil); r.status != 429 || r.code() != "rate_limited" {
		t.Fatalf("a file read past the burst: %d %s", r.status, r.raw)
	}
	bob.do("GET", "/v1/channels?limit=1", nil, "/v1/channels").want(t, 200, "")
	if r := bob.do("GET", "/v1/files/f-none", nil); r.status != 404 {
		t.Fatalf("bob's file read: %d %s", r.status, r.raw)
	}
	keyAPI(t, n, "alice").do("GET", "/v1/channels/paced", nil, "/v1/channels/{id}").want(t, 200, "")
	keyAPI(t, n, "").do("GET", "/v1/channels/refused", nil, "/v1/channels/{id}").want(t, 404, "not_found")

	deadline := time.Now().Add(10 * time.Second)
	for {
		r := alice.do("GET", "/v1/channels/paced", nil, "/v1/channels/{id}")
		if r.status == 200 {
			break
		}
		if r.status != 429 || time.Now().After(deadline) {
			t.Fatalf("alice after the wait: %d %s", r.status, r.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
