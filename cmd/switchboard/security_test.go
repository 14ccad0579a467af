package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/cluster/security"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestNodeWithoutClusterKeyDoesNotJoin: a node without the cluster key,
// and one with another key, never join a keyed cluster (nor does it join
// them); the seed logs each refusal once, however often they retry, and
// each stranger logs its failed join once.
func TestNodeWithoutClusterKeyDoesNotJoin(t *testing.T) {
	c := &testCluster{t: t, procs: map[string]*proc{}, dirs: map[string]string{}}
	if testing.Short() {
		t.Skip("starts real processes")
	}
	seed := c.start("seed", "--cluster-key", security.NewKey())
	strangers := map[string]*proc{
		"nokey":    c.start("nokey"),
		"wrongkey": c.start("wrongkey", "--cluster-key", security.NewKey()),
	}
	// Each stranger has tried and failed at least three times.
	waitFor(t, 20*time.Second, "three failed joins by each stranger", func() bool {
		for _, p := range strangers {
			if metric(procMetrics(t, http.DefaultClient, p.base()), "switchboard_cluster_join_attempts_total", "failed") < 3 {
				return false
			}
		}
		return true
	})
	for name, p := range map[string]*proc{"seed": seed, "nokey": strangers["nokey"], "wrongkey": strangers["wrongkey"]} {
		if n := aliveMembers(p.addr); n != 1 {
			t.Errorf("%s sees %d alive members, want only itself", name, n)
		}
	}
	for name, p := range strangers {
		resp, err := http.Get(p.base() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s /readyz: %d, want 503 (it never joined)", name, resp.StatusCode)
		}
		log := readFile(p.logf)
		if n := strings.Count(log, "could not join"); n != 1 {
			t.Errorf("%s logged its failed join %d times, want once:\n%s", name, n, log)
		}
		if !strings.Contains(log, "--cluster-key and --cluster-name must match") {
			t.Errorf("%s's log does not say why it could not join:\n%s", name, log)
		}
	}
	refusals := metric(procMetrics(t, http.DefaultClient, seed.base()), "switchboard_cluster_refused_total", "gossip")
	log := readFile(seed.logf)
	lines := strings.Count(log, "refused gossip from a node that is not of this cluster")
	if refusals < 6 || lines != 2 || !strings.Contains(log, "it has no cluster key") || !strings.Contains(log, "a key this node does not hold") {
		t.Errorf("seed counted %v refusals and logged %d lines, want at least 6 and one line per reason:\n%s", refusals, lines, log)
	}
}

