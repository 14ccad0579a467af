package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/gateway"
	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/protocol"
)

// End-to-end tests of authentication and of how it is configured.

// keyedNode is a node in production auth mode with the signer it trusts,
// a signer of the same algorithm it does not (another key), and a signer
// of the other algorithm.
type keyedNode struct {
	alg                      string
	config                   func(*Config)
	n                        *Node // started by the subtest
	signer, forger, otherAlg *auth.Signer
}

// ed25519Key makes a key pair and writes the public half as the PEM file
// --auth-public-key reads.
func ed25519Key(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "auth.pub.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f, priv
}

// keyedNodes describes an HS256 node and an EdDSA node. Each is started
// in its own subtest and closed before the next starts: two nodes in one
// process race on grpc's global logger (protoactor's remote sets it).
func keyedNodes(t *testing.T) []keyedNode {
	t.Helper()
	const secret = "auth-test-secret"
	pemFile, priv := ed25519Key(t)
	_, otherPriv := ed25519Key(t)
	return []keyedNode{
		{
			alg:      "HS256",
			config:   func(c *Config) { c.DevAuth, c.AuthSecret = false, secret },
			signer:   auth.NewSigner(secret),
			forger:   auth.NewSigner("not-the-secret"),
			otherAlg: auth.NewEdDSASigner(priv),
		},
		{
			alg:      "EdDSA",
			config:   func(c *Config) { c.DevAuth, c.AuthPublicKey = false, pemFile },
			signer:   auth.NewEdDSASigner(priv),
			forger:   auth.NewEdDSASigner(otherPriv),
			otherAlg: auth.NewSigner(secret),
		},
	}
}

