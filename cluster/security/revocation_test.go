package security

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serialOf returns the serial of a PEM certificate.
func serialOf(t *testing.T, certPEM []byte) *big.Int { return parseCert(t, certPEM).SerialNumber }

// writeCRL writes a list of p's CA revoking serials to path.
func writeCRL(t *testing.T, p pki, path string, serials ...*big.Int) {
	t.Helper()
	crl, err := Revoke(p.ca.Cert, p.ca.Key, nil, serials, 30*24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, crl, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRevokedPeerIsRefusedAndCut: a node identity with a CRL file refuses
// a revoked node certificate at the handshake, on its server and its
// client side; when a reload revokes the certificate of a peer already
// connected through the transport's credentials, the connection is cut;
// other peers are untouched.
func TestRevokedPeerIsRefusedAndCut(t *testing.T) {
	p := newPKI(t)
	other, err := Issue(p.ca.Cert, p.ca.Key, KindNode, "node 2", []string{"127.0.0.1"}, KeyECDSA, LeafLifetime, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeFiles(t, t.TempDir(), p.node, p.ca.Cert)
	cfg.CRLFile = filepath.Join(filepath.Dir(cfg.CertFile), "ca.crl")
	writeCRL(t, p, cfg.CRLFile)
	server, err := LoadIdentity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := identity(t, p.node, p.ca.Cert)
	revoked, _ := identity(t, other, p.ca.Cert)

	// Two peers connect through the transport credentials' server side.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	creds := server.TransportCredentials(nil)
	accepted := make(chan error, 8)
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				conn, _, err := creds.ServerHandshake(raw)
				if err == nil {
					_, err = conn.Write([]byte("k"))
				}
				accepted <- err
			}()
		}
	}()
	dial := func(id *Identity) (net.Conn, error) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, err
		}
		tc := tls.Client(c, id.ClientConfig("127.0.0.1"))
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(tc, make([]byte, 1)); err != nil {
			tc.Close()
			return nil, err
		}
		return tc, nil
	}
	good, err := dial(peer)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	bad, err := dial(revoked)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	for range 2 {
		if err := <-accepted; err != nil {
			t.Fatal(err)
		}
	}

	// The CRL now names the second peer's certificate: the reload cuts
	// its connection, and it cannot come back.
	writeCRL(t, p, cfg.CRLFile, serialOf(t, other.Cert))
	if changed, err := server.Reload(); !changed || err != nil {
		t.Fatalf("reload: %v %v", changed, err)
	}
	_ = bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bad.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the revoked peer's connection is still up: %v", err)
	}
	_ = good.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := good.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the other peer's connection was cut too: %v", err)
	}
	if _, err := dial(revoked); err == nil {
		t.Fatal("the revoked certificate was accepted again")
	}
	if err := <-accepted; err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("the server's handshake with the revoked peer: %v", err)
	}
	if _, err := dial(peer); err != nil {
		t.Fatalf("a certificate the list does not name: %v", err)
	}

	// The client side refuses a revoked server too.
	addr := serve(t, revoked.ServerConfig())
	if _, err := handshake(addr, server.ClientConfig("127.0.0.1")); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("dialling a revoked server: %v", err)
	}
}

// TestRevocationListsMustBeTheCAs: a CRL file that another CA signed, or
// that is no list, does not load; a reload to one keeps the list in use.
func TestRevocationListsMustBeTheCAs(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	cfg := writeFiles(t, t.TempDir(), p.node, p.ca.Cert)
	cfg.CRLFile = filepath.Join(filepath.Dir(cfg.CertFile), "ca.crl")
	writeCRL(t, other, cfg.CRLFile)
	if _, err := LoadIdentity(cfg); err == nil || !strings.Contains(err.Error(), "not signed by a CA of the CA file") {
		t.Fatalf("a list of another CA: %v", err)
	}
	if err := os.WriteFile(cfg.CRLFile, []byte("not a list"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(cfg); err == nil {
		t.Fatal("a file that is no list loaded")
	}
	writeCRL(t, p, cfg.CRLFile, serialOf(t, p.nodeEd.Cert))
	id, err := LoadIdentity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeCRL(t, other, cfg.CRLFile)
	if changed, err := id.Reload(); changed || err == nil {
		t.Fatalf("a reload to another CA's list: %v %v", changed, err)
	}
	if id.cur.Load().revoked.check([]*x509.Certificate{parseCert(t, p.nodeEd.Cert)}) == nil {
		t.Fatal("the list in use was dropped")
	}
	noCA := IdentityConfig{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, CRLFile: cfg.CRLFile, Name: "test"}
	if _, err := LoadIdentity(noCA); err == nil {
		t.Fatal("a CRL file without a CA file loaded")
	}
}

// TestRevokeKeepsWhatWasRevoked: a new list keeps the previous one's
// entries, adds the new serials once, counts up, and refuses a previous
// list of another CA.
func TestRevokeKeepsWhatWasRevoked(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	now := time.Now()
	first, err := Revoke(p.ca.Cert, p.ca.Key, nil, []*big.Int{big.NewInt(7)}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Revoke(p.ca.Cert, p.ca.Key, first, []*big.Int{big.NewInt(7), big.NewInt(9)}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(second)
	l, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range l.RevokedCertificateEntries {
		got = append(got, e.SerialNumber.String())
	}
	if strings.Join(got, ",") != "7,9" || l.Number.Int64() != 2 || !l.NextUpdate.Equal(now.Add(time.Hour).UTC().Truncate(time.Second)) {
		t.Fatalf("entries %v, number %v, next update %v", got, l.Number, l.NextUpdate)
	}
	if _, err := Revoke(other.ca.Cert, other.ca.Key, second, nil, time.Hour, now); err == nil {
		t.Fatal("another CA extended this CA's list")
	}
}

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