// TestTransportRefusesStrangers: a process that dials a node's actor
// transport in plaintext, without a certificate, with a node certificate
// from another CA, or with a client certificate of the cluster's CA is
// refused at the TLS handshake and its envelope (a message.send that
// names the channel's owner, as an admin) reaches no actor; the same
// envelope over a node certificate does, which shows the refused ones
// were well-formed.
func TestTransportRefusesStrangers(t *testing.T) {
	pki, other := makePKI(t), makePKI(t)
	p := startProc(t, append([]string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", t.TempDir(),
		"--cluster-key", security.NewKey(), "--cluster-name", "test-" + t.Name()}, pki.clusterTLS()...)...)
	ctx := ctxT(t)
	alice := procDial(t, p.url(), "alice")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "vault", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	addr := remoteAddr(t, http.DefaultClient, p)
	sent := 0
	send := func(text string) *clusterpb.Request {
		sent++
		args, _ := json.Marshal(protocol.SendArgs{Channel: "vault", Text: text, ClientID: fmt.Sprint("forged-", sent)})
		return &clusterpb.Request{Kind: clusterpb.Kind_KIND_CHANNEL, Target: "vault", Op: protocol.OpMessageSend, Args: args,
			Caller: &clusterpb.Caller{User: "alice", Admin: true}} // anyone, an admin even
	}
	clientCert, err := tls.LoadX509KeyPair(pki.client, pki.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	foreign := other.nodeCert(t)
	pool := pki.pool(t)
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":                     insecure.NewCredentials(),
		"no certificate":                credentials.NewTLS(tls13{RootCAs: pool}.config()),
		"another CA's node certificate": credentials.NewTLS(tls13{RootCAs: pool, Cert: &foreign}.config()),
		"the CA's client certificate":   credentials.NewTLS(tls13{RootCAs: pool, Cert: &clientCert}.config()),
	} {
		err := forge(t, addr, creds, send("forged: "+name)).refused(t)
		t.Logf("%s: %v", name, err)
	}
	cert := pki.nodeCert(t)
	forge(t, addr, credentials.NewTLS(tls13{RootCAs: pool, Cert: &cert}.config()), send("with a node certificate"))
	nextEvent(t, alice, protocol.EventMessageNew)
	msgs := allMessages(t, alice, "vault")
	if len(msgs) != 1 || msgs[0].Text != "with a node certificate" || msgs[0].User != "alice" {
		t.Fatalf("messages in the channel: %+v", msgs)
	}
	// A node certificate is trusted, not what it sends: a message of a
	// type the node does not know ends that stream, not the node.
	if err := forgeBatch(t, addr, credentials.NewTLS(tls13{RootCAs: pool, Cert: &cert}.config()), "no.such.Type", []byte{1}).refused(t); !strings.Contains(err.Error(), "Internal") {
		t.Errorf("an unknown message type: %v", err)
	}
	if _, err := alice.Send(ctx, sendArgs("vault", "still up")); err != nil {
		t.Fatalf("after an unknown message type: %v", err)
	}
	fams := procMetrics(t, http.DefaultClient, p.base())
	if n := metric(fams, "switchboard_cluster_refused_total", "transport"); n < 4 {
		t.Errorf("%v transport refusals counted, want 4", n)
	}
	log := readFile(p.logf)
	if strings.Count(log, "refused a connection to the node-to-node transport") < 2 || !strings.Contains(log, "a node-to-node stream failed") {
		t.Errorf("the refusals and the failed stream were not logged:\n%s", log)
	}
}

// TestSecureClusterFormsAndServes: three nodes with a cluster key, node
// certificates and TLS for clients form a cluster; sessions over wss:// on
// one node reach channels hosted on the others, and watchers on a third
// gateway see their messages; nobody was refused on the way.
func TestSecureClusterFormsAndServes(t *testing.T) {
	pki := makePKI(t)
	secure := append(append([]string{"--cluster-key", security.NewKey()}, pki.clusterTLS()...), pki.listenTLS()...)
	c := &testCluster{t: t, procs: map[string]*proc{}, dirs: map[string]string{}, hc: pki.httpClient(t)}
	for _, n := range []string{"n1", "n2", "n3"} {
		c.start(n, secure...)
	}
	c.waitAlive(3)
	tlsOpt := func(o *client.Options) { o.TLSConfig = pki.tlsConfig(t, false) }
	ctx := ctxT(t)
	alice := clusterClient(t, c.urls("n1"), "alice", tlsOpt)
	bob := clusterClient(t, c.urls("n3"), "bob", tlsOpt)
	names := []string{"n1", "n2", "n3"}
	for _, host := range []string{"n2", "n3"} {
		ch := channelOwnedBy("secure-"+host+"-", host, names...)
		if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
			t.Fatalf("create %s (on %s): %v", ch, host, err)
		}
		if _, err := bob.Join(ctx, ch); err != nil {
			t.Fatalf("join %s: %v", ch, err)
		}
		if _, err := alice.Send(ctx, sendArgs(ch, "over TLS to "+host)); err != nil {
			t.Fatalf("send to %s: %v", ch, err)
		}
		if e := nextEvent(t, bob, protocol.EventMessageNew); e.Channel != ch {
			t.Fatalf("bob got %s on %s, want %s", e.Name, e.Channel, ch)
		}
	}
	for _, n := range names {
		resp, err := c.httpClient().Get(c.procs[n].base() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Errorf("%s: the HTTP API answered over %s, want HTTP/2", n, resp.Proto)
		}
		fams := procMetrics(t, c.httpClient(), c.procs[n].base())
		if g, tr := metric(fams, "switchboard_cluster_refused_total", "gossip"), metric(fams, "switchboard_cluster_refused_total", "transport"); g != 0 || tr != 0 {
			t.Errorf("%s refused members: gossip %v, transport %v\n%s", n, g, tr, readFile(c.procs[n].logf))
		}
	}
}

