package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestCORSHeadersFollowTheOriginPolicy: --allowed-origins * answers each
// page with its own origin, never *, and never with credentials; an
// opaque origin ("null": a sandboxed frame, a file) is refused even so;
// development auth lets loopback pages in, and production does not.
func TestCORSHeadersFollowTheOriginPolicy(t *testing.T) {
	cases := []struct {
		allowed []string
		dev     bool
		origin  string
		ok      bool
	}{
		{[]string{"*"}, false, "https://anything.example", true},
		{[]string{"*"}, false, "null", false},
		{nil, true, "http://localhost:5173", true},
		{nil, false, "http://localhost:5173", false},
		{[]string{"*.example.com"}, false, "https://app.example.com", true},
		{[]string{"*.example.com"}, false, "https://example.com.evil.net", false},
	}
	for _, c := range cases {
		g := &Gateway{origins: newOriginPolicy(c.allowed, c.dev)}
		r := withOrigin(c.origin)
		h := http.Header{}
		got := g.corsHeaders(h, r)
		acao := h.Get("Access-Control-Allow-Origin")
		if got != c.ok || (c.ok && acao != c.origin) || (!c.ok && acao != "") || h.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%v dev %v origin %q: allowed %v, headers %v", c.allowed, c.dev, c.origin, got, h)
		}

		r.Method = http.MethodOptions
		r.Header.Set("Access-Control-Request-Method", http.MethodPost)
		w := httptest.NewRecorder()
		g.serveOptions(w, r, []string{http.MethodGet, http.MethodPost})
		acao = w.Header().Get("Access-Control-Allow-Origin")
		if (w.Code == http.StatusNoContent) != c.ok || (c.ok && acao != c.origin) || (!c.ok && acao != "") {
			t.Errorf("preflight %v dev %v origin %q: %d, headers %v", c.allowed, c.dev, c.origin, w.Code, w.Header())
		}
	}
}
