package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var adminRE = regexp.MustCompile(`operator endpoints on (\S+)`)

// httpDo makes one request, with key as its bearer credential when set.
func httpDo(t *testing.T, method, url, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOperatorEndpointsNeedAKey runs node processes the ways an operator
// would and checks who may use the operator endpoints: nobody may change
// the cluster without an API key; read-only endpoints follow the key when
// one is set, are open in development auth, and with an auth key but no
// API key are served only on a separate --admin-listen address.
func TestOperatorEndpointsNeedAKey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	t.Parallel()
	base := func(extra ...string) []string {
		return append([]string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", t.TempDir(),
			"--failure-detection", "fast"}, extra...)
	}
	type check struct {
		method, path, key string
		admin             bool // on the --admin-listen address
		status            int
		body              string // a substring of the body
	}
	run := func(t *testing.T, p *proc, admin string, checks []check) {
		t.Helper()
		for _, c := range checks {
			addr := p.addr
			if c.admin {
				addr = admin
			}
			status, body := httpDo(t, c.method, "http://"+addr+c.path, c.key)
			if status != c.status || !strings.Contains(body, c.body) {
				t.Errorf("%s %s (admin %v, key %q): %d %.200q, want %d with %q", c.method, c.path, c.admin, c.key, status, body, c.status, c.body)
			}
			if status == http.StatusForbidden || status == http.StatusUnauthorized {
				var e struct {
					Error struct{ Code, Message string }
				}
				if json.Unmarshal([]byte(body), &e) != nil || e.Error.Code == "" {
					t.Errorf("%s %s: refusal %q is not a coded JSON error", c.method, c.path, body)
				}
			}
		}
	}
	forget := "/v1/cluster/forget?node=nobody"

	t.Run("auth key, no API key", func(t *testing.T) {
		p := startProc(t, base("--auth-secret", "s3cret")...)
		run(t, p, "", []check{
			{method: "POST", path: forget, status: 403, body: "--api-key"},
			{method: "GET", path: "/v1/cluster", status: 403, body: "--admin-listen"},
			{method: "GET", path: "/metrics", status: 403, body: "--api-key"},
			{method: "GET", path: "/healthz", status: 200},
			{method: "GET", path: "/readyz", status: 200},
		})
		waitFor(t, 5*time.Second, "the missing API key warning", func() bool {
			return strings.Contains(readFile(p.logf), "NO API KEY")
		})
	})
	t.Run("API keys", func(t *testing.T) {
		p := startProc(t, base("--auth-secret", "s3cret", "--api-key", "old-key, new-key")...)
		run(t, p, "", []check{
			{method: "POST", path: forget, status: 401, body: "unauthenticated"},
			{method: "POST", path: forget, key: "wrong", status: 401},
			{method: "POST", path: forget, key: "old-key", status: 400, body: "bad_request"},
			{method: "GET", path: "/v1/cluster", status: 401},
			{method: "GET", path: "/v1/cluster", key: "new-key", status: 200, body: `"members"`},
			{method: "GET", path: "/v1/cluster", key: "old-key, new-key", status: 401},
			{method: "GET", path: "/metrics", key: "old", status: 401},
			{method: "GET", path: "/metrics", key: "new-key", status: 200, body: "go_goroutines"},
		})
		if strings.Contains(readFile(p.logf), "NO API KEY") {
			t.Error("a node with an API key warns that it has none")
		}
	})
	t.Run("admin listener", func(t *testing.T) {
		p := startProc(t, base("--auth-secret", "s3cret", "--admin-listen", "127.0.0.1:0")...)
		admin := ""
		waitFor(t, 5*time.Second, "the admin address", func() bool {
			m := adminRE.FindStringSubmatch(p.stdout())
			if m != nil {
				admin = m[1]
			}
			return admin != ""
		})
		run(t, p, admin, []check{
			{method: "GET", path: "/v1/cluster", status: 404},
			{method: "GET", path: "/metrics", status: 404},
			{method: "POST", path: forget, status: 404},
			{method: "GET", path: "/readyz", status: 200},
			{method: "GET", path: "/v1/cluster", admin: true, status: 200, body: `"members"`},
			{method: "GET", path: "/metrics", admin: true, status: 200, body: "go_goroutines"},
			{method: "POST", path: forget, admin: true, status: 403, body: "--api-key"},
			{method: "GET", path: "/healthz", admin: true, status: 200},
		})
	})
	t.Run("development auth", func(t *testing.T) {
		p := startProc(t, base()...)
		run(t, p, "", []check{
			{method: "GET", path: "/v1/cluster", status: 200, body: `"members"`},
			{method: "GET", path: "/metrics", status: 200},
			{method: "POST", path: forget, status: 403, body: "--api-key"},
		})
	})
}
