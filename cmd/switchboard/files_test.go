package main

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/protocol"
)

// upload posts one file part to /v1/files with the given Authorization
// header and returns the status and decoded body.
func upload(t *testing.T, n addresser, authz, name, mimeType string, content []byte) (int, map[string]any) {
	t.Helper()
	return uploadTo(t, http.DefaultClient, "http://"+n.Addr(), authz, name, mimeType, content)
}

// uploadTo is upload to the node whose HTTP root is base, with hc.
func uploadTo(t *testing.T, hc *http.Client, base, authz, name, mimeType string, content []byte) (int, map[string]any) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("note", "ignored")
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+name+`"`)
	if mimeType != "" {
		h.Set("Content-Type", mimeType)
	}
	pw, _ := mw.CreatePart(h)
	pw.Write(content)
	mw.Close()
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodPost, base+"/v1/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// mustUpload uploads a file that must be accepted.
func mustUpload(t *testing.T, n addresser, authz, name, mimeType string, content []byte) protocol.File {
	t.Helper()
	status, body := upload(t, n, authz, name, mimeType, content)
	return uploadedFile(t, status, body)
}

// uploadedFile is the file of an upload's answer, which must be 201.
func uploadedFile(t *testing.T, status int, body map[string]any) protocol.File {
	t.Helper()
	if status != http.StatusCreated {
		t.Fatalf("upload: %d %v", status, body)
	}
	b, _ := json.Marshal(body["file"])
	var f protocol.File
	_ = json.Unmarshal(b, &f)
	return f
}

// download fetches a file URL from n and returns status, headers and body.
func download(t *testing.T, n addresser, authz, url string) (int, http.Header, []byte) {
	t.Helper()
	return downloadFrom(t, http.DefaultClient, "http://"+n.Addr(), authz, url)
}

// downloadFrom is download from the node whose HTTP root is base, with hc.
func downloadFrom(t *testing.T, hc *http.Client, base, authz, url string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, base+url, nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

var png = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 100)...)

