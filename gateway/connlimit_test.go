package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// acceptedConns serves l's Accept on a goroutine: the connections it
// returns, in order.
func acceptedConns(t *testing.T, l net.Listener) <-chan net.Conn {
	t.Helper()
	out := make(chan net.Conn, 16)
	go func() {
		defer close(out)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			out <- c
		}
	}()
	t.Cleanup(func() { l.Close() })
	return out
}

func nextAccepted(t *testing.T, ch <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-ch:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted within 10 s")
		return nil
	}
}

func dialLimit(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func newLimit(t *testing.T, max int, answer bool) *ConnLimit {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return LimitConnections(ln, max, answer, nil)
}

func TestConnLimitRefusesPastTheLimitWith503(t *testing.T) {
	l := newLimit(t, 2, true)
	accepted := acceptedConns(t, l)
	dialLimit(t, l)
	dialLimit(t, l)
	first, _ := nextAccepted(t, accepted), nextAccepted(t, accepted)

	// The third is answered once it has sent its request, and closed;
	// the two open ones are untouched.
	over := dialLimit(t, l)
	if _, err := io.WriteString(over, "GET /v1/channels HTTP/1.1\r\nHost: node\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	if err != nil {
		t.Fatalf("the refused connection's answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
		resp.Header.Get("Content-Type") != "application/json" || !resp.Close {
		t.Fatalf("refusal: %d %v", resp.StatusCode, resp.Header)
	}
	var eb protocol.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil || eb.Error.Code != protocol.CodeUnavailable || eb.Error.RetryAfterMS != 1000 {
		t.Fatalf("refusal body %q: %v", body, err)
	}
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Fatal("the refused connection is still open after its answer")
	}
	if l.Open() != 2 || l.Refused() != 1 || l.Max() != 2 {
		t.Fatalf("open %d refused %d max %d, want 2 1 2", l.Open(), l.Refused(), l.Max())
	}
	// One that says nothing is closed without an answer, within
	// refuseWait.
	silent := dialLimit(t, l)
	start := time.Now()
	if n, err := silent.Read(make([]byte, 64)); n != 0 || err == nil || time.Since(start) > refuseWait+5*time.Second {
		t.Fatalf("silent refused connection: read %d, %v after %v", n, err, time.Since(start))
	}
	if l.Refused() != 2 {
		t.Fatalf("refused %d, want 2", l.Refused())
	}

	// A connection closed (twice: counted once) makes room for one more.
	first.Close()
	first.Close()
	if l.Open() != 1 {
		t.Fatalf("open %d after a close, want 1", l.Open())
	}
	c := dialLimit(t, l)
	srv := nextAccepted(t, accepted)
	if _, err := srv.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hi" {
		t.Fatalf("the connection after the room was made: %q %v", got, err)
	}
	if l.Open() != 2 || l.Refused() != 2 {
		t.Fatalf("open %d refused %d, want 2 2", l.Open(), l.Refused())
	}
}

// On a TLS listener a refused connection is closed without a word: a
// plaintext answer would be garbage to a TLS client.
func TestConnLimitClosesSilentlyWithoutAnswer(t *testing.T) {
	l := newLimit(t, 1, false)
	accepted := acceptedConns(t, l)
	dialLimit(t, l)
	nextAccepted(t, accepted)
	over := dialLimit(t, l)
	n, err := over.Read(make([]byte, 64))
	if n != 0 || err == nil {
		t.Fatalf("refused TLS-side connection read %d bytes, err %v; want none and the close", n, err)
	}
	if l.Refused() != 1 || l.Open() != 1 {
		t.Fatalf("open %d refused %d, want 1 1", l.Open(), l.Refused())
	}
}

// At the limit, the HTTP connection idle longest is closed to make room;
// one in the middle of a request is not.
func TestConnLimitEvictsTheLongestIdle(t *testing.T) {
	l := newLimit(t, 3, true)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ConnState: l.HTTPState}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	request := func(c net.Conn) {
		t.Helper()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	older, newer, busy := dialLimit(t, l), dialLimit(t, l), dialLimit(t, l)
	idle := func(n int) func() bool {
		return func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.idle.Len() == n
		}
	}
	// The server notes a connection idle after the client has read its
	// response: older must be noted before newer's request, or the two
	// may be noted in either order.
	request(older)
	waitFor(t, 10*time.Second, "older noted idle", idle(1))
	request(newer)
	// busy is in the middle of its request head: active, not idle.
	if _, err := io.WriteString(busy, "GET / HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "two idle connections noted", idle(2))

	c := dialLimit(t, l)
	request(c)
	if n, err := older.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("the connection idle longest: read %d, %v; want closed", n, err)
	}
	request(newer) // still open
	if _, err := io.WriteString(busy, "Host: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(busy), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the connection mid-request: %v %v", resp, err)
	}
	if l.Evicted() != 1 || l.Refused() != 0 || l.Open() != 3 {
		t.Fatalf("evicted %d refused %d open %d, want 1 0 3", l.Evicted(), l.Refused(), l.Open())
	}
}
