package client

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// connectOnly answers a session's connect and then reads until it ends;
// it records the client certificate the session's TLS connection showed.
type connectOnly struct{ peerCert atomic.Value }

func (g *connectOnly) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		g.peerCert.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
	}
	answerConnect(w, r, `{"id":0,"result":{"session_id":"s","user":{"id":"alice"}}}`)
}

// answerConnect accepts a session, answers its connect with reply and
// reads until the client goes.
func answerConnect(w http.ResponseWriter, r *http.Request, reply string) {
	conn := acceptSession(w, r, reply)
	if conn == nil {
		return
	}
	defer conn.CloseNow()
	for {
		if _, _, err := conn.Read(r.Context()); err != nil {
			return
		}
	}
}

// acceptSession accepts a session and answers its connect with reply; nil
// when either fails.
func acceptSession(w http.ResponseWriter, r *http.Request, reply string) *websocket.Conn {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"switchboard.v1.json"}})
	if err != nil {
		return nil
	}
	if _, _, err := conn.Read(r.Context()); err != nil || conn.Write(r.Context(), websocket.MessageText, []byte(reply)) != nil {
		conn.CloseNow()
		return nil
	}
	return conn
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestUpgradeOverTLSWithClientCertificate: a wss:// gateway that demands
// a client certificate takes the session the client dials with its own
// upgrade (not http.Transport's), over TLSConfig's CA and certificate.
func TestUpgradeOverTLSWithClientCertificate(t *testing.T) {
	cert, pool := clientCertificate(t, "viewer-7")
	g := &connectOnly{}
	srv := httptest.NewUnstartedServer(g)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	cfg := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}
	if _, ok := dialClient(HTTPClient(cfg)).Transport.(*upgrader); !ok {
		t.Fatal("a TLS client does not dial with its own upgrade")
	}

	wss := "wss" + strings.TrimPrefix(srv.URL, "https") + "/v1/ws"
	c, err := Dial(testCtx(t), Options{URLs: []string{wss}, UserID: "alice", TLSConfig: cfg, NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cn, _ := g.peerCert.Load().(string); cn != "viewer-7" {
		t.Fatalf("the gateway saw client certificate %q", cn)
	}
	if s := c.Session(); s.SessionID != "s" || s.User.ID != "alice" {
		t.Fatalf("session %+v", s)
	}

	// Without the certificate the gateway refuses the handshake.
	_, err = Dial(testCtx(t), Options{URLs: []string{wss}, UserID: "alice", TLSConfig: &tls.Config{RootCAs: roots}, NoReconnect: true})
	if err == nil {
		t.Fatal("dialled without the client certificate the gateway demands")
	}
}

// clientCertificate makes a self-signed client certificate and a pool
// that trusts it.
func clientCertificate(t *testing.T, cn string) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestUpgradeThroughAProxy: when the transport's Proxy names a proxy for
// the gateway, the upgrade goes through http.Transport, which speaks to
// proxies. The "proxy" here is the gateway itself (it takes the request
// in absolute form); the URL's own address has nothing listening.
func TestUpgradeThroughAProxy(t *testing.T) {
	srv := httptest.NewServer(&connectOnly{})
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ws://" + ln.Addr().String() + "/v1/ws"
	ln.Close()
	var asked atomic.Int32
	proxy, _ := url.Parse(srv.URL)
	hc := &http.Client{Transport: &http.Transport{Proxy: func(*http.Request) (*url.URL, error) { asked.Add(1); return proxy, nil }}}
	c, err := Dial(testCtx(t), Options{URLs: []string{dead}, UserID: "alice", HTTPClient: hc, NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if asked.Load() == 0 {
		t.Fatal("the proxy was never asked")
	}
}

// TestUpgradeRefused: a gateway that answers the upgrade with an HTTP
// error fails the dial with its status.
func TestUpgradeRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
	}))
	defer srv.Close()
	_, err := Dial(testCtx(t), Options{URLs: []string{"ws" + strings.TrimPrefix(srv.URL, "http")}, UserID: "alice", NoReconnect: true})
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("dial: %v, want the 403", err)
	}
}

// rawGateway serves one connection with handshake, which gets the
// upgrade request's Sec-WebSocket-Key and the connection.
func rawGateway(t *testing.T, handshake func(key string, conn net.Conn)) string {
	return requestGateway(t, func(req *http.Request, _ *bufio.Reader, conn net.Conn) {
		handshake(req.Header.Get("Sec-WebSocket-Key"), conn)
	})
}

// requestGateway accepts one connection, reads its request and hands
// it, the reader past it and the connection to serve.
func requestGateway(t *testing.T, serve func(req *http.Request, br *bufio.Reader, conn net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		serve(req, br, conn)
	}()
	return "ws://" + ln.Addr().String() + "/v1/ws"
}

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// TestUpgradeKeepsBytesAfterTheHeader: a frame that arrives in the same
// read as the 101 response's header is the WebSocket's first.
func TestUpgradeKeepsBytesAfterTheHeader(t *testing.T) {
	reply := `{"id":0,"result":{"session_id":"early","user":{"id":"alice"}}}`
	u := rawGateway(t, func(key string, conn net.Conn) {
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(key) + "\r\nSec-WebSocket-Protocol: switchboard.v1.json\r\n\r\n"
		frame := append([]byte{0x81, byte(len(reply))}, reply...)
		if _, err := conn.Write(append([]byte(resp), frame...)); err != nil {
			return
		}
		var b [512]byte // read until the client goes
		for {
			if _, err := conn.Read(b[:]); err != nil {
				return
			}
		}
	})
	c, err := Dial(testCtx(t), Options{URLs: []string{u}, UserID: "alice", NoReconnect: true, CloseTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if id := c.Session().SessionID; id != "early" {
		t.Fatalf("session %q", id)
	}
}

// TestUpgradeHeaderIsBounded: an upgrade response whose header never
// ends fails the dial at the transport's MaxResponseHeaderBytes.
func TestUpgradeHeaderIsBounded(t *testing.T) {
	u := rawGateway(t, func(key string, conn net.Conn) {
		_, _ = conn.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nX-Pad: " + strings.Repeat("a", 4096) + "\r\n\r\n"))
	})
	hc := &http.Client{Transport: &http.Transport{MaxResponseHeaderBytes: 1024}}
	_, err := Dial(testCtx(t), Options{URLs: []string{u}, UserID: "alice", HTTPClient: hc, NoReconnect: true})
	if err == nil || !strings.Contains(err.Error(), "over 1024 bytes") {
		t.Fatalf("dial: %v, want the header bound", err)
	}
}

// TestUpgradeBoundedByTheContext: a gateway that takes the connection
// and never answers the upgrade fails the dial when its context ends.
func TestUpgradeBoundedByTheContext(t *testing.T) {
	u := rawGateway(t, func(key string, conn net.Conn) {
		var b [512]byte // read until the client goes
		for {
			if _, err := conn.Read(b[:]); err != nil {
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, Options{URLs: []string{u}, UserID: "alice", NoReconnect: true})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial: %v, want the context's deadline", err)
	}
}
