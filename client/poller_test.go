package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// pollGateway serves sessions (the user named in the URL's query) that
// each get events seq 1..n, every one naming the user and the user's
// session number (from 1); every fifth is sent in fragments and every
// 50th is larger than a read buffer. before, when set, runs first on
// each session and may end it by returning false.
func pollGateway(t *testing.T, n int, before func(user string, k int, ctx context.Context, conn *websocket.Conn) bool) string {
	var mu sync.Mutex
	sessions := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		conn := acceptSession(w, r, `{"id":0,"result":{"user":{"id":"`+user+`"}}}`)
		if conn == nil {
			return
		}
		defer conn.CloseNow()
		mu.Lock()
		sessions[user]++
		k := sessions[user]
		mu.Unlock()
		ctx := r.Context()
		if before != nil && !before(user, k, ctx, conn) {
			return
		}
		for i := 1; i <= n; i++ {
			pad := ""
			if i%50 == 0 {
				pad = strings.Repeat("p", readBufferSize+100)
			}
			ev := fmt.Sprintf(`{"event":"message.new","channel":"c","seq":%d,"data":{"user":%q,"conn":%d,"pad":%q}}`, i, user, k, pad)
			var err error
			if i%5 == 0 {
				err = writeFragmented(ctx, conn, ev)
			} else {
				err = conn.Write(ctx, websocket.MessageText, []byte(ev))
			}
			if err != nil {
				return
			}
		}
		_, _, _ = conn.Read(ctx) // until the client goes
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func writeFragmented(ctx context.Context, conn *websocket.Conn, msg string) error {
	mw, err := conn.Writer(ctx, websocket.MessageText)
	if err != nil {
		return err
	}
	for len(msg) > 0 {
		k := min(7, len(msg))
		if _, err := mw.Write([]byte(msg[:k])); err != nil {
			return err
		}
		msg = msg[k:]
	}
	return mw.Close()
}

// seqCheck records one client's events: they must name its user, and
// each connection's must come in seq order from 1, without a gap or a
// repeat, the connections one after the other.
type seqCheck struct {
	user string
	mu   sync.Mutex
	conn int
	next uint64
	err  error
}

func (s *seqCheck) event(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Name != "message.new" || s.err != nil {
		return
	}
	var d struct {
		User string
		Conn int
	}
	if err := json.Unmarshal(e.Data, &d); err != nil || d.User != s.user {
		s.err = fmt.Errorf("%s got another session's event: %.80s", s.user, e.Data)
		return
	}
	if d.Conn != s.conn {
		if d.Conn < s.conn {
			s.err = fmt.Errorf("%s got connection %d's event after connection %d's", s.user, d.Conn, s.conn)
			return
		}
		s.conn, s.next = d.Conn, 0
	}
	if e.Seq != s.next+1 {
		s.err = fmt.Errorf("%s got seq %d after %d", s.user, e.Seq, s.next)
	}
	s.next = e.Seq
}

// state is the latest connection's number and seq, or the violation.
func (s *seqCheck) state() (int, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn, s.next, s.err
}

// waitAll waits until each check's latest connection conn delivered n
// events.
func waitAll(t *testing.T, checks []*seqCheck, conn int, n uint64) {
	t.Helper()
	for _, chk := range checks {
		waitFor(t, chk.user+"'s events", func() bool {
			k, seq, err := chk.state()
			return err != nil || k > conn || (k == conn && seq == n)
		})
		if k, seq, err := chk.state(); err != nil || k != conn || seq != n {
			t.Fatalf("%s: connection %d seq %d, %v; want connection %d seq %d", chk.user, k, seq, err, conn, n)
		}
	}
}

// pollClient dials user's session through p.
func pollClient(t *testing.T, ctx context.Context, url string, p *Poller, user string, mod func(*Options)) (*Client, *seqCheck) {
	chk := &seqCheck{user: user}
	opts := Options{URLs: []string{url + "?user=" + user}, UserID: user, Poller: p, OnEvent: chk.event, StallTimeout: -1,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	c, err := Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, chk
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func newPoller(t *testing.T, n int) *Poller {
	p, err := NewPoller(PollerOptions{Goroutines: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestPollerReadsManyConnections: one poller of two goroutines reads
// many sessions' events (whole, fragmented, larger than a read buffer),
// each in order, none lost or repeated and none another session's; the
// sessions run no goroutine of their own.
func TestPollerReadsManyConnections(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller reads on Linux only")
	}
	const sessions, events = 40, 300
	url := pollGateway(t, events, nil)
	p := newPoller(t, 2)
	ctx := testCtx(t)
	before := settledClientGoroutines(t)
	var checks []*seqCheck
	for i := range sessions {
		c, chk := pollClient(t, ctx, url, p, fmt.Sprintf("u%d", i), nil)
		defer c.Close()
		checks = append(checks, chk)
	}
	if got := clientGoroutines() - before; got != 0 {
		t.Fatalf("%d polled sessions run %d goroutines of their own", sessions, got)
	}
	waitAll(t, checks, 1, events)
}

// TestPollerCloseReconnectAndReusedDescriptors: polled sessions the
// gateway closes (4001, reconnect elsewhere) or the client drops
// reconnect and are polled again; while sessions come and go, so that
// new sockets take the descriptors of closed ones, every event reaches
// its own session, in order.
func TestPollerCloseReconnectAndReusedDescriptors(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller reads on Linux only")
	}
	const sessions, events = 16, 100
	url := pollGateway(t, events, func(user string, k int, ctx context.Context, conn *websocket.Conn) bool {
		if k == 1 && !strings.HasPrefix(user, "churn") {
			_ = conn.Close(4001, "server draining: reconnect elsewhere")
			return false
		}
		return true
	})
	p := newPoller(t, 2)
	ctx := testCtx(t)
	var clients []*Client
	var checks []*seqCheck
	for i := range sessions {
		c, chk := pollClient(t, ctx, url, p, fmt.Sprintf("u%d", i), nil)
		defer c.Close()
		clients, checks = append(clients, c), append(checks, chk)
	}
	waitAll(t, checks, 2, events)
	for _, c := range clients {
		c.mu.Lock()
		err := c.lastError
		c.mu.Unlock()
		var ce CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 {
			t.Fatalf("the first connection ended with %v, want close 4001", err)
		}
	}

	// Sessions come and go (their descriptors are freed and taken
	// again) while the others are dropped and reconnect.
	dropped := make(chan struct{})
	go func() {
		defer close(dropped)
		for _, c := range clients {
			c.Drop()
		}
	}()
	fds := map[int]int{}
	for i := range 30 {
		c, chk := pollClient(t, ctx, url, p, fmt.Sprintf("churn%d", i), func(o *Options) { o.NoReconnect = true })
		c.mu.Lock()
		if conn := c.conn; conn != nil {
			fds[polledFD(t, conn)]++
		}
		c.mu.Unlock()
		if i%2 == 0 {
			waitAll(t, []*seqCheck{chk}, 1, events)
		}
		c.Close()
	}
	<-dropped
	waitAll(t, checks, 3, events)
	reused := 0
	for _, n := range fds {
		reused += n - 1
	}
	if reused == 0 {
		t.Fatalf("no descriptor was taken again: %v", fds)
	}
}

// TestPollerSlowOnEvent: an OnEvent that holds the poller up loses
// nothing: what arrives meanwhile waits in the socket and the buffer.
func TestPollerSlowOnEvent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller reads on Linux only")
	}
	const events = 400
	sent := make(chan struct{})
	url := pollGateway(t, events, nil)
	url2 := pollGateway(t, 0, func(user string, k int, ctx context.Context, conn *websocket.Conn) bool {
		defer close(sent)
		for i := 1; i <= events; i++ {
			ev := fmt.Sprintf(`{"event":"message.new","channel":"c","seq":%d,"data":{"user":%q,"conn":1}}`, i, user)
			if conn.Write(ctx, websocket.MessageText, []byte(ev)) != nil {
				return false
			}
		}
		return true
	})
	p := newPoller(t, 1)
	ctx := testCtx(t)
	other, otherChk := pollClient(t, ctx, url, p, "other", nil)
	defer other.Close()
	release := make(chan struct{})
	var once sync.Once
	slow, chk := pollClient(t, ctx, url2, p, "slow", func(o *Options) {
		next := o.OnEvent
		o.OnEvent = func(e Event) {
			once.Do(func() { <-release }) // held until everything was sent
			next(e)
		}
	})
	defer slow.Close()
	select {
	case <-sent:
	case <-time.After(5 * time.Second): // the socket's buffers are full: release anyway
	}
	close(release)
	waitAll(t, []*seqCheck{chk}, 1, events)
	waitAll(t, []*seqCheck{otherChk}, 1, events)
}

// TestPollerCloseHandsConnectionsBack: closing a poller that still reads
// sessions drops their connections; they reconnect and read with
// goroutines of their own.
func TestPollerCloseHandsConnectionsBack(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller reads on Linux only")
	}
	const events = 50
	url := pollGateway(t, events, nil)
	p, err := NewPoller(PollerOptions{Goroutines: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	var checks []*seqCheck
	for i := range 4 {
		c, chk := pollClient(t, ctx, url, p, fmt.Sprintf("u%d", i), nil)
		defer c.Close()
		checks = append(checks, chk)
	}
	waitAll(t, checks, 1, events)
	before := settledClientGoroutines(t)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	waitAll(t, checks, 2, events)
	waitFor(t, "a read loop per session", func() bool { return clientGoroutines()-before == len(checks) })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPollerStallWatchdog: a polled connection is watched as any other:
// while its gateway is idle, pings go out and pongs keep it; once the
// gateway stalls, the connection is dropped and the client moves to the
// next gateway.
func TestPollerStallWatchdog(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller reads on Linux only")
	}
	a, b := newFakeGateway(t, "a", 0), newFakeGateway(t, "b", 0)
	p := newPoller(t, 1)
	ctx := testCtx(t)
	before := settledClientGoroutines(t)
	c, err := Dial(ctx, Options{URLs: []string{a.url(), b.url()}, UserID: "alice", Poller: p, OnEvent: func(Event) {},
		StallTimeout: 300 * time.Millisecond, CloseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := clientGoroutines() - before; got > 1 { // the sweeper, unless one of its StallTimeout runs already
		t.Fatalf("a polled session runs %d goroutines of the client's, want the sweeper at most", got)
	}
	waitFor(t, "pings to the idle gateway", func() bool { return a.pings.Load() >= stallQuarters })
	if n := a.connects.Load(); n != 1 || !c.Connected() {
		t.Fatalf("%d connects (connected %v): a live idle polled connection was dropped", n, c.Connected())
	}
	a.gate.pause()
	var res json.RawMessage
	if err := c.Call(ctx, "channel.get", map[string]string{"channel": "c"}, &res); err != nil {
		t.Fatal(err)
	}
	if s := serverOf(t, res); s != "b" {
		t.Fatalf("answered by %q after the stall, want b", s)
	}
}