func TestFilesE2E(t *testing.T) {
	n := testNode(t, func(c *Config) { c.Limits.MaxFileBytes = 4096 })
	cs := setup(t, n, "priv", protocol.TypePrivate, "alice", "bob")
	alice, bob := cs[0], cs[1]
	ctx := ctxT(t)

	// Uploads need credentials.
	if status, body := upload(t, n, "", "a.png", "", png); status != http.StatusUnauthorized || body["error"] == nil {
		t.Fatalf("anonymous upload: %d %v", status, body)
	}
	// No declared type: sniffed from the content.
	f := mustUpload(t, n, "Dev alice", "../../cat.png", "", png)
	if f.Type != "image" || f.MIME != "image/png" || f.Size != int64(len(png)) || f.Name != "cat.png" || f.URL != "/v1/files/"+f.ID {
		t.Fatalf("file %+v", f)
	}
	doc := mustUpload(t, n, "Dev alice", "notes.txt", "text/plain; charset=utf-8", []byte("hello notes"))
	if doc.Type != "file" || doc.MIME != "text/plain" {
		t.Fatalf("doc %+v", doc)
	}
	if status, body := upload(t, n, "Dev alice", "big.bin", "application/octet-stream", make([]byte, 5000)); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize: %d %v", status, body)
	}
	// A MIME type is bounded like any field a message carries: 127 bytes
	// each to the type and the subtype (RFC 6838).
	if f := mustUpload(t, n, "Dev alice", "long.bin", "application/"+strings.Repeat("x", 127), []byte("x")); len(f.MIME) != 139 {
		t.Fatalf("a 139-byte MIME type: %+v", f)
	}
	if status, body := upload(t, n, "Dev alice", "longer.bin", "application/"+strings.Repeat("x", 128), []byte("x")); status != http.StatusBadRequest || errCode(body) != string(protocol.CodeTooLong) {
		t.Fatalf("a MIME type over the bound: %d %v", status, body)
	}

	// Before it is sent, only the uploader reads a file.
	if status, _, b := download(t, n, "Dev alice", f.URL); status != 200 || !bytes.Equal(b, png) {
		t.Fatalf("owner download: %d", status)
	}
	if status, _, _ := download(t, n, "Dev bob", f.URL); status != http.StatusForbidden {
		t.Fatalf("bob before the send: %d", status)
	}

	m, err := alice.Send(ctx, protocol.SendArgs{Channel: "priv", Text: "a cat", Attachments: []string{f.ID, doc.ID, f.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Attachments) != 2 || m.Attachments[0] != f || m.Attachments[1] != doc {
		t.Fatalf("attachments %+v", m.Attachments)
	}
	_, ev := eventData[protocol.MessageResult](t, bob, protocol.EventMessageNew)
	if len(ev.Message.Attachments) != 2 {
		t.Fatalf("event attachments %+v", ev.Message.Attachments)
	}
	status, hdr, b := download(t, n, "Dev bob", f.URL)
	if status != 200 || !bytes.Equal(b, png) || hdr.Get("Content-Type") != "image/png" || !strings.HasPrefix(hdr.Get("Content-Disposition"), "inline") || hdr.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("bob's download: %d %v", status, hdr)
	}
	if _, hdr, _ := download(t, n, "Dev bob", doc.URL); !strings.HasPrefix(hdr.Get("Content-Disposition"), "attachment") {
		t.Errorf("text served %q", hdr.Get("Content-Disposition"))
	}
	for _, c := range []struct{ authz string }{{"Dev eve"}, {""}, {"Bearer not-a-token"}} {
		if status, _, _ := download(t, n, c.authz, f.URL); status != http.StatusForbidden && status != http.StatusUnauthorized {
			t.Errorf("%q: %d", c.authz, status)
		}
	}
	if status, _, _ := download(t, n, "Dev bob", "/v1/files/nope"); status != http.StatusNotFound {
		t.Errorf("unknown id: %d", status)
	}

	// Only one's own uploads attach; unknown ids are not found.
	bobs := mustUpload(t, n, "Dev bob", "b.png", "image/png", png)
	if code := callCode(t, alice, protocol.OpMessageSend, protocol.SendArgs{Channel: "priv", ClientID: "x", Attachments: []string{bobs.ID}}); code != protocol.CodeForbidden {
		t.Errorf("attaching bob's file: %s", code)
	}
	if code := callCode(t, alice, protocol.OpMessageSend, protocol.SendArgs{Channel: "priv", ClientID: "y", Attachments: []string{strings.Repeat("0", 32) + "-alice"}}); code != protocol.CodeNotFound {
		t.Errorf("attaching an unknown file: %s", code)
	}

	// Deleting the message takes the file away from the channel's readers.
	call[protocol.MessageResult](t, alice, protocol.OpMessageDelete, protocol.MessageRef{Channel: "priv", MessageID: m.ID})
	if status, _, _ := download(t, n, "Dev bob", f.URL); status != http.StatusForbidden {
		t.Errorf("after delete: %d", status)
	}
	if status, _, _ := download(t, n, "Dev alice", f.URL); status != 200 {
		t.Errorf("owner after delete: %d", status)
	}
}