// TestClusterKeyRotationKeepsMembers rotates the gossip key by editing
// every node's key file: add the new key, make it primary, drop the old.
// No member is ever seen dropping out (its since never changes), a node
// with only the new key joins at the end, and one with only the old key
// is refused.
func TestClusterKeyRotationKeepsMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	oldKey, newKey := security.NewKey(), security.NewKey()
	c := &testCluster{t: t, procs: map[string]*proc{}, dirs: map[string]string{}}
	files := map[string]string{}
	names := []string{"n1", "n2", "n3"}
	writeKeys := func(keys string) {
		for _, n := range names {
			if err := writeAtomic(files[n], []byte(keys+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range names {
		files[n] = filepath.Join(t.TempDir(), "cluster.keys")
		if err := os.WriteFile(files[n], []byte(oldKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.start(n, "--cluster-key-file", files[n])
	}
	c.waitAlive(3)
	since := c.memberSince(names)

	fp := func(k string) string { ks, _ := security.ParseKeys(k); return security.KeyFingerprint(ks[0]) }
	for step, s := range []struct{ keys, want string }{
		{oldKey + "," + newKey, fmt.Sprintf("primary=%s keys=\"[%s %s]\"", fp(oldKey), fp(oldKey), fp(newKey))},
		{newKey + "," + oldKey, fmt.Sprintf("primary=%s keys=\"[%s %s]\"", fp(newKey), fp(newKey), fp(oldKey))},
		{newKey, fmt.Sprintf("primary=%s keys=[%s]", fp(newKey), fp(newKey))},
	} {
		writeKeys(s.keys)
		waitFor(t, 15*time.Second, fmt.Sprintf("step %d (%s) on every node", step+1, s.want), func() bool {
			for _, n := range names {
				if !strings.Contains(readFile(c.procs[n].logf), s.want) {
					return false
				}
			}
			return true
		})
		c.waitAlive(3)
	}
	c.start("late", "--cluster-key", newKey)
	c.waitAlive(4)
	stale := c.start("stale", "--cluster-key", oldKey)
	waitFor(t, 20*time.Second, "two failed joins with the old key", func() bool {
		return metric(procMetrics(t, http.DefaultClient, stale.base()), "switchboard_cluster_join_attempts_total", "failed") >= 2
	})
	if n := aliveMembers(stale.addr); n != 1 {
		t.Errorf("a node with the old key sees %d alive members", n)
	}
	if after := c.memberSince(names); fmt.Sprint(after) != fmt.Sprint(since) {
		t.Errorf("a member dropped out during the rotation: since %v, then %v", since, after)
	}
}

// memberSince maps "observer/member" to when the member entered its state
// in the observer's view, over names.
func (c *testCluster) memberSince(names []string) map[string]string {
	c.t.Helper()
	out := map[string]string{}
	for _, o := range names {
		v, err := c.view(o)
		if err != nil {
			c.t.Fatal(err)
		}
		for _, m := range v.Members {
			if m.Name != o && containsStr(names, m.Name) {
				out[o+"/"+m.Name] = m.State + "@" + m.Since
			}
		}
	}
	return out
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestWSSEndToEnd: a node serving TLS takes wss:// sessions from the Go
// client that trusts the test CA (and refuses one that does not), offers
// HTTP/2 to clients that ask and HTTP/1.1 to WebSocket upgrades; a node
// that asks for client certificates takes the load test's sessions over
// --ca, --cert and --key, and refuses a client without a certificate.
func TestWSSEndToEnd(t *testing.T) {
	pki := makePKI(t)
	a := startProc(t, append([]string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", t.TempDir()}, pki.listenTLS()...)...)
	if !strings.HasPrefix(a.url(), "wss://") {
		t.Fatalf("the node printed %s", a.url())
	}
	ctx := ctxT(t)
	alice, err := client.Dial(ctx, client.Options{URLs: []string{a.url()}, UserID: "alice", TLSConfig: pki.tlsConfig(t, false), NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "tls-room", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, sendArgs("tls-room", "over wss")); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, alice, protocol.EventMessageNew); e.Channel != "tls-room" {
		t.Fatalf("event %+v", e)
	}
	if _, err := client.Dial(ctx, client.Options{URLs: []string{a.url()}, UserID: "eve", NoReconnect: true}); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client that does not trust the CA connected: %v", err)
	}
	for offer, want := range map[string]string{"h2,http/1.1": "h2", "http/1.1": "http/1.1"} {
		cfg := pki.tlsConfig(t, false)
		cfg.NextProtos = strings.Split(offer, ",")
		conn, err := tlsDial(a.addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := conn.ConnectionState().NegotiatedProtocol; got != want {
			t.Errorf("ALPN offer %s: got %q, want %q", offer, got, want)
		}
		conn.Close()
	}
	resp, err := pki.httpClient(t).Get(a.base() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Errorf("GET /readyz: %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}

	b := startProc(t, append([]string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", t.TempDir(),
		"--tls-client-ca", pki.ca}, pki.listenTLS()...)...)
	if _, err := client.Dial(ctx, client.Options{URLs: []string{b.url()}, UserID: "eve", TLSConfig: pki.tlsConfig(t, false), NoReconnect: true}); err == nil {
		t.Fatal("a client without a certificate connected to a node that asks for one")
	}
	out, err := exec.Command(binary(t), "loadtest", "--target", b.url(), "--ca", pki.ca, "--cert", pki.client, "--key", pki.clientKey,
		"--sessions", "4", "--channels", "2", "--rate", "20", "--warmup", "0s", "--duration", "1s", "--drain", "10s", "--quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("load test over wss://: %v\n%s\n%s", err, out, readFile(b.logf))
	}
	if !strings.Contains(string(out), "4 sessions (4 connected)") {
		t.Errorf("load test summary:\n%s", out)
	}
}

// TestCertificateReplacedOnDisk: a node certificate replaced on disk (a
// renewal by switchboard certs create-node --overwrite) is presented on
// both the client listener and the actor transport at the next
// connection, without a restart.
func TestCertificateReplacedOnDisk(t *testing.T) {
	pki := makePKI(t)
	p := startProc(t, append(append([]string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", t.TempDir()},
		pki.clusterTLS()...), pki.listenTLS()...)...)
	transport := remoteAddr(t, pki.httpClient(t), p)
	cert := pki.nodeCert(t)
	serials := func() (listen, remote string) {
		for i, addr := range []string{p.addr, transport} {
			cfg := tls13{RootCAs: pki.pool(t), Cert: &cert}.config()
			if i == 0 {
				cfg = pki.tlsConfig(t, false)
			}
			conn, err := tlsDial(addr, cfg)
			if err != nil {
				t.Fatalf("dial %s: %v", addr, err)
			}
			s := conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
			conn.Close()
			if i == 0 {
				listen = s
			} else {
				remote = s
			}
		}
		return listen, remote
	}
	l0, r0 := serials()
	if l0 != r0 {
		t.Fatalf("the ports present different certificates: %s, %s", l0, r0)
	}
	cli(t, "certs", "create-node", "--certs-dir", pki.dir, "--host", "127.0.0.1", "--overwrite")
	waitFor(t, 15*time.Second, "the renewed certificate on both ports", func() bool {
		l, r := serials()
		return l != l0 && r != r0
	})
	if !strings.Contains(readFile(p.logf), "reloaded the certificate") {
		t.Errorf("the reload was not logged:\n%s", readFile(p.logf))
	}
}

// TestOffLoopbackWithoutSecurityRefusesToStart: cluster ports off loopback
// without the cluster key and node certificates stop the node at start-up
// (before it binds anything), naming the flags that are missing.
func TestOffLoopbackWithoutSecurityRefusesToStart(t *testing.T) {
	pki := makePKI(t)
	for name, c := range map[string]struct {
		args          []string
		want, notWant []string
	}{
		"nothing": {[]string{"--cluster-bind", "192.0.2.1:7946"},
			[]string{"--cluster-key", "--cluster-tls-ca", "--cluster-tls-cert", "--cluster-tls-key", "--insecure"}, nil},
		"key only, remote off loopback": {[]string{"--cluster-bind", "127.0.0.1:0", "--remote-bind", "192.0.2.1:0", "--cluster-key", security.NewKey()},
			[]string{"--cluster-tls-ca", "--insecure"}, []string{"--cluster-key (or"}},
		"certificates only": {append([]string{"--cluster-bind", "0.0.0.0:0"}, pki.clusterTLS()...),
			[]string{"--cluster-key", "--insecure"}, []string{"--cluster-tls-ca,"}},
	} {
		cmd := exec.Command(binary(t), append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, c.args...)...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("%s: exit %v\n%s", name, err, out)
		}
		for _, w := range c.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: the message does not name %s:\n%s", name, w, out)
			}
		}
		for _, w := range c.notWant {
			if strings.Contains(string(out), w) {
				t.Errorf("%s: the message names %s, which is set:\n%s", name, w, out)
			}
		}
	}
}

// TestDisallowedOriginRefused: a browser page of another origin cannot
// open a session (403 before the upgrade); the node's own origin, the
// --allowed-origins and, under development auth only, loopback pages can.
func TestDisallowedOriginRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	base := []string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--allowed-origins", "https://chat.example.com,*.example.org"}
	dev := startProc(t, append(base, "--data", t.TempDir())...)
	keyed := startProc(t, append(base, "--data", t.TempDir(), "--auth-secret", "s3cret")...)
	for _, c := range []struct {
		p      *proc
		origin string
		ok     bool
	}{
		{dev, "", true},
		{dev, "http://" + dev.addr, true},
		{dev, "https://chat.example.com", true},
		{dev, "https://app.example.org", true},
		{dev, "http://localhost:5173", true},
		{dev, "https://evil.example", false},
		{dev, "https://chat.example.com.evil.example", false},
		{dev, "http://chat.example.com", false},
		{dev, "null", false},
		{keyed, "http://localhost:5173", false},
		{keyed, "https://chat.example.com", true},
	} {
		h := http.Header{}
		if c.origin != "" {
			h.Set("Origin", c.origin)
		}
		conn, resp, err := websocket.Dial(ctxT(t), c.p.url(), &websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{"switchboard.v1.json"}})
		switch {
		case c.ok && err != nil:
			t.Errorf("origin %q refused: %v", c.origin, err)
		case !c.ok && err == nil:
			t.Errorf("origin %q accepted", c.origin)
		case !c.ok && (resp == nil || resp.StatusCode != http.StatusForbidden):
			t.Errorf("origin %q: %v, want 403", c.origin, err)
		}
		if conn != nil {
			conn.CloseNow()
		}
	}
	if n := metric(procMetrics(t, http.DefaultClient, dev.base()), "switchboard_connects_total", "origin_refused"); n != 4 {
		t.Errorf("%v origin refusals counted, want 4", n)
	}
}

// TestSecurityFlags: which combinations of the security flags start a
// node, and what --insecure says.
func TestSecurityFlags(t *testing.T) {
	pki := makePKI(t)
	key := security.NewKey()
	tlsFlags := SecurityConfig{ClusterTLSCA: pki.ca, ClusterTLSCert: pki.node, ClusterTLSKey: pki.nodeKey}
	withKey := func(c SecurityConfig) SecurityConfig { c.ClusterKey = key; return c }
	for _, c := range []struct {
		name           string
		cfg            SecurityConfig
		gossip, remote string
		err, log       string // "" when none
	}{
		{"loopback, nothing", SecurityConfig{}, "127.0.0.1:0", "127.0.0.1:0", "", ""},
		{"off loopback, secured", withKey(tlsFlags), "10.0.0.1:7946", "10.0.0.1:0", "", ""},
		{"off loopback, key file", SecurityConfig{ClusterKeyFile: "keys", ClusterTLSCA: pki.ca, ClusterTLSCert: pki.node, ClusterTLSKey: pki.nodeKey}, "0.0.0.0:7946", "[::]:0", "", ""},
		{"off loopback, nothing", SecurityConfig{}, "10.0.0.1:7946", "10.0.0.1:0", "not on loopback", ""},
		{"off loopback, --insecure", SecurityConfig{Insecure: true}, "10.0.0.1:7946", "10.0.0.1:0", "", "level=ERROR msg=\"INSECURE CLUSTER"},
		{"off loopback, key and --insecure", SecurityConfig{Insecure: true, ClusterKey: key}, "10.0.0.1:7946", "10.0.0.1:0", "", "missing=\"--cluster-tls-ca"},
		{"--insecure, secured", SecurityConfig{Insecure: true, ClusterKey: key, ClusterTLSCA: pki.ca, ClusterTLSCert: pki.node, ClusterTLSKey: pki.nodeKey}, "10.0.0.1:7946", "10.0.0.1:0", "", "--insecure has no effect"},
		{"two of three TLS files", SecurityConfig{ClusterTLSCA: pki.ca, ClusterTLSCert: pki.node}, "127.0.0.1:0", "127.0.0.1:0", "go together", ""},
		{"key and key file", SecurityConfig{ClusterKey: key, ClusterKeyFile: "f"}, "127.0.0.1:0", "127.0.0.1:0", "not both", ""},
		{"short key", SecurityConfig{ClusterKey: "AAECAw=="}, "127.0.0.1:0", "127.0.0.1:0", "16, 24 or 32", ""},
		{"client CA without a certificate", SecurityConfig{TLSClientCA: pki.ca}, "127.0.0.1:0", "127.0.0.1:0", "--tls-client-ca needs", ""},
		{"client certificate as the node's", SecurityConfig{ClusterTLSCA: pki.ca, ClusterTLSCert: pki.client, ClusterTLSKey: pki.clientKey}, "127.0.0.1:0", "127.0.0.1:0", "not a node certificate", ""},
		{"bad origin", SecurityConfig{AllowedOrigins: []string{"https://a.example/path"}}, "127.0.0.1:0", "127.0.0.1:0", "--allowed-origins", ""},
	} {
		var logs logLines
		_, err := setupSecurity(c.cfg, c.gossip, c.remote, "127.0.0.1:0", slog.New(slog.NewTextHandler(&logs, nil)))
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.err)
		case c.log != "" && !strings.Contains(logs.String(), c.log):
			t.Errorf("%s: the log does not say %q:\n%s", c.name, c.log, logs.String())
		case c.log == "" && strings.Contains(logs.String(), "level=ERROR"):
			t.Errorf("%s: an ERROR was logged:\n%s", c.name, logs.String())
		}
	}
}

// logLines collects log output.
type logLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
