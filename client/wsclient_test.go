package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestServerCloseCodeReachesTheClient: a gateway that ends a session
// with its own close code (4000, the slow-consumer cut) gets its close
// answered, and the client's dropped connection carries the code and
// reason; the client then reconnects.
func TestServerCloseCodeReachesTheClient(t *testing.T) {
	var sessions atomic.Int32
	closed := make(chan error, 1)
	u := sessionGateway(t, func(ctx context.Context, conn *websocket.Conn) {
		if sessions.Add(1) == 1 {
			closed <- conn.Close(4000, "slow consumer: outbound queue full")
			return
		}
		_, _, _ = conn.Read(ctx) // until the client goes
	})
	c, err := Dial(testCtx(t), Options{URLs: []string{u}, UserID: "alice", MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := <-closed; err != nil {
		t.Fatalf("the gateway's close handshake: %v (the client did not answer it)", err)
	}
	waitFor(t, "the client to reconnect", func() bool { return sessions.Load() >= 2 && c.Connected() })
	c.mu.Lock()
	err = c.lastError
	c.mu.Unlock()
	var ce CloseError
	if !errors.As(err, &ce) || ce.Code != 4000 || ce.Reason != "slow consumer: outbound queue full" {
		t.Fatalf("the connection ended with %v, want close 4000", err)
	}
}

// TestServerPingsAreAnswered: the gateway's pings get pongs while the
// session is idle.
func TestServerPingsAreAnswered(t *testing.T) {
	pinged := make(chan error, 1)
	u := sessionGateway(t, func(ctx context.Context, conn *websocket.Conn) {
		read := conn.CloseRead(ctx) // reads, so that pongs are seen
		var err error
		for range 3 {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = errors.Join(err, conn.Ping(pctx))
			cancel()
		}
		pinged <- err
		<-read.Done()
	})
	c, err := Dial(testCtx(t), Options{URLs: []string{u}, UserID: "alice", NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := <-pinged; err != nil {
		t.Fatalf("pings: %v", err)
	}
}

// roundTripper is a transport the client cannot take apart.
type roundTripper struct {
	t     http.RoundTripper
	trips atomic.Int32
}

func (r *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	r.trips.Add(1)
	return r.t.RoundTrip(req)
}

// TestCustomRoundTripper: an HTTP client with a transport of its own
// makes the upgrade itself; the session reads events and answers over
// the response's body.
func TestCustomRoundTripper(t *testing.T) {
	u := sessionGateway(t, func(ctx context.Context, conn *websocket.Conn) {
		if conn.Write(ctx, websocket.MessageText, []byte(`{"event":"message.new","channel":"c","seq":1,"data":{"text":"hi"}}`)) != nil {
			return
		}
		_, _, _ = conn.Read(ctx) // until the client goes
	})
	rt := &roundTripper{t: &http.Transport{}}
	hc := &http.Client{Transport: rt, Timeout: time.Minute}
	if dialClient(hc) != hc {
		t.Fatal("a custom transport is not used as it is")
	}
	c, err := Dial(testCtx(t), Options{URLs: []string{u}, UserID: "alice", HTTPClient: hc, NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-c.Events():
		if e.Seq != 1 || string(e.Data) != `{"text":"hi"}` {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	if rt.trips.Load() != 1 {
		t.Fatalf("%d round trips, want the upgrade", rt.trips.Load())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeAnswerIsChecked: a 101 that does not answer the client's
// key, or names another subprotocol, fails the dial.
func TestUpgradeAnswerIsChecked(t *testing.T) {
	for name, answer := range map[string]func(key string) string{
		"wrong accept": func(string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey("other") + "\r\n\r\n"
		},
		"other subprotocol": func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(key) + "\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
		},
		"no upgrade": func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acceptKey(key) + "\r\n\r\n"
		},
	} {
		t.Run(name, func(t *testing.T) {
			u := rawGateway(t, func(key string, conn net.Conn) {
				_, _ = conn.Write([]byte(answer(key)))
			})
			_, err := Dial(testCtx(t), Options{URLs: []string{u}, UserID: "alice", NoReconnect: true})
			if err == nil || !strings.Contains(err.Error(), "WebSocket upgrade") {
				t.Fatalf("dial: %v", err)
			}
		})
	}
}
