package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestCheckHandshake: the opening handshake a browser sends is taken;
// each broken one is refused with its status.
func TestCheckHandshake(t *testing.T) {
	good := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/v1/ws", nil)
		r.Header.Set("Connection", "keep-alive, Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", " dGhlIHNhbXBsZSBub25jZQ== ")
		return r
	}
	for _, tc := range []struct {
		name   string
		change func(r *http.Request)
		status int
	}{
		{"good", func(*http.Request) {}, 0},
		{"upgrade in another case", func(r *http.Request) { r.Header.Set("Upgrade", "WebSocket"); r.Header.Set("Connection", "upgrade") }, 0},
		{"HTTP/1.0", func(r *http.Request) { r.ProtoMajor, r.ProtoMinor = 1, 0 }, http.StatusUpgradeRequired},
		{"no Connection: Upgrade", func(r *http.Request) { r.Header.Set("Connection", "keep-alive") }, http.StatusUpgradeRequired},
		{"no Upgrade", func(r *http.Request) { r.Header.Del("Upgrade") }, http.StatusUpgradeRequired},
		{"POST", func(r *http.Request) { r.Method = http.MethodPost }, http.StatusMethodNotAllowed},
		{"version 8", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, http.StatusBadRequest},
		{"no key", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") }, http.StatusBadRequest},
		{"two keys", func(r *http.Request) { r.Header.Add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") }, http.StatusBadRequest},
		{"short key", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, http.StatusBadRequest},
		{"key not base64", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!!!") }, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good()
			tc.change(r)
			h := http.Header{}
			key, err := checkHandshake(r, h)
			switch {
			case tc.status == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.status == 0 && key != "dGhlIHNhbXBsZSBub25jZQ==":
				t.Fatalf("key %q", key)
			case tc.status != 0 && (err == nil || err.status != tc.status):
				t.Fatalf("got %v, want status %d", err, tc.status)
			}
			if tc.status == http.StatusBadRequest && tc.name == "version 8" && h.Get("Sec-WebSocket-Version") != "13" {
				t.Fatal("a refused version does not say which one is spoken")
			}
		})
	}
}

// TestAcceptKey is RFC 6455 §1.3's example.
func TestAcceptKey(t *testing.T) {
	if got := acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept key %q", got)
	}
}

// TestOffers: the subprotocol is found in any of the client's lists.
func TestOffers(t *testing.T) {
	g := &Gateway{}
	offers := func(r *http.Request) bool {
		chosen, _, _ := g.negotiate(r)
		return chosen == Subprotocol
	}
	r := httptest.NewRequest(http.MethodGet, "/v1/ws", nil)
	if offers(r) {
		t.Fatal("offered without a header")
	}
	r.Header.Add("Sec-WebSocket-Protocol", "chat, other")
	if offers(r) {
		t.Fatal("offered by another list")
	}
	r.Header.Add("Sec-WebSocket-Protocol", "x , "+Subprotocol)
	if !offers(r) {
		t.Fatal("not found in the second header")
	}
}
