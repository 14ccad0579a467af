package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/protocol/openapi"
)

// Helpers of the server HTTP API's end-to-end tests.

const (
	apiSecret = "api-test-secret"
	apiKey    = "key-one"
	apiKey2   = "key-two"
)

// apiNode starts a node in production auth mode with two API keys.
func apiNode(t *testing.T, mutate ...func(*Config)) (*Node, *auth.Signer) {
	t.Helper()
	n := testNode(t, append([]func(*Config){func(c *Config) {
		c.DevAuth, c.AuthSecret, c.APIKey = false, apiSecret, apiKey+","+apiKey2
	}}, mutate...)...)
	return n, auth.NewSigner(apiSecret)
}

// api makes requests to one node with one set of credentials.
type api struct {
	t     *testing.T
	addr  string
	authz string // the Authorization header ("" for none)
	as    string // X-Switchboard-User ("" for none)
	hdr   map[string]string
}

func keyAPI(t *testing.T, n addresser, as string) api {
	return api{t: t, addr: n.Addr(), authz: "Bearer " + apiKey, as: as}
}

// reply is one HTTP answer.
type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r reply) code() string { return errCode(r.body) }

// str returns the string at a dotted path of the body ("message.id").
func (r reply) str(path string) string {
	var v any = r.body
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// do sends a request; body is JSON-encoded unless it is a string or
// []byte (sent as is). The reply is checked against the OpenAPI document
// when template (the documented path) is not "".
func (a api) do(method, path string, body any, template ...string) reply {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, "http://"+a.addr+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if a.authz != "" {
		req.Header.Set("Authorization", a.authz)
	}
	if a.as != "" {
		req.Header.Set("X-Switchboard-User", a.as)
	}
	for k, v := range a.hdr {
		req.Header.Set(k, v)
	}
	cl := &http.Client{Timeout: 20 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		a.t.Fatalf("%s %s: Content-Type %q (%d %s)", method, path, ct, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		a.t.Fatalf("%s %s: %d, not a JSON object: %s", method, path, resp.StatusCode, raw)
	}
	if len(template) > 0 {
		conform(a.t, method, template[0], r)
	}
	return r
}

// with returns a with an extra header.
func (a api) with(k, v string) api {
	h := map[string]string{k: v}
	for x, y := range a.hdr {
		h[x] = y
	}
	a.hdr = h
	return a
}

// want fails unless r has status (and, for an error, code).
func (r reply) want(t *testing.T, status int, code string) reply {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Fatalf("got %d %s, want %d %q", r.status, r.raw, status, code)
	}
	return r
}

var (
	docOnce sync.Once
	doc     *openapi3.T
	docErr  error
)

// conform checks an answer against the OpenAPI document: its status is
// one the operation documents (or an error, the default response), and
// its body validates against that response's schema.
func conform(t *testing.T, method, template string, r reply) {
	t.Helper()
	docOnce.Do(func() { doc, docErr = openapi3.NewLoader().LoadFromData(openapi.Document()) })
	if docErr != nil {
		t.Fatalf("openapi: %v", docErr)
	}
	item := doc.Paths.Find(template)
	if item == nil || item.GetOperation(method) == nil {
		t.Fatalf("%s %s is not in the OpenAPI document", method, template)
	}
	op := item.GetOperation(method)
	resp := op.Responses.Status(r.status)
	if resp == nil {
		if r.status < 400 {
			t.Fatalf("%s %s answered %d, which the document does not list", method, template, r.status)
		}
		resp = op.Responses.Default()
	}
	schema := resp.Value.Content.Get("application/json").Schema.Value
	var v any
	_ = json.Unmarshal(r.raw, &v)
	if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		t.Fatalf("%s %s: %d %s does not match the document: %v", method, template, r.status, r.raw, err)
	}
}
