package client

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/switchboard-chat/switchboard/protocol"
)

// fakeGateway answers connect and every request with {"server":name},
// and can be paused as a SIGSTOPped process is: its connections stay
// open, but it reads and writes nothing (not even pongs) until resumed.
type fakeGateway struct {
	name     string
	srv      *httptest.Server
	gate     gate
	connects atomic.Int32
	pings    atomic.Int32
	events   int // events sent right after connect
	handlers sync.WaitGroup
}

func newFakeGateway(t *testing.T, name string, events int) *fakeGateway {
	g := &fakeGateway{name: name, events: events}
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(g.serve))
	g.srv.Listener = &pausableListener{Listener: g.srv.Listener, gate: &g.gate}
	g.srv.Start()
	t.Cleanup(func() {
		g.gate.resume()
		g.srv.CloseClientConnections()
		g.srv.Close()
		g.handlers.Wait()
	})
	return g
}

func (g *fakeGateway) url() string { return "ws" + strings.TrimPrefix(g.srv.URL, "http") }

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	g.handlers.Add(1)
	defer g.handlers.Done()
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:   []string{"switchboard.v1.json"},
		OnPingReceived: func(context.Context, []byte) bool { g.pings.Add(1); return true },
	})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ctx := context.Background()
	for n := 0; ; n++ {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var req struct {
			ID uint64 `json:"id"`
		}
		if json.Unmarshal(msg, &req) != nil {
			return
		}
		reply := `{"id":` + string(mustJSON(req.ID)) + `,"result":{"server":"` + g.name + `"}}`
		if err := conn.Write(ctx, websocket.MessageText, []byte(reply)); err != nil {
			return
		}
		if n == 0 {
			g.connects.Add(1)
			for i := 1; i <= g.events; i++ {
				ev := `{"event":"message.new","channel":"c","seq":` + string(mustJSON(i)) + `,"data":{}}`
				if err := conn.Write(ctx, websocket.MessageText, []byte(ev)); err != nil {
					return
				}
			}
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// gate holds reads and writes while paused.
type gate struct {
	mu     sync.Mutex
	paused chan struct{} // nil: running
}

func (g *gate) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused == nil {
		g.paused = make(chan struct{})
	}
}

func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused != nil {
		close(g.paused)
		g.paused = nil
	}
}