func TestFilesTypesAndTokens(t *testing.T) {
	const secret = "s3cret"
	n := testNode(t, func(c *Config) {
		c.AuthSecret, c.DevAuth = secret, false
		c.Gateway.Files.AllowedTypes = []string{"image/*"}
	})
	tok, err := auth.NewSigner(secret).SessionToken(auth.Session{User: "alice"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := upload(t, n, "Dev alice", "a.png", "", png); status != http.StatusUnauthorized {
		t.Fatalf("dev form with auth on: %d", status)
	}
	f := mustUpload(t, n, "Bearer "+tok, "a.png", "", png)
	if status, body := upload(t, n, "Bearer "+tok, "a.txt", "text/plain", []byte("x")); status != http.StatusUnsupportedMediaType {
		t.Fatalf("text with images only: %d %v", status, body)
	}
	if status, _, _ := download(t, n, "Bearer "+tok, f.URL); status != 200 {
		t.Fatalf("download with a token: %d", status)
	}
}

// addresser is a node in-process or in a process of its own.
type addresser interface{ Addr() string }

func (p *proc) Addr() string { return p.addr }

// TestFilesAcrossNodes: a file uploaded to one node is attached through
// and downloaded from another; the bytes stay on the node that took the
// upload, and the other proxies downloads to it. (Real processes: two
// nodes in one process race on the actor transport's global logger.)
func TestFilesAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	a, b := procCluster(t)
	ctx := ctxT(t)
	ca, cb := procDial(t, a.url(), "alice"), procDial(t, b.url(), "bob")
	if _, _, err := ca.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "x", Type: protocol.TypePrivate, Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	f := mustUpload(t, a, "Dev alice", "cat.png", "image/png", png)
	// alice sends it through node b.
	if _, err := procDial(t, b.url(), "alice").Send(ctx, protocol.SendArgs{Channel: "x", Text: "cat", Attachments: []string{f.ID}}); err != nil {
		t.Fatal(err)
	}
	if h, err := cb.History(ctx, protocol.HistoryArgs{Channel: "x"}); err != nil || len(h.Messages) != 1 || len(h.Messages[0].Attachments) != 1 {
		t.Fatalf("history %+v %v", h, err)
	}
	for _, n := range []*proc{a, b} {
		status, hdr, body := download(t, n, "Dev bob", f.URL)
		if status != 200 || !bytes.Equal(body, png) || hdr.Get("Content-Type") != "image/png" {
			t.Fatalf("download from %s: %d %v", n.addr, status, hdr)
		}
		if status, _, _ := download(t, n, "Dev eve", f.URL); status != http.StatusForbidden {
			t.Fatalf("eve from %s: %d", n.addr, status)
		}
	}
}

// procCluster starts two node processes, n1 and n2, that form a cluster.
func procCluster(t *testing.T, extra ...string) (*proc, *proc) {
	t.Helper()
	args := func(name string) []string {
		return append([]string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", t.TempDir(),
			"--node-name", name, "--failure-detection", "fast", "--drain-timeout", "0"}, extra...)
	}
	a := startProc(t, args("n1")...)
	b := startProc(t, append(args("n2"), "--join", a.gossip)...)
	// A third host keeps a majority of every shard's replicas when a test
	// kills one of the two it uses.
	c := startProc(t, append(args("n3"), "--join", a.gossip, "--roles", "host")...)
	tc := &testCluster{t: t, procs: map[string]*proc{"n1": a, "n2": b, "n3": c}, order: []string{"n1", "n2", "n3"}}
	tc.waitAlive(3)
	tc.waitSettled("n1", "n2", "n3")
	return a, b
}

// TestFileURLsRoundTripEveryIDCharacter: a file's url works whatever its
// uploader's id holds — every character an id may have (printable ASCII
// but space), and the ones a path treats specially — on the node that
// holds the file and through the node that proxies to it.
func TestFileURLsRoundTripEveryIDCharacter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	t.Parallel()
	a, b := procCluster(t)
	var every strings.Builder
	for c := byte('!'); c <= '~'; c++ {
		every.WriteByte(c)
	}
	users := []string{every.String(), "/", "?", "#", "%", "%2F", "%zz", "a/../b", "..", ".", "./x", "x/..", "//", `\`, "+", ";", "&x=1"}
	for _, u := range users {
		f := mustUpload(t, a, "Dev "+u, "f.bin", "application/octet-stream", []byte("bytes of "+u))
		if f.URL != protocol.FileURL(f.ID) || !strings.HasSuffix(f.ID, "-"+u) {
			t.Fatalf("user %q: file %+v", u, f)
		}
		for _, n := range []*proc{a, b} {
			status, _, body := download(t, n, "Dev "+u, f.URL)
			if status != http.StatusOK || string(body) != "bytes of "+u {
				t.Errorf("user %q: GET %s from %s: %d %q", u, f.URL, n.addr, status, body)
			}
		}
	}
}
