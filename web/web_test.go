package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPagesAndAssets: / is the chat app and /console the console, each
// loading only its own bundle from /assets/, with a content security
// policy that allows no other origin's scripts or styles.
func TestPagesAndAssets(t *testing.T) {
	t.Parallel()
	h := Handler()
	for path, script := range map[string]string{"/": "/assets/app.js", "/console": "/assets/console.js"} {
		r := get(t, h, path, nil)
		b := body(t, r)
		if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s", path, r.StatusCode, r.Header.Get("Content-Type"))
		}
		if !strings.Contains(b, `src="`+script+`"`) {
			t.Errorf("%s does not load %s", path, script)
		}
		if strings.Contains(b, "http://") || strings.Contains(b, "https://") {
			t.Errorf("%s refers to another origin (the app must work offline)", path)
		}
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	for _, a := range []string{"/assets/app.js", "/assets/app.css", "/assets/console.js", "/assets/console.css", "/assets/favicon.svg"} {
		r := get(t, h, a, nil)
		if r.StatusCode != http.StatusOK || r.Header.Get("ETag") == "" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d, headers %v", a, r.StatusCode, r.Header)
		}
		if n := len(body(t, r)); n == 0 {
			t.Errorf("%s is empty", a)
		}
	}
	if ct := get(t, h, "/assets/app.js", nil).Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("app.js served as %q", ct)
	}
}

// TestUnknownPathsAre404: the handler sits under the node's own routes at
// "GET /", so anything that is not a page or an asset is not found.
func TestUnknownPathsAre404(t *testing.T) {
	t.Parallel()
	h := Handler()
	for _, p := range []string{"/nope", "/assets/", "/assets/nope.js", "/assets/../index.html", "/index.html", "/console/", "/v1/whatever"} {
		if r := get(t, h, p, nil); r.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, r.StatusCode)
		}
	}
}

// TestRevalidationAndGzip: a client holding the current ETag gets 304;
// one that accepts gzip gets the precompressed bytes, which decompress
// to the file.
func TestRevalidationAndGzip(t *testing.T) {
	t.Parallel()
	h := Handler()
	r := get(t, h, "/assets/app.js", nil)
	plain := body(t, r)
	etag := r.Header.Get("ETag")
	if r := get(t, h, "/assets/app.js", map[string]string{"If-None-Match": etag}); r.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: %d, want 304", r.StatusCode)
	}
	r = get(t, h, "/assets/app.js", map[string]string{"Accept-Encoding": "br, gzip"})
	if r.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip for an encoder that accepts it: %v", r.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader([]byte(body(t, r))))
	if err != nil {
		t.Fatal(err)
	}
	unz, _ := io.ReadAll(zr)
	if string(unz) != plain {
		t.Fatal("the gzip form differs from the file")
	}
	if r := get(t, h, "/assets/app.js", map[string]string{"Accept-Encoding": "gzip;q=0"}); r.Header.Get("Content-Encoding") != "" {
		t.Fatal("gzip sent to a client that refused it")
	}
}
