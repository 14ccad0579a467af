package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/switchboard-chat/switchboard/gateway"
)

// rawConn is a bare WebSocket to a node, for tests of the wire itself.
type rawConn struct {
	t    *testing.T
	conn *websocket.Conn
	buf  [][]byte // frames read but not yet consumed
	// wait bounds each read (0: 5 s).
	wait time.Duration
}

func rawDial(t *testing.T, n *Node) *rawConn {
	t.Helper()
	return rawDialAddr(t, n.Addr())
}

// rawDialAddr is rawDial to a node's HTTP address (a node process of a
// testCluster).
func rawDialAddr(t *testing.T, addr string) *rawConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws", &websocket.DialOptions{Subprotocols: []string{"switchboard.v1.json"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.SetReadLimit(16 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return &rawConn{t: t, conn: conn}
}

func (r *rawConn) write(s string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.conn.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame (splitting packed messages).
func (r *rawConn) next() map[string]any {
	r.t.Helper()
	f := r.nextRaw()
	var m map[string]any
	if err := json.Unmarshal(f, &m); err != nil {
		r.t.Fatalf("server sent invalid JSON %q: %v", f, err)
	}
	return m
}

// nextRaw returns the next frame as sent.
func (r *rawConn) nextRaw() []byte {
	r.t.Helper()
	wait := r.wait
	if wait == 0 {
		wait = 5 * time.Second
	}
	for len(r.buf) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		_, msg, err := r.conn.Read(ctx)
		cancel()
		if err != nil {
			r.t.Fatalf("read: %v", err)
		}
		for _, f := range bytes.Split(msg, []byte("\n")) {
			if len(bytes.TrimSpace(f)) > 0 {
				r.buf = append(r.buf, f)
			}
		}
	}
	f := r.buf[0]
	r.buf = r.buf[1:]
	return f
}

// reply returns the next reply frame, skipping events.
func (r *rawConn) reply() map[string]any {
	r.t.Helper()
	for {
		m := r.next()
		if _, isEvent := m["event"]; !isEvent {
			return m
		}
	}
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r *rawConn) connect(user string) {
	r.t.Helper()
	r.write(`{"id":1,"op":"connect","args":{"user_id":"` + user + `"}}`)
	if m := r.reply(); m["result"] == nil {
		r.t.Fatalf("connect: %v", m)
	}
}

func TestMalformedFramesGetCodedErrors(t *testing.T) {
	n := testNode(t)
	r := rawDial(t, n)

	r.write(`{"id":1,"op":"channel.get","args":{"channel":"x"}}`)
	if m := r.reply(); errCode(m) != "unauthenticated" || m["id"] != 1.0 {
		t.Fatalf("before connect: %v", m)
	}
	r.connect("alice")

	cases := []struct {
		frame, code string
		id          any
	}{
		{`{"id":2,"op":"no.such.op","args":{}}`, "bad_request", 2.0},
		{`{"id":3,"op":42}`, "bad_request", 3.0},
		{`{"id":4,"op":"channel.get","args":[1,2]}`, "bad_request", 4.0},
		{`{"id":5,"op":"channel.get","args":{"channel":7}}`, "bad_request", 5.0},
		{`{"id":"six","op":"channel.get","args":{"channel":"nope"}}`, "not_found", "six"},
		{`{"id":7,"op":"message.send","args":{"channel":"nope","client_id":"c","text":"x"}}`, "not_found", 7.0},
		{`{"id":8,"op":"channel.create","args":{"type":"weird"}}`, "bad_request", 8.0},
		{`{"id":9,"op":"channel.create","args":{"id":"has space","type":"standard"}}`, "bad_request", 9.0},
		{`{"id":10,"op":"messages.history","args":{"channel":"` + strings.Repeat("x", 300) + `"}}`, "too_long", 10.0},
		{`{"id":11,"op":"connect","args":{"user_id":"alice"}}`, "invalid_state", 11.0},
	}
	for _, c := range cases {
		r.write(c.frame)
		m := r.reply()
		if errCode(m) != c.code || m["id"] != c.id {
			t.Errorf("%s: got %v, want code %s id %v", c.frame, m, c.code, c.id)
		}
	}
	// Not JSON at all, and JSON without an id: an error frame without id.
	r.write(`{not json`)
	if m := r.reply(); errCode(m) != "bad_request" || m["id"] != nil {
		t.Fatalf("garbage: %v", m)
	}
	// The connection still works.
	r.write(`{"id":12,"op":"me","args":{}}`)
	if m := r.reply(); m["result"] == nil {
		t.Fatalf("me after errors: %v", m)
	}
}

