package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/cluster"
)

// CORS end to end: the HTTP API answers pages of --allowed-origins, and
// no other.

const (
	appOrigin  = "https://app.example.com"
	evilOrigin = "https://evil.example.net"
)

// corsNode starts a node in production auth mode that allows appOrigin.
func corsNode(t *testing.T, mutate ...func(*Config)) *Node {
	t.Helper()
	n, _ := apiNode(t, append([]func(*Config){func(c *Config) {
		c.Security.AllowedOrigins = []string{appOrigin}
	}}, mutate...)...)
	return n
}

// rawHTTP sends a request with the headers given and returns the reply
// with its body read.
func rawHTTP(t *testing.T, method, url string, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// preflight sends the OPTIONS a browser sends before a request of
// method from origin with the API's headers.
func preflight(t *testing.T, n *Node, path, origin, method string) (*http.Response, string) {
	t.Helper()
	return rawHTTP(t, http.MethodOptions, "http://"+n.Addr()+path, "", map[string]string{
		"Origin":                         origin,
		"Access-Control-Request-Method":  method,
		"Access-Control-Request-Headers": "authorization,content-type,idempotency-key,x-switchboard-user",
	})
}

// noCORS fails if resp carries any Access-Control-Allow-* header.
func noCORS(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	for k := range resp.Header {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Errorf("%s: %s: %q, want no CORS header", what, k, resp.Header.Get(k))
		}
	}
}

