package security

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pki is a CA and certificates it signed, in memory.
type pki struct {
	ca                   PEMPair
	node, client, nodeEd PEMPair
}

func newPKI(t *testing.T) pki {
	t.Helper()
	now := time.Now()
	ca, err := NewCA(KeyECDSA, CALifetime, now)
	if err != nil {
		t.Fatal(err)
	}
	p := pki{ca: ca}
	if p.node, err = Issue(ca.Cert, ca.Key, KindNode, "node", []string{"127.0.0.1", "localhost"}, KeyECDSA, LeafLifetime, now); err != nil {
		t.Fatal(err)
	}
	if p.nodeEd, err = Issue(ca.Cert, ca.Key, KindNode, "node", []string{"127.0.0.1"}, KeyEd25519, LeafLifetime, now); err != nil {
		t.Fatal(err)
	}
	if p.client, err = Issue(ca.Cert, ca.Key, KindClient, "alice", nil, KeyECDSA, LeafLifetime, now); err != nil {
		t.Fatal(err)
	}
	return p
}

// files writes a certificate, its key and a CA into dir.
func writeFiles(t *testing.T, dir string, pair PEMPair, ca []byte) IdentityConfig {
	t.Helper()
	cfg := IdentityConfig{CertFile: filepath.Join(dir, "node.crt"), KeyFile: filepath.Join(dir, "node.key"), CAFile: filepath.Join(dir, "ca.crt"), Node: true, Name: "test"}
	for p, b := range map[string][]byte{cfg.CertFile: pair.Cert, cfg.KeyFile: pair.Key, cfg.CAFile: ca} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

func identity(t *testing.T, pair PEMPair, ca []byte) (*Identity, IdentityConfig) {
	t.Helper()
	cfg := writeFiles(t, t.TempDir(), pair, ca)
	id, err := LoadIdentity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return id, cfg
}

// serve accepts TLS connections with cfg until the test ends, completing
// each handshake (and reading a byte, so TLS 1.3 client-certificate
// failures reach the client).
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Write([]byte("k"))
				}
			})
		}
	})
	return ln.Addr().String()
}

