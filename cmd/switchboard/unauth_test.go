package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// dialFrom opens a WebSocket to addr from the local address ip (any
// 127.0.0.0/8 address is this machine's), returning the HTTP status of a
// refused upgrade.
func dialFrom(t *testing.T, addr, ip string) (*websocket.Conn, int) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws", &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"switchboard.v1.json"}})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial from %s: %v", ip, err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn, http.StatusSwitchingProtocols
}

// TestIdleSocketsCannotLockOutClients: connections that never
// authenticate count against their own bound (and one per client
// address), not against --max-sessions, and are closed promptly at the
// auth timeout even when the client never answers the close.
func TestIdleSocketsCannotLockOutClients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node process")
	}
	t.Parallel()
	p := startProc(t, "--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", t.TempDir(), "--failure-detection", "fast",
		"--max-sessions", "3", "--max-unauthenticated", "4", "--max-unauthenticated-per-ip", "2", "--auth-timeout", "1s")
	var idle []*websocket.Conn
	opened := time.Now()
	for _, ip := range []string{"127.0.0.1", "127.0.0.1", "127.0.0.2"} {
		c, status := dialFrom(t, p.addr, ip)
		if c == nil {
			t.Fatalf("idle socket from %s refused: %d", ip, status)
		}
		idle = append(idle, c)
	}
	if _, status := dialFrom(t, p.addr, "127.0.0.1"); status != http.StatusServiceUnavailable {
		t.Fatalf("a third idle socket from one address: %d, want 503", status)
	}
	// Three idle sockets hold no session: three clients still connect.
	var clients []*websocket.Conn
	for i, ip := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		c, status := dialFrom(t, p.addr, ip)
		if c == nil {
			t.Fatalf("client %d refused (%d) with %d idle sockets open", i, status, len(idle))
		}
		r := &rawConn{t: t, conn: c}
		r.connect("user" + itoa(i))
		clients = append(clients, c)
	}
	// ... and the sessions are then full.
	if _, status := dialFrom(t, p.addr, "127.0.0.6"); status != http.StatusServiceUnavailable {
		t.Fatalf("a fourth session: %d, want 503", status)
	}
	// The idle sockets are closed at the auth timeout (1 s), well before
	// the close handshake's five seconds would have run out, though their
	// clients never read the close frame.
	for _, c := range idle {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _, err := c.Read(ctx)
		cancel()
		if err == nil {
			t.Fatal("an idle socket got a frame")
		}
		if websocket.CloseStatus(err) != 4003 && !strings.Contains(err.Error(), "EOF") {
			t.Logf("idle socket ended with %v", err)
		}
	}
	waitFor(t, 10*time.Second, "no unauthenticated connections", func() bool {
		_, body := httpDo(t, "GET", "http://"+p.addr+"/metrics", "")
		return strings.Contains(body, "\nswitchboard_sessions_unauthenticated 0\n")
	})
	if d := time.Since(opened); d > 5*time.Second {
		t.Errorf("idle sockets with a 1 s auth timeout took %v to close", d)
	}
	// A session that ends frees its place; the address whose idle
	// sockets were closed may connect again.
	clients[0].CloseNow()
	waitFor(t, 10*time.Second, "two sessions", func() bool {
		_, body := httpDo(t, "GET", "http://"+p.addr+"/metrics", "")
		return strings.Contains(body, "\nswitchboard_sessions_open 2\n")
	})
	if _, status := dialFrom(t, p.addr, "127.0.0.1"); status != http.StatusSwitchingProtocols {
		t.Errorf("a socket from an address whose idle sockets were closed: %d", status)
	}
}