// TestCORSPreflight: an allowed origin's preflight is approved with the
// methods the path's routes take and the API's headers; a disallowed
// origin's, a method the path does not take, and the operator endpoints
// get no CORS headers.
func TestCORSPreflight(t *testing.T) {
	n := corsNode(t)
	for _, c := range []struct{ path, method, methods string }{
		{"/v1/channels/room/messages", "POST", "GET, POST"},
		{"/v1/channels/room", "PATCH", "GET, PATCH, DELETE"},
		{"/v1/channels/room/messages/1-ab/reactions/like", "PUT", "PUT, DELETE"},
		{"/v1/rpc/me", "POST", "POST"},
		{"/v1/users/bob", "PUT", "GET, PUT"},
		{"/v1/files", "POST", "POST"},
		{"/v1/files/0123-alice", "GET", "GET"},
		{"/v1/openapi.json", "GET", "GET"},
	} {
		resp, body := preflight(t, n, c.path, appOrigin, c.method)
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != appOrigin ||
			h.Get("Access-Control-Allow-Methods") != c.methods || h.Get("Access-Control-Max-Age") != "7200" {
			t.Errorf("preflight %s %s: %d %v %s", c.method, c.path, resp.StatusCode, h, body)
			continue
		}
		allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
		for _, want := range []string{"authorization", "content-type", "idempotency-key", "x-switchboard-user"} {
			if !strings.Contains(allowed, want) {
				t.Errorf("preflight %s: Access-Control-Allow-Headers %q lacks %s", c.path, allowed, want)
			}
		}
		if h.Get("Access-Control-Allow-Credentials") != "" || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
			t.Errorf("preflight %s: credentials %q, Vary %q", c.path, h.Get("Access-Control-Allow-Credentials"), h.Values("Vary"))
		}
	}

	// A disallowed origin is refused, with a reason and no CORS header.
	resp, body := preflight(t, n, "/v1/channels/room/messages", evilOrigin, "POST")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "--allowed-origins") {
		t.Errorf("disallowed preflight: %d %s", resp.StatusCode, body)
	}
	noCORS(t, "disallowed preflight", resp)
	// A method the path does not take: 405 with Allow, not approved.
	resp, _ = preflight(t, n, "/v1/channels", appOrigin, "PUT")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST, OPTIONS" {
		t.Errorf("preflight of PUT /v1/channels: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	noCORS(t, "preflight of a method not routed", resp)
	// The operator endpoints and the WebSocket take no part.
	for _, p := range []string{"/v1/cluster", "/v1/cluster/drain", "/metrics", "/v1/ws"} {
		resp, _ := preflight(t, n, p, appOrigin, "GET")
		if resp.StatusCode < 400 {
			t.Errorf("preflight of %s: %d", p, resp.StatusCode)
		}
		noCORS(t, "preflight of "+p, resp)
	}
	// An OPTIONS that is not a preflight says what the path takes.
	resp, _ = rawHTTP(t, http.MethodOptions, "http://"+n.Addr()+"/v1/channels", "", nil)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Allow") != "GET, POST, OPTIONS" {
		t.Errorf("OPTIONS /v1/channels: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	noCORS(t, "OPTIONS without Origin", resp)
}

// TestCORSActualRequests: replies to an allowed page name its origin
// (never *, never with credentials) and expose Retry-After, on a 429 as
// on a success; a disallowed page's replies carry no CORS header; the
// operator endpoints carry none either.
func TestCORSActualRequests(t *testing.T) {
	n := corsNode(t)
	putUsers(t, n, "alice", "bob")
	alice := keyAPI(t, n, "alice").with("Origin", appOrigin)
	allowed := func(what string, r reply) {
		t.Helper()
		h := r.header
		if h.Get("Access-Control-Allow-Origin") != appOrigin || h.Get("Access-Control-Allow-Credentials") != "" ||
			!strings.Contains(h.Get("Access-Control-Expose-Headers"), "Retry-After") || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
			t.Errorf("%s: %d, headers %v", what, r.status, h)
		}
	}
	allowed("create", alice.do("POST", "/v1/channels", map[string]any{"id": "room", "type": "standard"}, "/v1/channels").want(t, 201, ""))
	allowed("history", alice.do("GET", "/v1/channels/room/messages", nil, "/v1/channels/{id}/messages").want(t, 200, ""))
	allowed("unknown path", alice.do("GET", "/v1/nowhere", nil).want(t, 404, "not_found"))
	allowed("401", api{t: t, addr: n.Addr()}.with("Origin", appOrigin).do("GET", "/v1/channels", nil).want(t, 401, "unauthenticated"))

	// 429: the page reads Retry-After.
	alice.do("PATCH", "/v1/channels/room", map[string]any{"rate_limit": map[string]any{"count": 1, "window_ms": 60000}}, "/v1/channels/{id}").want(t, 200, "")
	bob := keyAPI(t, n, "bob").with("Origin", appOrigin)
	bob.do("POST", "/v1/rpc/channel.join", map[string]any{"channel": "room"}).want(t, 200, "")
	bob.do("POST", "/v1/channels/room/messages", map[string]any{"text": "first"}).want(t, 201, "")
	r := bob.do("POST", "/v1/channels/room/messages", map[string]any{"text": "second"}).want(t, 429, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After: %v", r.header)
	}
	allowed("429", r)

	// A disallowed page: served as any request (it carries its own
	// credential), but its page cannot read the reply.
	evil := keyAPI(t, n, "alice").with("Origin", evilOrigin)
	r = evil.do("GET", "/v1/channels/room/messages", nil).want(t, 200, "")
	if r.header.Get("Access-Control-Allow-Origin") != "" || r.header.Get("Access-Control-Expose-Headers") != "" {
		t.Errorf("disallowed origin: %v", r.header)
	}
	// No Origin (a backend): no CORS header, Vary still says Origin.
	r = keyAPI(t, n, "alice").do("GET", "/v1/channels/room", nil).want(t, 200, "")
	if r.header.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
		t.Errorf("no Origin: %v", r.header)
	}
	// The operator endpoints answer an allowed page with no CORS header.
	for _, p := range []string{"/v1/cluster", "/metrics"} {
		resp, _ := rawHTTP(t, http.MethodGet, "http://"+n.Addr()+p, "", map[string]string{"Origin": appOrigin, "Authorization": "Bearer " + apiKey})
		noCORS(t, "GET "+p, resp)
	}
}

// TestCORSRetryAfterOn503: a 503 (no node hosts the actors) exposes its
// Retry-After to an allowed page.
func TestCORSRetryAfterOn503(t *testing.T) {
	n := corsNode(t, func(c *Config) { c.Roles = []cluster.Role{cluster.RoleGateway} })
	r := keyAPI(t, n, "alice").with("Origin", appOrigin).do("GET", "/v1/channels/any/messages", nil, "/v1/channels/{id}/messages").want(t, 503, "unavailable")
	if r.header.Get("Retry-After") == "" || r.header.Get("Access-Control-Allow-Origin") != appOrigin ||
		!strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("503: %v", r.header)
	}
}
