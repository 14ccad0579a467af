package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/cluster/workers"
)

// upgradeServer serves, on a real socket through UpgradeListener, an
// echoing WebSocket at /v1/ws (counting the upgrades that took the fast
// path) and a plain GET /api; it returns the address.
func upgradeServer(t *testing.T, headerTimeout time.Duration) (addr string, fast *atomic.Int64) {
	t.Helper()
	fast = new(atomic.Int64)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(*upgradeWriter); ok {
			fast.Add(1)
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			return
		}
		go func() {
			defer c.CloseNow()
			for {
				typ, b, err := c.Read(context.Background())
				if err != nil {
					return
				}
				if err := c.Write(context.Background(), typ, b); err != nil {
					return
				}
			}
		}()
	})
	mux.HandleFunc("GET /api", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "api "+r.URL.Query().Get("n"))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: headerTimeout}
	pool := workers.New(4, 1)
	go func() { _ = srv.Serve(UpgradeListener(ln, "/v1/ws", mux, headerTimeout, pool)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		pool.Close()
	})
	return ln.Addr().String(), fast
}

// TestUpgradeListenerFastPath: a WebSocket upgrade is served without the
// http.Server, and the connection carries messages both ways; a frame
// the client sends in the same packet as its head is not lost.
func TestUpgradeListenerFastPath(t *testing.T) {
	t.Parallel()
	addr, fast := upgradeServer(t, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws?x=1", &websocket.DialOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			t.Fatal(err)
		}
		if c.Subprotocol() != Subprotocol {
			t.Fatalf("subprotocol %q", c.Subprotocol())
		}
		msg := strings.Repeat("m", 100+i*1000)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, b, err := c.Read(ctx); err != nil || string(b) != msg {
			t.Fatalf("echo %d bytes, %v", len(b), err)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
	if fast.Load() != 3 {
		t.Fatalf("%d of 3 upgrades took the fast path", fast.Load())
	}

	// The head and a masked text frame ("hi") in one write.
	conn, br := rawDial(t, addr)
	head := "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	frame := []byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2}
	if _, err := conn.Write(append([]byte(head), frame...)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-Websocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("upgrade: %v %+v", err, resp)
	}
	echo := make([]byte, 4)
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != "\x81\x02hi" {
		t.Fatalf("echo %q, %v", echo, err)
	}
	if fast.Load() != 4 {
		t.Fatalf("the raw upgrade did not take the fast path")
	}

	// A refusal on the fast path (no key: a 400) is a whole
	// answer, and the connection ends.
	conn, br = rawDial(t, addr)
	if _, err := io.WriteString(conn, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !resp.Close || !strings.Contains(string(b), "Sec-WebSocket-Key") {
		t.Fatalf("refusal: %d close=%v %q", resp.StatusCode, resp.Close, b)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after a refusal: %v, want EOF", err)
	}
}

func rawDial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn, bufio.NewReader(conn)
}

// TestUpgradeListenerHandsOver: every other request reaches the server as
// before — keep-alive requests on one connection, a GET of /v1/ws that is
// not an upgrade (a 426), a request sent a byte at
// a time, an oversized head (431) — and none took the fast path.
func TestUpgradeListenerHandsOver(t *testing.T) {
	t.Parallel()
	addr, fast := upgradeServer(t, 5*time.Second)
	conn, br := rawDial(t, addr)
	for i := range 3 {
		if _, err := io.WriteString(conn, "GET /api?n="+string(rune('a'+i))+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "api "+string(rune('a'+i)) || resp.Close {
			t.Fatalf("request %d: %d %q close=%v", i, resp.StatusCode, b, resp.Close)
		}
	}

	resp, err := http.Get("http://" + addr + "/v1/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("GET /v1/ws without upgrade: %d", resp.StatusCode)
	}

	conn, br = rawDial(t, addr)
	for _, c := range []byte("GET /api?n=z HTTP/1.1\r\nHost: x\r\n\r\n") {
		if _, err := conn.Write([]byte{c}); err != nil {
			t.Fatal(err)
		}
	}
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("byte by byte: %v %+v", err, resp)
	}

	conn, br = rawDial(t, addr)
	big := "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-Big: " + strings.Repeat("b", 2<<20) + "\r\n\r\n"
	go func() { _, _ = io.WriteString(conn, big) }()
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversized head: %v %+v", err, resp)
	}
	// Upgrades the server refuses (no Host, two of them) are its to refuse.
	up := "GET /v1/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for _, head := range []string{up + "\r\n", up + "Host: a\r\nHost: b\r\n\r\n", up + "Host: a b\r\n\r\n"} {
		conn, br = rawDial(t, addr)
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%q: %v %+v, want the server's 400", head, err, resp)
		}
	}
	if fast.Load() != 0 {
		t.Fatalf("%d requests took the fast path", fast.Load())
	}
}

// TestUpgradeListenerSlowHead: a head that does not end within the
// header timeout is cut without an answer.
func TestUpgradeListenerSlowHead(t *testing.T) {
	t.Parallel()
	addr, _ := upgradeServer(t, 300*time.Millisecond)
	conn, _ := rawDial(t, addr)
	if _, err := io.WriteString(conn, "GET /v1/ws HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := conn.Read(make([]byte, 1))
	if n != 0 || err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("slow head: read %d, %v after %v", n, err, time.Since(start))
	}
}

// FuzzUpgradeHead: whatever a client sends, reading its head does not
// panic, and the fast path takes GET /v1/ws upgrades only.
func FuzzUpgradeHead(f *testing.F) {
	f.Add([]byte("GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"))
	f.Add([]byte("GET /v1/ws?a=b HTTP/1.1\nHost: x\nUpgrade: WebSocket, h2c\n\n"))
	f.Add([]byte("GET /v1/ws/../x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	l := &upgradeListener{prefix: "GET /v1/ws"}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !l.maybeUpgrade(b) {
			return
		}
		end := headEnd(b)
		if end == 0 {
			return
		}
		if r := l.upgradeRequest(b[:end]); r != nil && (r.Method != "GET" || r.URL.Path != "/v1/ws" || r.Host == "") {
			t.Fatalf("%q taken as %s %s host %q", b, r.Method, r.URL.Path, r.Host)
		}
	})
}
