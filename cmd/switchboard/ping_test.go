package main

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/switchboard-chat/switchboard/gateway"
)

// disconnects is a node's disconnect reasons, counted.
type disconnects struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *disconnects) hook(c *Config) {
	d.n = map[string]int{}
	c.Gateway.Metrics = &gateway.Metrics{Disconnect: func(r string) {
		d.mu.Lock()
		d.n[r]++
		d.mu.Unlock()
	}}
}

func (d *disconnects) get(r string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[r]
}

// TestUnansweredPingsEndTheSession: a client that does not answer the
// server's pings (its WebSocket library answers only while it reads) is
// closed with 1008 once PingTimeout has passed.
func TestUnansweredPingsEndTheSession(t *testing.T) {
	var d disconnects
	n := testNode(t, d.hook, func(c *Config) {
		c.Gateway.PingInterval, c.Gateway.PingTimeout = 100*time.Millisecond, 200*time.Millisecond
	})
	r := rawDial(t, n)
	r.connect("alice")
	waitFor(t, 10*time.Second, "the ping timeout", func() bool { return d.get("ping_timeout") == 1 })
	if code := r.closeCode(); code != websocket.StatusPolicyViolation {
		t.Fatalf("closed with %d, want 1008", code)
	}
}

// TestAnsweredPingsKeepTheSession: a client that answers gets pinged
// every PingInterval and stays connected.
func TestAnsweredPingsKeepTheSession(t *testing.T) {
	var d disconnects
	n := testNode(t, d.hook, func(c *Config) {
		c.Gateway.PingInterval, c.Gateway.PingTimeout = 50*time.Millisecond, 100*time.Millisecond
	})
	var pings atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+n.Addr()+"/v1/ws", &websocket.DialOptions{
		OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	msgs := make(chan string, 16)
	go func() {
		defer close(msgs)
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				return
			}
			msgs <- string(b)
		}
	}()
	call := func(frame string) string {
		t.Helper()
		if err := conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatal("the connection ended")
			}
			return m
		case <-ctx.Done():
			t.Fatal("no reply")
		}
		return ""
	}
	call(`{"id":1,"op":"connect","args":{"user_id":"alice"}}`)
	waitFor(t, 10*time.Second, "five pings", func() bool { return pings.Load() >= 5 })
	if m := call(`{"id":2,"op":"me"}`); m[:len(`{"id":2,"result"`)] != `{"id":2,"result"` {
		t.Fatalf("me after pings: %s", m)
	}
	if got := d.get("ping_timeout"); got != 0 {
		t.Fatalf("%d ping timeouts of a client that answers", got)
	}
}
