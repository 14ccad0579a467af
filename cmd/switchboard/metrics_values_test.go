package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// counters scrapes one metric family of n: its values by the value of
// its (single) label, "" for a metric without labels.
func counters(t *testing.T, n *Node, name string) map[string]float64 {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(scrape(t, n)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	for _, m := range fams[name].GetMetric() {
		key := ""
		if ls := m.GetLabel(); len(ls) > 0 {
			key = ls[0].GetValue()
		}
		switch {
		case m.Counter != nil:
			out[key] = m.GetCounter().GetValue()
		case m.Gauge != nil:
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestEachSessionEndIsCountedOnce: disconnects_total counts every ended
// session exactly once, under why it ended — a server-side close is not
// counted again when the client answers its close frame.
func TestEachSessionEndIsCountedOnce(t *testing.T) {
	n := testNode(t, func(c *Config) { c.Gateway.AuthTimeout = 300 * time.Millisecond })

	out := rawDial(t, n) // logs out
	out.connect("alice")
	out.write(`{"id":2,"op":"logout"}`)
	if code := out.closeCode(); code != websocket.StatusNormalClosure {
		t.Fatalf("logout closed with %d", code)
	}

	bye := rawDial(t, n) // the client closes
	bye.connect("bob")
	if err := bye.conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}

	quiet := rawDial(t, n) // never connects
	if code := quiet.closeCode(); code != 4003 {
		t.Fatalf("auth timeout closed with %d", code)
	}

	drained := rawDial(t, n)
	drained.connect("carol")
	code := make(chan websocket.StatusCode, 1)
	go func() { code <- drained.closeCode() }() // answers the close: Drain waits for it
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if code := <-code; code != 4001 {
		t.Fatalf("drain closed with %d", code)
	}

	// A session is counted before its goroutines end, and they end
	// before it leaves the open count.
	waitFor(t, 10*time.Second, "every session to end", func() bool { return n.gw.Sessions() == 0 })
	got := counters(t, n, "switchboard_disconnects_total")
	want := map[string]float64{"logout": 1, "client_closed": 1, "auth_timeout": 1, "drain": 1}
	if !maps.Equal(got, want) {
		t.Fatalf("disconnects %v, want %v", got, want)
	}
}

// TestActorMetricsNameDirectoryShards: a public channel's listing lives
// in a directory shard, which the actor metrics call directory.
func TestActorMetricsNameDirectoryShards(t *testing.T) {
	n := testNode(t)
	alice := dial(t, n, "alice")
	public := true
	if _, _, err := alice.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: "lobby", Type: protocol.TypeStandard, Public: &public}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a directory shard", func() bool { return counters(t, n, "switchboard_actors_active")["directory"] >= 1 })
	for _, name := range []string{"switchboard_actors_active", "switchboard_actor_activations_total"} {
		if c := counters(t, n, name); c["other"] != 0 || c["channel"] != 1 {
			t.Errorf("%s: %v", name, c)
		}
	}
}

// TestInboxDepthGauge: messages waiting behind a busy inbox show in
// inbox_depth, and drain from it.
func TestInboxDepthGauge(t *testing.T) {
	n := testNode(t)
	release := make(chan struct{})
	n.cl.Do(func() { <-release })
	for range 5 {
		n.cl.Do(func() {})
	}
	waitFor(t, 10*time.Second, "a deep inbox", func() bool { return counters(t, n, "switchboard_inbox_depth")[""] >= 5 })
	close(release)
	waitFor(t, 10*time.Second, "an empty inbox", func() bool { return counters(t, n, "switchboard_inbox_depth")[""] == 0 })
}

// TestShedEventsAreReplayed: with the inbox's event bound at one byte,
// event batches that arrive behind a busy inbox are shed, and the
// watcher still gets every message once, in seq order, as the channel
// replays what the shed batches held.
func TestShedEventsAreReplayed(t *testing.T) {
	n := testNode(t, func(c *Config) { c.InboxBytes = 1 })
	ctx := ctxT(t)
	alice, bob := dial(t, n, "alice"), dial(t, n, "bob")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "room", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	w, err := bob.Join(ctx, "room")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	n.cl.Do(func() { <-release })
	const sends = 5
	errs := make(chan error, sends)
	for i := range sends {
		go func() {
			_, err := alice.Send(ctx, protocol.SendArgs{Channel: "room", Text: fmt.Sprint("m", i), ClientID: fmt.Sprint("c", i)})
			errs <- err
		}()
		if i == 0 {
			waitFor(t, 10*time.Second, "the first batch queued", func() bool { return counters(t, n, "switchboard_inbox_event_bytes")[""] > 0 })
		} else {
			waitFor(t, 10*time.Second, "a batch shed", func() bool { return counters(t, n, "switchboard_inbox_shed_total")[""] >= float64(i) })
		}
	}
	close(release)
	for range sends {
		if err := <-errs; err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	seq, texts := w.Seq, map[string]bool{}
	for len(texts) < sends {
		e := nextEvent(t, bob, protocol.EventMessageNew)
		if e.Seq != seq+1 {
			t.Fatalf("message.new at seq %d after %d", e.Seq, seq)
		}
		seq = e.Seq
		var data protocol.MessageResult
		if err := json.Unmarshal(e.Data, &data); err != nil || texts[data.Message.Text] {
			t.Fatalf("event %s: %v (seen %v)", e.Data, err, texts)
		}
		texts[data.Message.Text] = true
	}
}

// slowCloseConn holds the client's close frame back until the connection
// is torn down, or for 300 ms: a busy machine, on which a Close that tears
// the connection down before its close frame is out loses that race.
type slowCloseConn struct {
	net.Conn
	reading atomic.Int32 // Reads in progress
	once    sync.Once
	closed  chan struct{}
}

func (c *slowCloseConn) Read(p []byte) (int, error) {
	c.reading.Add(1)
	defer c.reading.Add(-1)
	return c.Conn.Read(p)
}

func (c *slowCloseConn) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0] == 0x88 { // FIN and the close opcode
		t := time.NewTimer(300 * time.Millisecond)
		defer t.Stop()
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		case <-t.C:
		}
	}
	return c.Conn.Write(p)
}

