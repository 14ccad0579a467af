package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestOriginPolicy(t *testing.T) {
	allowed := []string{"https://chat.example.com", "*.example.org", "http://localhost:*", "app.example.net:8443"}
	for _, p := range allowed {
		if err := ValidOrigin(p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	for _, bad := range []string{"", "https://", "a*.example.com", "example.com/path", "https://user@example.com", "[bad"} {
		if ValidOrigin(bad) == nil {
			t.Errorf("%q accepted as a pattern", bad)
		}
	}
	for _, c := range []struct {
		origin, host string
		dev, ok      bool
	}{
		{"", "node:8080", false, true},                               // not a browser
		{"https://node:8080", "node:8080", false, true},              // same origin
		{"HTTPS://NODE:8080", "node:8080", false, true},              // case
		{"https://chat.example.com", "node:8080", false, true},       // listed with its scheme
		{"http://chat.example.com", "node:8080", false, false},       // another scheme
		{"https://chat.example.com:444", "node:8080", false, false},  // another port
		{"https://a.b.example.org", "node:8080", false, true},        // any subdomain
		{"https://example.org", "node:8080", false, false},           // not a subdomain
		{"https://evilexample.org", "node:8080", false, false},       // not a subdomain either
		{"http://localhost:5173", "node:8080", false, true},          // any port
		{"https://app.example.net:8443", "node:8080", false, true},   // that port
		{"https://app.example.net", "node:8080", false, false},       // not that port
		{"http://127.0.0.1:3000", "node:8080", false, false},         // loopback, no dev auth
		{"http://127.0.0.1:3000", "node:8080", true, true},           // loopback, dev auth
		{"http://[::1]:3000", "node:8080", true, true},               // loopback v6
		{"https://evil.example", "node:8080", true, false},           // dev auth opens loopback only
		{"null", "node:8080", true, false},                           // sandboxed pages
		{"https://chat.example.com.evil.example", "x", false, false}, // suffix trick
	} {
		p := newOriginPolicy(allowed, c.dev)
		r := withOrigin(c.origin)
		r.Host = c.host
		if c.origin == "" {
			r.Header.Del("Origin")
		}
		if ok, why := p.allow(r); ok != c.ok {
			t.Errorf("origin %q (dev %v): allowed %v (%s), want %v", c.origin, c.dev, ok, why, c.ok)
		}
	}
	if ok, _ := newOriginPolicy([]string{"*"}, false).allow(withOrigin("https://anything.example")); !ok {
		t.Error("* did not allow every origin")
	}
}

func withOrigin(o string) *http.Request {
	r := httptest.NewRequest("GET", "http://node/v1/ws", nil)
	r.Header.Set("Origin", o)
	return r
}