func TestPackedFramesAndCoalescedReplies(t *testing.T) {
	n := testNode(t)
	r := rawDial(t, n)
	r.connect("alice")
	r.write(`{"id":2,"op":"channel.create","args":{"id":"room","type":"standard"}}`)
	if m := r.reply(); m["result"] == nil {
		t.Fatalf("create: %v", m)
	}
	// Ten sends in one WebSocket message, newline-delimited.
	var b strings.Builder
	for i := range 10 {
		b.WriteString(`{"id":` + itoa(100+i) + `,"op":"message.send","args":{"channel":"room","client_id":"c` + itoa(i) + `","text":"m` + itoa(i) + `"}}` + "\n")
	}
	r.write(b.String())
	segs := map[float64]bool{}
	for range 10 {
		m := r.reply()
		res, ok := m["result"].(map[string]any)
		if !ok {
			t.Fatalf("send reply: %v", m)
		}
		segs[res["message"].(map[string]any)["segment"].(float64)] = true
	}
	for i := 1; i <= 10; i++ {
		if !segs[float64(i)] {
			t.Fatalf("segments %v: missing %d", segs, i)
		}
	}
}

func TestOversizeFrameClosesWithReason(t *testing.T) {
	n := testNode(t, func(c *Config) { c.Limits.MaxFrameBytes = 4096 })
	r := rawDial(t, n)
	r.connect("alice")
	big := `{"id":2,"op":"me","args":{"pad":"` + strings.Repeat("x", 8000) + `"}}`
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.conn.Write(ctx, websocket.MessageText, []byte(big))
	_, _, err := r.conn.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusMessageTooBig {
		t.Fatalf("oversize: got %v, want close 1009", err)
	}
}

func TestSlowConsumerIsDisconnected(t *testing.T) {
	var mu sync.Mutex
	reasons := map[string]int{}
	n := testNode(t, func(c *Config) {
		c.Gateway.QueueFrames = 8
		c.Gateway.QueueBytes = 16 << 10
		c.Gateway.WriteTimeout = 500 * time.Millisecond
		c.Gateway.Metrics = &gateway.Metrics{Disconnect: func(r string) {
			mu.Lock()
			reasons[r]++
			mu.Unlock()
		}}
	})
	ctx := ctxT(t)
	slow := rawDial(t, n)
	slow.connect("slow")
	slow.write(`{"id":2,"op":"channel.create","args":{"id":"flood","type":"standard"}}`)
	if m := slow.reply(); m["result"] == nil {
		t.Fatalf("create: %v", m)
	}
	// slow stops reading. A sender floods the channel with large messages
	// until the server gives up on slow.
	fast := dial(t, n, "fast")
	go func() {
		for range fast.Events() { // fast keeps up
		}
	}()
	if _, err := fast.Join(ctx, "flood"); err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("y", 3000)
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		if _, err := fast.Send(ctx, sendArgs("flood", text)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if n.gw.Sessions() == 1 {
			break // slow is gone
		}
		if time.Now().After(deadline) {
			t.Fatalf("slow consumer still connected after %d messages", i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if reasons["slow_consumer"] != 1 {
		t.Fatalf("disconnect reasons %v, want one slow_consumer", reasons)
	}
}

func itoa(i int) string { return strconvItoa(i) }

// TestFrameSentWithTheUpgradeIsRead: a client that sends its first frame in
// the same packet as its upgrade request (bytes the HTTP server has
// already buffered when the connection is handed over) is answered,
// whether the frame fits the session's small read buffer or not.
func TestFrameSentWithTheUpgradeIsRead(t *testing.T) {
	for _, pad := range []int{0, 3000} {
		t.Run(itoa(pad), func(t *testing.T) { frameWithUpgrade(t, pad) })
	}
}

func frameWithUpgrade(t *testing.T, pad int) {
	n := testNode(t)
	conn, err := net.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	frame := maskedFrame([]byte(`{"id":1,"op":"connect","args":{"user_id":"early"}}` + strings.Repeat(" ", pad)))
	if _, err := conn.Write(append([]byte(upgradeRequest(n.Addr())), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	body := readServerMessage(t, br)
	var reply struct {
		ID     int             `json:"id"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(body), &reply); err != nil || reply.ID != 1 || !strings.Contains(string(reply.Result), `"early"`) {
		t.Fatalf("reply %s: %v", body, err)
	}
}