func (c *slowCloseConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestGoClientCloseCountsAsClientClosed: the Go client's Close sends its
// close frame before it tears the connection down, so the server counts
// client_closed — not connection_lost, as for a dropped connection — even
// when the close frame is slow to go out.
func TestGoClientCloseCountsAsClientClosed(t *testing.T) {
	n := testNode(t)
	conns := make(chan *slowCloseConn, 1)
	var d net.Dialer
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sc := &slowCloseConn{Conn: conn, closed: make(chan struct{})}
		conns <- sc
		return sc, nil
	}}}
	const clients = 3
	for i := range clients {
		c, err := client.Dial(ctxT(t), client.Options{URLs: []string{"ws://" + n.Addr() + "/v1/ws"}, UserID: "closer" + strconvItoa(i), HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		conn := <-conns
		// Closed while its read loop waits for frames, as a client in use is.
		waitFor(t, 10*time.Second, "the read loop to wait", func() bool { return conn.reading.Load() > 0 })
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "every session to end", func() bool { return n.gw.Sessions() == 0 })
	got := counters(t, n, "switchboard_disconnects_total")
	if want := map[string]float64{"client_closed": clients}; !maps.Equal(got, want) {
		t.Fatalf("disconnects %v, want %v", got, want)
	}
}

// TestResetConnectionCountsAsLost: a connection reset (no close
// handshake, no clean EOF) is counted as connection_lost, not as a
// client's close.
func TestResetConnectionCountsAsLost(t *testing.T) {
	n := testNode(t)
	conns := make(chan *net.TCPConn, 1)
	var d net.Dialer
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err == nil {
			conns <- conn.(*net.TCPConn)
		}
		return conn, err
	}}}
	c, err := client.Dial(ctxT(t), client.Options{URLs: []string{"ws://" + n.Addr() + "/v1/ws"}, UserID: "resetter", HTTPClient: hc, NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := <-conns
	_ = conn.SetLinger(0) // Close sends a RST
	_ = conn.Close()
	waitFor(t, 10*time.Second, "the session to end", func() bool { return n.gw.Sessions() == 0 })
	got := counters(t, n, "switchboard_disconnects_total")
	if want := map[string]float64{"connection_lost": 1}; !maps.Equal(got, want) {
		t.Fatalf("disconnects %v, want %v", got, want)
	}
}