// sessionToken mints a session token for user with s.
func sessionToken(t *testing.T, s *auth.Signer, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := s.SessionToken(auth.Session{User: user}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// join mints a join token the node accepts.
func (k keyedNode) join(t *testing.T, user, ch string, perms ...string) string {
	t.Helper()
	tok, err := k.signer.JoinToken(auth.Join{User: user, Channel: ch, Perms: perms}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dialToken connects a client with a session token.
func dialToken(t *testing.T, n *Node, tok string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URLs: []string{"ws://" + n.Addr() + "/v1/ws"}, Token: tok, NoReconnect: true})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connectToken sends connect {token} on r and returns the reply.
func (r *rawConn) connectToken(tok string) map[string]any {
	r.t.Helper()
	b, _ := json.Marshal(map[string]any{"id": 1, "op": protocol.OpConnect, "args": map[string]any{"token": tok}})
	r.write(string(b))
	return r.reply()
}

// TestTokensEndToEnd: with each algorithm, connect refuses join tokens and
// every bad session token with a coded error and the connection stays
// unauthenticated; channel.join refuses session tokens and changes no
// membership; POST /v1/files refuses join tokens.
func TestTokensEndToEnd(t *testing.T) {
	for _, k := range keyedNodes(t) {
		t.Run(k.alg, func(t *testing.T) {
			k.n = testNode(t, k.config)
			alice := dialToken(t, k.n, sessionToken(t, k.signer, "alice", time.Hour))
			expect(t, alice, protocol.OpChannelCreate, map[string]any{"id": "priv", "type": "private"}, "")

			none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()}).
				SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			r := rawDial(t, k.n)
			for _, tc := range []struct {
				name string
				tok  string
				want protocol.Code
			}{
				{"join token", k.join(t, "bob", "priv", auth.PermRead), protocol.CodeTokenInvalid},
				{"expired", sessionToken(t, k.signer, "bob", -time.Minute), protocol.CodeTokenExpired},
				{"wrong signature", sessionToken(t, k.forger, "bob", time.Hour), protocol.CodeTokenInvalid},
				{"other algorithm", sessionToken(t, k.otherAlg, "bob", time.Hour), protocol.CodeTokenInvalid},
				{"alg none", none, protocol.CodeTokenInvalid},
				{"missing sub", sessionToken(t, k.signer, "", time.Hour), protocol.CodeTokenInvalid},
				{"garbage", "not.a.jwt", protocol.CodeTokenInvalid},
			} {
				if m := r.connectToken(tc.tok); errCode(m) != string(tc.want) {
					t.Errorf("connect with %s: %v, want %s", tc.name, m, tc.want)
				}
			}
			// Nothing changed: still unauthenticated, and a good token
			// connects on the same connection.
			r.write(`{"id":2,"op":"me"}`)
			if m := r.reply(); errCode(m) != string(protocol.CodeUnauthenticated) {
				t.Fatalf("me after refused connects: %v", m)
			}
			if m := r.connectToken(sessionToken(t, k.signer, "bob", time.Hour)); m["result"] == nil {
				t.Fatalf("connect with a session token: %v", m)
			}

			// A session token is not a join token, with or without the
			// channel named; bob stays outside the private channel.
			bob := dialToken(t, k.n, sessionToken(t, k.signer, "bob", time.Hour))
			sess := sessionToken(t, k.signer, "bob", time.Hour)
			expect(t, bob, protocol.OpChannelJoin, map[string]any{"token": sess}, protocol.CodeTokenInvalid)
			expect(t, bob, protocol.OpChannelJoin, map[string]any{"channel": "priv", "token": sess}, protocol.CodeTokenInvalid)
			expect(t, bob, protocol.OpChannelWatch, a("priv"), protocol.CodeNotMember)
			expect(t, bob, protocol.OpChannelJoin, map[string]any{"token": k.join(t, "bob", "priv", auth.PermWrite)}, "")
			expect(t, bob, protocol.OpMessageSend, a("priv", "client_id", "b1", "text", "in"), "")

			// The files API takes session tokens only.
			status, body := upload(t, k.n, "Bearer "+k.join(t, "bob", "priv", auth.PermWrite), "a.png", "", png)
			if e, _ := body["error"].(map[string]any); status != http.StatusUnauthorized || e["code"] != string(protocol.CodeTokenInvalid) {
				t.Fatalf("upload with a join token: %d %v", status, body)
			}
			mustUpload(t, k.n, "Bearer "+sess, "a.png", "", png)
		})
	}
}

// TestLogout: logout answers {}, then the server closes the connection
// with 1000 "logout"; requests sent after it are neither answered nor
// carried out, and the user goes offline.
func TestLogout(t *testing.T) {
	var mu sync.Mutex
	reasons := map[string]int{}
	n := testNode(t, fastPresence, func(c *Config) {
		c.Gateway.Metrics = &gateway.Metrics{Disconnect: func(r string) {
			mu.Lock()
			reasons[r]++
			mu.Unlock()
		}}
	})
	w := dial(t, n, "watcher")
	r := rawDial(t, n)
	r.connect("alice")
	if u := status(t, w, "alice"); u.Status != protocol.StatusOnline {
		t.Fatalf("before logout: %+v", u)
	}
	r.write(`{"id":2,"op":"channel.create","args":{"id":"room","type":"standard"}}`)
	if m := r.reply(); m["result"] == nil {
		t.Fatalf("create: %v", m)
	}
	// All in one message: the send and me come after logout.
	r.write(`{"id":3,"op":"logout","args":{}}` + "\n" +
		`{"id":4,"op":"message.send","args":{"channel":"room","client_id":"late","text":"after logout"}}` + "\n" +
		`{"id":5,"op":"me"}`)
	if m := r.reply(); m["id"] != 3.0 || m["error"] != nil {
		t.Fatalf("logout: %v", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if len(r.buf) > 0 {
		t.Fatalf("after logout: %s", r.buf[0])
	}
	_, msg, err := r.conn.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "logout" {
		t.Fatalf("after logout: read %q, %v; want close 1000 logout", msg, err)
	}
	waitFor(t, 5*time.Second, "alice offline", func() bool { return status(t, w, "alice").Status == protocol.StatusOffline })
	waitFor(t, 5*time.Second, "one session", func() bool { return n.gw.Sessions() == 1 })
	if h := call[protocol.HistoryResult](t, w, protocol.OpMessagesHistory, a("room")); len(h.Messages) != 0 {
		t.Fatalf("a send after logout was carried out: %+v", h.Messages[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if reasons["logout"] != 1 {
		t.Fatalf("disconnect reasons %v, want one logout", reasons)
	}
}

// TestDevAuthWarning: a node in development auth mode says so at start-up,
// at ERROR when an auth key is configured too; a node with a key alone
// says nothing about it.
func TestDevAuthWarning(t *testing.T) {
	pemFile, _ := ed25519Key(t)
	for _, tc := range []struct {
		name  string
		cfg   func(*Config)
		level string // "": no warning
	}{
		{"no key", func(c *Config) {}, "level=WARN"},
		{"no key, --dev-auth", func(c *Config) { c.DevAuth = true }, "level=WARN"},
		{"secret", func(c *Config) { c.AuthSecret = "s" }, ""},
		{"secret and --dev-auth", func(c *Config) { c.AuthSecret, c.DevAuth = "s", true }, "level=ERROR"},
		{"public key and --dev-auth", func(c *Config) { c.AuthPublicKey, c.DevAuth = pemFile, true }, "level=ERROR"},
	} {
		var logs bytes.Buffer
		cfg := Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), ClusterBind: "127.0.0.1:0", Detection: "fast", Network: cluster.NewMemNetwork(),
			Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		tc.cfg(&cfg)
		n, err := NewNode(cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		n.Close()
		var got string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "DEVELOPMENT AUTH") {
				got = l
			}
		}
		if tc.level == "" && got != "" || tc.level != "" && !strings.Contains(got, tc.level) {
			t.Errorf("%s: logged %q, want %q", tc.name, got, tc.level)
		}
	}
}

// TestServeEnvironment: serve reads each flag from SWITCHBOARD_<FLAG>
// (a flag on the command line wins), and a process run with an auth key
// and development auth prints the ERROR-level warning to stderr.
func TestServeEnvironment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real process")
	}
	const secret = "env-secret"
	data := t.TempDir()
	for k, v := range map[string]string{
		"LISTEN": "127.0.0.1:0", "CLUSTER_BIND": "127.0.0.1:0", "DATA": data, "FAILURE_DETECTION": "fast",
		"DRAIN_TIMEOUT": "0", "AUTH_SECRET": secret, "DEV_AUTH": "true", "LOG_FORMAT": "json",
		"MAX_FRAME_BYTES": "30000", "MAX_TEXT_LEN": "77",
	} {
		t.Setenv("SWITCHBOARD_"+k, v)
	}
	p := startProc(t, "--max-text-len", "88")
	if p.addr == "127.0.0.1:8080" {
		t.Fatalf("SWITCHBOARD_LISTEN ignored: %s", p.addr)
	}
	if _, err := os.Stat(filepath.Join(data, "store")); err != nil {
		t.Fatalf("SWITCHBOARD_DATA ignored: %v", err)
	}
	warned := false
	for _, l := range strings.Split(readFile(p.logf), "\n") {
		var rec struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Level == "ERROR" && strings.Contains(rec.Msg, "DEVELOPMENT AUTH IS ON ALONGSIDE AN AUTH KEY") {
			warned = true
		}
	}
	if !warned {
		t.Fatalf("no JSON ERROR line about development auth on stderr:\n%s", readFile(p.logf))
	}
	// Both the secret and development auth are in force.
	tok := sessionToken(t, auth.NewSigner(secret), "alice", time.Hour)
	c, err := client.Dial(ctxT(t), client.Options{URLs: []string{p.url()}, Token: tok, NoReconnect: true})
	if err != nil {
		t.Fatalf("connect with a token signed by SWITCHBOARD_AUTH_SECRET: %v", err)
	}
	defer c.Close()
	if lim := c.Session().Limits; lim.MaxTextLen != 88 || lim.MaxFrameBytes != 30000 {
		t.Fatalf("limits %+v: want max_text_len 88 (the flag over the variable), max_frame_bytes 30000", lim)
	}
	procDial(t, p.url(), "bob") // connect {user_id}
}

// TestTokenCommand: switchboard token mints join tokens (typ "join") for 5
// minutes and session tokens for an hour unless --ttl says otherwise, and
// refuses unknown permissions, negative lifetimes, flags for the other
// kind of token and bad variables.
func TestTokenCommand(t *testing.T) {
	const secret = "cli-secret"
	v := auth.NewHS256(secret)
	mint := func(args ...string) (code int, stdout, stderr string) {
		var out, errb bytes.Buffer
		code = run(append([]string{"token", "--secret", secret, "--user", "bob"}, args...), &out, &errb)
		return code, strings.TrimSpace(out.String()), errb.String()
	}
	// claims returns a minted token's typ claim and lifetime.
	claims := func(tok string) (string, time.Duration) {
		var c jwt.MapClaims
		if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
			t.Fatalf("token %q: %v", tok, err)
		}
		typ, _ := c["typ"].(string)
		exp, _ := c.GetExpirationTime()
		iat, _ := c.GetIssuedAt()
		return typ, exp.Sub(iat.Time)
	}

	code, tok, stderr := mint("--channel", "general", "--perms", "read, moderate")
	if code != 0 {
		t.Fatalf("join token: exit %d: %s", code, stderr)
	}
	if typ, ttl := claims(tok); typ != auth.TypeJoin || ttl != 5*time.Minute {
		t.Fatalf("join token: typ %q, lifetime %s; want join, 5m", typ, ttl)
	}
	if j, perr := v.Join(tok); perr != nil || j.Channel != "general" || strings.Join(j.Perms, ",") != "read,moderate" {
		t.Fatalf("join token verifies as %+v, %v", j, perr)
	}
	if _, perr := v.Session(tok); perr == nil || perr.Code != protocol.CodeTokenInvalid {
		t.Fatalf("join token as a session token: %v", perr)
	}

	code, tok, stderr = mint("--name", "Bob")
	if code != 0 {
		t.Fatalf("session token: exit %d: %s", code, stderr)
	}
	if typ, ttl := claims(tok); typ != "" || ttl != time.Hour {
		t.Fatalf("session token: typ %q, lifetime %s; want none, 1h", typ, ttl)
	}
	if s, perr := v.Session(tok); perr != nil || s.User != "bob" || s.Name != "Bob" {
		t.Fatalf("session token verifies as %+v, %v", s, perr)
	}

	if code, tok, stderr = mint("--channel", "general", "--ttl", "90s"); code != 0 {
		t.Fatalf("--ttl 90s: exit %d: %s", code, stderr)
	}
	if _, ttl := claims(tok); ttl != 90*time.Second {
		t.Fatalf("--ttl 90s: lifetime %s", ttl)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--channel", "general", "--perms", "read,admin"}, `unknown permission "admin" (read, write, moderate)`},
		{[]string{"--channel", "general", "--perms", "Write"}, `unknown permission "Write"`},
		{[]string{"--ttl", "-1m"}, "cannot be negative"},
		// A flag the other kind of token would ignore.
		{[]string{"--channel", "general", "--name", "Bob"}, "--name applies to session tokens only"},
		{[]string{"--channel", "general", "--admin"}, "--admin applies to session tokens only"},
		{[]string{"--perms", "read"}, "--perms applies to join tokens (--channel) only"},
	} {
		if code, out, stderr := mint(tc.args...); code != 1 || out != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("token %v: exit %d, stdout %q, stderr %q; want 1 and %q", tc.args, code, out, stderr, tc.want)
		}
	}
	// A bad value in a variable is reported like a bad flag.
	t.Setenv("SWITCHBOARD_TTL", "soon")
	if code, out, stderr := mint(); code != 2 || out != "" || !strings.Contains(stderr, `SWITCHBOARD_TTL="soon"`) {
		t.Errorf("SWITCHBOARD_TTL=soon: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}