func (g *gate) wait() {
	g.mu.Lock()
	ch := g.paused
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

type pausableListener struct {
	net.Listener
	gate *gate
}

func (l *pausableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &pausableConn{Conn: c, gate: l.gate}, nil
}

// pausableConn delivers what it read, and writes, only while its gate is
// open: bytes that arrive during a pause wait in it, as in a stopped
// process's socket.
type pausableConn struct {
	net.Conn
	gate *gate
}

func (c *pausableConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.gate.wait()
	return n, err
}

func (c *pausableConn) Write(p []byte) (int, error) {
	c.gate.wait()
	return c.Conn.Write(p)
}

func serverOf(t *testing.T, res json.RawMessage) string {
	t.Helper()
	var r struct {
		Server string `json:"server"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatalf("result %s: %v", res, err)
	}
	return r.Server
}

// TestStalledGatewayIsDropped: a gateway that stops answering with its
// connection open is dropped within the stall bound; an idempotent
// request outstanding on it is answered by the next URL, a request that
// is not safe to repeat fails with ErrDisconnected, and later requests
// go to the next gateway.
func TestStalledGatewayIsDropped(t *testing.T) {
	t.Parallel()
	a, b := newFakeGateway(t, "a", 0), newFakeGateway(t, "b", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const stall = 400 * time.Millisecond
	c, err := Dial(ctx, Options{URLs: []string{a.url(), b.url()}, UserID: "alice", StallTimeout: stall,
		RequestTimeout: 15 * time.Second, MaxRetry: 15 * time.Second, CloseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var res json.RawMessage
	if err := c.Call(ctx, protocol.OpChannelGet, protocol.ChannelRef{Channel: "c"}, &res); err != nil {
		t.Fatal(err)
	}
	if s := serverOf(t, res); s != "a" {
		t.Fatalf("answered by %q, want a", s)
	}

	a.gate.pause()
	start := time.Now()
	invite := make(chan error, 1)
	go func() {
		invite <- c.Call(ctx, protocol.OpMembersInvite, protocol.MembersArgs{Channel: "c", Users: []string{"bob"}}, nil)
	}()
	res = nil
	if err := c.Call(ctx, protocol.OpChannelGet, protocol.ChannelRef{Channel: "c"}, &res); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if s := serverOf(t, res); s != "b" {
		t.Fatalf("answered by %q after the stall, want b", s)
	}
	// The bound is 1¼ × stall plus a reconnect; RequestTimeout (15 s) is
	// what the request would have waited without the watchdog.
	if took > 10*stall {
		t.Fatalf("the stall took %s to get around (StallTimeout %s)", took, stall)
	}
	if err := <-invite; !errors.Is(err, ErrDisconnected) {
		t.Fatalf("members.invite on the stalled gateway: %v, want ErrDisconnected", err)
	}
	if b.connects.Load() != 1 || a.connects.Load() != 1 {
		t.Fatalf("connects: a %d, b %d", a.connects.Load(), b.connects.Load())
	}
}

// TestIdleConnectionIsKept: an idle connection to a live gateway is
// pinged, and its pongs keep it: after more silent quarters than the
// bound allows, it is still the first connection.
func TestIdleConnectionIsKept(t *testing.T) {
	t.Parallel()
	a := newFakeGateway(t, "a", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The bound leaves the fake gateway half of it to answer a ping: on a
	// machine busy with other tests (the race detector, node processes),
	// a tenth of a second is not always enough.
	c, err := Dial(ctx, Options{URLs: []string{a.url()}, UserID: "alice", StallTimeout: time.Second,
		CloseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A ping goes out every third quarter of silence: stallQuarters
	// pings span three times the bound.
	for a.pings.Load() < stallQuarters {
		if ctx.Err() != nil {
			t.Fatalf("%d pings in 20 s", a.pings.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := a.connects.Load(); n != 1 || !c.Connected() {
		t.Fatalf("%d connects (connected %v): a live idle connection was dropped", n, c.Connected())
	}
}

// TestSlowConsumerIsNotAStall: while the read loop waits for the
// application to take events from a full Events channel, it reads
// nothing (not even pongs); that silence is not the gateway's.
func TestSlowConsumerIsNotAStall(t *testing.T) {
	t.Parallel()
	a := newFakeGateway(t, "a", 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const stall = 100 * time.Millisecond
	c, err := Dial(ctx, Options{URLs: []string{a.url()}, UserID: "alice", StallTimeout: stall, EventBuffer: 1,
		CloseTimeout: 100 * time.Millisecond, RawEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Nothing to wait for: the test is that nothing happens for several
	// bounds while the application does not read.
	time.Sleep(4 * stall)
	for i := 1; i <= 4; i++ {
		select {
		case e := <-c.Events():
			if e.Seq != uint64(i) {
				t.Fatalf("event %d: %+v", i, e)
			}
		case <-ctx.Done():
			t.Fatal("events never came")
		}
	}
	if n := a.connects.Load(); n != 1 {
		t.Fatalf("%d connects: the connection was dropped while the application was not reading", n)
	}
}

// TestReconnectLeavesAGatewayThatNeverAnswers: after a drop, the next URL
// accepts the TCP connection but never answers the upgrade (as a paused
// process's kernel does); the attempt is given up after StallTimeout and
// the client goes on to the URL after it, well before RequestTimeout.
func TestReconnectLeavesAGatewayThatNeverAnswers(t *testing.T) {
	t.Parallel()
	a, b := newFakeGateway(t, "a", 0), newFakeGateway(t, "b", 0)
	mute := muteListener(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const stall = 300 * time.Millisecond
	c, err := Dial(ctx, Options{URLs: []string{a.url(), "ws://" + mute + "/v1/ws", b.url()}, UserID: "alice",
		StallTimeout: stall, RequestTimeout: 15 * time.Second, MaxRetry: 15 * time.Second, CloseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Drop()
	start := time.Now()
	var res json.RawMessage
	if err := c.Call(ctx, protocol.OpChannelGet, protocol.ChannelRef{Channel: "c"}, &res); err != nil {
		t.Fatal(err)
	}
	if s := serverOf(t, res); s != "b" {
		t.Fatalf("answered by %q, want b", s)
	}
	if took := time.Since(start); took > 10*stall {
		t.Fatalf("reaching b took %s (StallTimeout %s, RequestTimeout 15s)", took, stall)
	}
}

// muteListener accepts TCP connections and never reads or writes; it
// returns its address.
func muteListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range conns {
			conn.Close()
		}
	})
	return ln.Addr().String()
}

// TestOneGoroutinePerConnection: a connection costs its read loop and
// nothing else; one sweeper watches every connection of a StallTimeout
// and stops with the last of them.
func TestOneGoroutinePerConnection(t *testing.T) {
	a := newFakeGateway(t, "a", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 10
	const stall = 1300 * time.Millisecond // no other test's
	before := settledClientGoroutines(t)
	var clients []*Client
	t.Cleanup(func() {
		for _, c := range clients {
			c.Close()
		}
	})
	for range n {
		c, err := Dial(ctx, Options{URLs: []string{a.url()}, UserID: "alice", StallTimeout: stall, CloseTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	// The clients' goroutines: a read loop each and one sweeper.
	if got := clientGoroutines() - before; got != n+1 {
		t.Fatalf("%d connections run %d more goroutines of the client package, want %d", n, got, n+1)
	}
	sweepers.mu.Lock()
	held := len(sweepers.m[stall/stallQuarters].conns)
	sweepers.mu.Unlock()
	if held != n {
		t.Fatalf("the sweeper watches %d connections, want %d", held, n)
	}
	for _, c := range clients {
		c.Close()
	}
	sweepers.mu.Lock()
	s := sweepers.m[stall/stallQuarters]
	sweepers.mu.Unlock()
	if s != nil {
		t.Fatal("the sweeper outlived its connections")
	}
}

// settledClientGoroutines waits for the client goroutines an earlier
// test left winding down (a closed client's loops end a moment after
// Close returns) to end, and returns how many are left: the count to
// measure from. The tests that count run one at a time, so none are
// expected.
func settledClientGoroutines(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := clientGoroutines()
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clientGoroutines counts the goroutines running the client's read loops,
// sweepers and anything else of a Client's (not a Poller's goroutines,
// which run handlers for many sessions).
func clientGoroutines() int {
	buf := make([]byte, 4<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "client.(*pollShard)") {
			continue // a Poller's goroutine, not a session's, even while it runs a handler
		}
		if strings.Contains(g, "client.(*Client)") || strings.Contains(g, "client.(*sweeper)") {
			n++
		}
	}
	return n
}