// handshake dials addr with cfg and reads the server's byte.
func handshake(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

// TestMutualTLSRefusesStrangers: a node identity's server accepts a node
// certificate from its CA and refuses no certificate, a node certificate
// from another CA, and a client certificate from its own CA; its client
// refuses a server from another CA.
func TestMutualTLSRefusesStrangers(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	server, _ := identity(t, p.node, p.ca.Cert)
	addr := serve(t, server.ServerConfig("h2"))

	for name, pair := range map[string]PEMPair{"ecdsa": p.node, "ed25519": p.nodeEd} {
		peer, _ := identity(t, pair, p.ca.Cert)
		if _, err := handshake(addr, peer.ClientConfig("127.0.0.1")); err != nil {
			t.Fatalf("a node certificate (%s) of the CA was refused: %v", name, err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.ca.Cert)
	clientCert, err := tls.X509KeyPair(p.client.Cert, p.client.Key)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := tls.X509KeyPair(other.node.Cert, other.node.Key)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{
		"no certificate":            {RootCAs: pool, ServerName: "127.0.0.1"},
		"another CA's node":         {RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{foreign}},
		"a client certificate (CA)": {RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{clientCert}},
	} {
		if _, err := handshake(addr, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	// The other way: our node refuses a server from another CA, and one
	// whose certificate does not name the host dialled.
	strange, _ := identity(t, other.node, other.ca.Cert)
	strangeAddr := serve(t, strange.ServerConfig())
	if _, err := handshake(strangeAddr, server.ClientConfig("127.0.0.1")); err == nil {
		t.Error("a server with another CA's certificate was accepted")
	}
	if _, err := handshake(addr, server.ClientConfig("node.example.com")); err == nil {
		t.Error("a server certificate that does not name the host was accepted")
	}
}

// TestIdentityRejectsWrongFiles: a node identity needs a node certificate
// its CA signed, and a key that matches it.
func TestIdentityRejectsWrongFiles(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	for name, c := range map[string]struct {
		pair PEMPair
		ca   []byte
	}{
		"client certificate": {p.client, p.ca.Cert},
		"another CA":         {p.node, other.ca.Cert},
		"mismatched key":     {PEMPair{p.node.Cert, p.nodeEd.Key}, p.ca.Cert},
		"no CA in the file":  {p.node, []byte("not pem")},
	} {
		cfg := writeFiles(t, t.TempDir(), c.pair, c.ca)
		if _, err := LoadIdentity(cfg); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

// logBuffer collects log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestIdentityReloads: replaced files take effect at the next handshake;
// files that do not load leave the previous certificate in use and are
// reported once they fail twice; a replaced CA file changes which peers
// are accepted.
func TestIdentityReloads(t *testing.T) {
	p, next := newPKI(t), newPKI(t)
	var logs logBuffer
	cfg := writeFiles(t, t.TempDir(), p.node, p.ca.Cert)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	id, err := LoadIdentity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, id.ServerConfig())
	peer, _ := identity(t, p.node, p.ca.Cert)
	first, err := handshake(addr, peer.ClientConfig("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := id.Reload(); changed || err != nil {
		t.Fatalf("unchanged files reloaded: %v %v", changed, err)
	}

	// A certificate caught before its key (another key): not used, and
	// not reported until it fails a second time.
	renewed, err := Issue(p.ca.Cert, p.ca.Key, KindNode, "node", []string{"127.0.0.1"}, KeyECDSA, LeafLifetime, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.CertFile, renewed.Cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := id.Reload(); err == nil {
		t.Fatal("a certificate with the wrong key loaded")
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("reported at the first failure:\n%s", logs.String())
	}
	if _, err := id.Reload(); err == nil || strings.Count(logs.String(), "level=ERROR") != 1 {
		t.Fatalf("a second failure was not reported once (%v):\n%s", err, logs.String())
	}
	_, _ = id.Reload()
	if strings.Count(logs.String(), "level=ERROR") != 1 {
		t.Fatalf("a failure was reported twice:\n%s", logs.String())
	}
	if got, err := handshake(addr, peer.ClientConfig("127.0.0.1")); err != nil || !got.Equal(first) {
		t.Fatalf("the previous certificate is not in use: %v", err)
	}

	// The key follows: the renewed certificate is in use.
	if err := os.WriteFile(cfg.KeyFile, renewed.Key, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := id.Reload(); !changed || err != nil {
		t.Fatalf("renewed files: %v %v", changed, err)
	}
	if got, err := handshake(addr, peer.ClientConfig("127.0.0.1")); err != nil || got.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("the renewed certificate is not presented: %v", err)
	}

	// A new CA: a bundle of both first, then the new one alone with a node
	// certificate of its own.
	newPeer, _ := identity(t, next.node, append(append([]byte{}, next.ca.Cert...), p.ca.Cert...))
	if _, err := handshake(addr, newPeer.ClientConfig("127.0.0.1")); err == nil {
		t.Fatal("a peer of a CA not (yet) trusted was accepted")
	}
	if err := os.WriteFile(cfg.CAFile, append(append([]byte{}, p.ca.Cert...), next.ca.Cert...), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := id.Reload(); !changed || err != nil {
		t.Fatalf("CA bundle: %v %v", changed, err)
	}
	for name, pr := range map[string]*Identity{"old CA": peer, "new CA": newPeer} {
		if _, err := handshake(addr, pr.ClientConfig("127.0.0.1")); err != nil {
			t.Fatalf("%s refused under the bundle: %v", name, err)
		}
	}
	writeFiles(t, filepath.Dir(cfg.CertFile), next.node, next.ca.Cert)
	if changed, err := id.Reload(); !changed || err != nil {
		t.Fatalf("new CA: %v %v", changed, err)
	}
	if _, err := handshake(addr, peer.ClientConfig("127.0.0.1")); err == nil {
		t.Fatal("a peer of the removed CA was accepted")
	}
	if _, err := handshake(addr, newPeer.ClientConfig("127.0.0.1")); err != nil {
		t.Fatalf("a peer of the new CA was refused: %v", err)
	}
}

// TestIssueBounds: a certificate may not outlive its CA, a node
// certificate names a host, and the CA key must match the CA file.
func TestIssueBounds(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	now := time.Now()
	if _, err := Issue(p.ca.Cert, p.ca.Key, KindNode, "n", []string{"h"}, KeyECDSA, CALifetime+time.Hour, now); err == nil {
		t.Error("a certificate outliving its CA was issued")
	}
	if _, err := Issue(p.ca.Cert, p.ca.Key, KindNode, "n", nil, KeyECDSA, LeafLifetime, now); err == nil {
		t.Error("a node certificate without a host was issued")
	}
	if _, err := Issue(p.ca.Cert, other.ca.Key, KindClient, "c", nil, KeyECDSA, LeafLifetime, now); err == nil {
		t.Error("issued with a key that is not the CA's")
	}
	if _, err := NewCA("rsa", CALifetime, now); err == nil {
		t.Error("an unknown key type was accepted")
	}
	// A bundle of two CAs signs with the one whose key is given.
	bundle := append(append([]byte{}, other.ca.Cert...), p.ca.Cert...)
	pair, err := Issue(bundle, p.ca.Key, KindNode, "n", []string{"127.0.0.1"}, KeyECDSA, LeafLifetime, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(writeFiles(t, t.TempDir(), pair, p.ca.Cert)); err != nil {
		t.Fatalf("a certificate signed from a bundle: %v", err)
	}
}

func TestParseKeys(t *testing.T) {
	k16, k32 := "AAECAwQFBgcICQoLDA0ODw==", NewKey()
	keys, err := ParseKeys(" " + k32 + ",\n# the old key\n" + k16 + "\n")
	if err != nil || len(keys) != 2 || len(keys[0]) != 32 || len(keys[1]) != 16 {
		t.Fatalf("keys %v, err %v", keys, err)
	}
	for _, bad := range []string{"", " , ", "not base64!", "AAEC", k16 + "," + k16} {
		if _, err := ParseKeys(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	if KeyFingerprint(keys[0]) == KeyFingerprint(keys[1]) || len(KeyFingerprint(keys[0])) != 8 {
		t.Error("fingerprints")
	}
}

func TestOnLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7946": true, "127.0.0.2:0": true, "[::1]:7946": true, "localhost:0": true,
		"0.0.0.0:7946": false, "[::]:0": false, ":7946": false, "10.0.0.1:7946": false, "192.0.2.1": false,
	} {
		if got := OnLoopback(addr); got != want {
			t.Errorf("%s: %v, want %v", addr, got, want)
		}
	}
}

// TestRefusalsLogOncePerHostAndReason: repeated refusals of a host for
// one reason leave one line; another reason or host leaves another.
func TestRefusalsLogOncePerHostAndReason(t *testing.T) {
	var logs logBuffer
	r := NewRefusals(slog.New(slog.NewTextHandler(&logs, nil)), "refused")
	for port := range 5 {
		r.Refuse(net.JoinHostPort("10.0.0.1", strconv.Itoa(40000+port)), "no key")
	}
	r.Refuse("10.0.0.1:1", "wrong key")
	r.Refuse("10.0.0.2:1", "no key")
	if n := strings.Count(logs.String(), "level=WARN"); n != 3 || r.Count() != 7 {
		t.Fatalf("%d lines, %d counted:\n%s", n, r.Count(), logs.String())
	}
}
