package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// keepAlive opens a connection to n, makes one HTTP request on it and
// leaves it open, idle, as a keep-alive client does.
func keepAlive(t *testing.T, n *Node) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", n.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET /healthz: %d, close %v; want 200 kept alive", resp.StatusCode, resp.Close)
	}
	_ = c.SetDeadline(time.Time{})
	return c
}

// TestConnectionLimitAndIdleHTTP: idle HTTP keep-alive connections can
// no longer hold --listen for ever. At --max-connections the connection
// idle longest between requests is closed to make room for a new one;
// idle ones are closed after --http-idle-timeout in any case (a
// WebSocket session idle as long is not); with nothing idle to close, a
// new connection — an API request or a WebSocket upgrade — is answered
// 503 `unavailable` and closed, and the node keeps serving what it holds.
func TestConnectionLimitAndIdleHTTP(t *testing.T) {
	const limit = 6
	idle := 3 * time.Second
	n := testNode(t, func(c *Config) { c.MaxConnections, c.HTTPIdleTimeout = limit, idle })
	alice := dial(t, n, "alice") // one connection
	start := time.Now()
	var held []net.Conn
	for range limit - 1 {
		held = append(held, keepAlive(t, n))
	}
	if got := n.conns.Open(); got != limit {
		t.Fatalf("open connections %d, want %d", got, limit)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	get := func() (int, protocol.ErrorBody) {
		t.Helper()
		resp, err := hc.Get("http://" + n.Addr() + "/v1/channels")
		if err != nil {
			t.Fatalf("a request at the limit: %v", err)
		}
		defer resp.Body.Close()
		var eb protocol.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Fatal("a 503 without Retry-After")
		}
		return resp.StatusCode, eb
	}
	closedByNode := func(what string, c net.Conn, within time.Duration) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(within))
		n, err := c.Read(make([]byte, 1))
		var ne net.Error
		if n != 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("%s: read %d, %v; want closed by the node", what, n, err)
		}
	}

	// At the limit, the keep-alive idle longest makes room.
	if code, eb := get(); code == http.StatusServiceUnavailable {
		t.Fatalf("a request at the limit with idle connections to close: 503 %+v", eb.Error)
	}
	closedByNode("the connection idle longest", held[0], 5*time.Second)
	if time.Since(start) >= idle {
		t.Fatalf("the idle connection was closed after %v: by the idle timeout, not to make room", time.Since(start))
	}
	if n.conns.Evicted() != 1 || n.conns.Refused() != 0 {
		t.Fatalf("evicted %d refused %d, want 1 0", n.conns.Evicted(), n.conns.Refused())
	}

	// The others are closed once idle for --http-idle-timeout, not before.
	for i, c := range held[1:] {
		closedByNode(fmt.Sprintf("idle connection %d", i+1), c, idle+10*time.Second)
	}
	if waited := time.Since(start); waited < idle {
		t.Fatalf("idle connections closed after %v, before --http-idle-timeout %v", waited, idle)
	}
	waitFor(t, 10*time.Second, "the closed connections to leave the count", func() bool { return n.conns.Open() == 1 })

	// Full of sessions, none of them idle HTTP: refused, with a code.
	var bobs []*client.Client
	for i := range limit - 1 {
		bobs = append(bobs, dial(t, n, fmt.Sprintf("bob%d", i)))
	}
	if code, eb := get(); code != http.StatusServiceUnavailable || eb.Error == nil || eb.Error.Code != protocol.CodeUnavailable {
		t.Fatalf("a request past the limit: %d %+v", code, eb.Error)
	}
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := client.Dial(dctx, client.Options{URLs: []string{"ws://" + n.Addr() + "/v1/ws"}, UserID: "carol", NoReconnect: true}); err == nil {
		c.Close()
		t.Fatal("a session opened past --max-connections")
	} else if !strings.Contains(err.Error(), "503") {
		t.Fatalf("a session past --max-connections: %v; want the 503", err)
	}
	if n.conns.Refused() != 2 {
		t.Fatalf("refused %d, want 2", n.conns.Refused())
	}
	// What the node holds still works, across the idle timeout too.
	if err := alice.Call(ctxT(t), protocol.OpChannelCreate, map[string]any{"id": "kept", "type": "standard"}, nil); err != nil {
		t.Fatalf("the first session at the limit: %v", err)
	}

	// Room again when sessions end.
	bobs[3].Close()
	bobs[4].Close()
	waitFor(t, 10*time.Second, "the ended sessions to leave the count", func() bool { return n.conns.Open() == limit-2 })
	carol := dial(t, n, "carol")
	if err := carol.Call(ctxT(t), protocol.OpChannelJoin, map[string]any{"channel": "kept"}, nil); err != nil {
		t.Fatalf("a session after the room was made: %v", err)
	}
	// alice, bob0-2, carol and the scrape's own connection.
	m := string(scrape(t, n))
	for _, want := range []string{"switchboard_connections_max 6\n", "switchboard_connections_open 6\n",
		"switchboard_connections_refused_total 2\n", "switchboard_connections_evicted_total 1\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestServeRefusesBadLimitFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-connections", "-1"}, "--max-connections -1"},
		{[]string{"--http-idle-timeout", "0s"}, "--http-idle-timeout 0s: must be positive"},
		{[]string{"--session-rate", "-1"}, "--session-rate -1: at least 0"},
		{[]string{"--session-burst", "0"}, "--session-burst 0: at least 1"},
	} {
		var stdout, stderr bytes.Buffer
		done := make(chan int, 1)
		go func() {
			done <- run(append([]string{"serve", "--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...), &stdout, &stderr)
		}()
		select {
		case code := <-done:
			if code == 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("%v: exit %d, stderr %q; want a failure naming %q", tc.args, code, stderr.String(), tc.want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%v: serve started", tc.args)
		}
	}
}

func TestConnectionBudget(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int
	}{
		{1 << 20, 1<<20 - 2048},
		{20000, 17952},
		{4096, 2048},
		{4095, 2047}, // too small to keep 2048: half
		{1024, 512},
		{1, 1},
	} {
		if got := connectionBudget(tc.nofile); got != tc.want {
			t.Errorf("connectionBudget(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
}

// guardedServer serves h behind guardBodies with a short stall, on a real
// loopback listener.
func guardedServer(t *testing.T, stall time.Duration, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: guardBodies(h, stall, 1<<10), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestGuardedBodies: a body that stops arriving, or trickles in below the
// minimum rate, fails its read and loses its connection; one the handler
// leaves unread is not waited for past the stall; a body read whole gives
// the connection back to the server, so a handler that then works for
// longer than the stall is not taken for an abandoned request.
func TestGuardedBodies(t *testing.T) {
	const stall = 400 * time.Millisecond
	readErr := make(chan error, 4)
	addr := guardedServer(t, stall, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/read":
			_, err := io.ReadAll(r.Body)
			readErr <- err
			if err == nil {
				select {
				case <-time.After(3 * stall): // work past the stall
				case <-r.Context().Done():
					readErr <- r.Context().Err()
					return
				}
				io.WriteString(w, "done")
			}
		default: // answers without reading
			http.Error(w, "no", http.StatusUnauthorized)
		}
	})
	open := func(head string) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		return c, bufio.NewReader(c)
	}
	closedWithin := func(what string, br *bufio.Reader, start time.Time, lo, hi time.Duration) {
		t.Helper()
		_, err := io.ReadAll(br)
		took := time.Since(start)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: the connection was not closed: %v", what, err)
		}
		if took < lo || took > hi {
			t.Fatalf("%s: closed after %v, want between %v and %v", what, took, lo, hi)
		}
	}

	// Stalled: half a body, then nothing.
	start := time.Now()
	_, br := open("POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	if err := <-readErr; err == nil {
		t.Fatal("a stalled body was read whole")
	}
	closedWithin("stalled body", br, start, stall, 10*time.Second)

	// Trickled: a byte every stall/4 never pauses for a stall, but after
	// the first stall it is far below 1 KiB/s.
	c, br := open("POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	start = time.Now()
	go func() {
		for range 1000 {
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(stall / 4)
		}
	}()
	if err := <-readErr; err == nil {
		t.Fatal("a trickled body was read whole")
	}
	closedWithin("trickled body", br, start, stall, stall+10*time.Second)

	// Unread by the handler, and stalled: answered, then closed after the stall.
	start = time.Now()
	_, br = open("POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n01234")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unread stalled body: %v %v", resp, err)
	}
	closedWithin("unread stalled body", br, start, stall, 10*time.Second)

	// Unread, and sent whole: answered at once, and the connection kept.
	_, br = open("POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n01234GET /refuse HTTP/1.1\r\nHost: x\r\n\r\n")
	for i := range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("request %d on a kept connection: %v %v", i, resp, err)
		}
		io.Copy(io.Discard, resp.Body)
	}

	// Read whole (1 MiB, quickly), then worked on past the stall.
	resp, err = http.Post("http://"+addr+"/read", "application/octet-stream", bytes.NewReader(make([]byte, 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := <-readErr; err != nil {
		t.Fatalf("a body sent whole: %v", err)
	}
	if string(body) != "done" {
		t.Fatalf("the handler working past the stall: %q (%v)", body, <-readErr)
	}
}
