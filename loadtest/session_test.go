package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// fakeGateway is a scripted gateway: each connection runs the next
// script, which starts by answering connect.
type fakeGateway struct {
	t       *testing.T
	scripts []func(ctx context.Context, c *fakeConn)
	n       atomic.Int32
}

type fakeConn struct {
	t    *testing.T
	conn *websocket.Conn
	// frames are the frames of the last message read not yet taken
	// (requests packed after connect, as a reconnect packs its resumes).
	frames [][]byte
}

// request reads one request frame; op is empty once the connection ended.
func (c *fakeConn) request(ctx context.Context) (id uint64, op string, args json.RawMessage) {
	for len(c.frames) == 0 {
		_, msg, err := c.conn.Read(ctx)
		if err != nil {
			return 0, "", nil
		}
		protocol.SplitFrames(msg, func(f []byte) { c.frames = append(c.frames, bytes.Clone(f)) })
	}
	b := c.frames[0]
	c.frames = c.frames[1:]
	var f struct {
		ID   uint64          `json:"id"`
		Op   string          `json:"op"`
		Args json.RawMessage `json:"args"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Errorf("fake gateway: %q: %v", b, err)
	}
	return f.ID, f.Op, f.Args
}

func (c *fakeConn) write(ctx context.Context, frame string) {
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.t.Errorf("fake gateway: write: %v", err)
	}
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"switchboard.v1.json"}})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	i := int(g.n.Add(1)) - 1
	if i >= len(g.scripts) {
		g.t.Errorf("fake gateway: unexpected connection %d", i+1)
		return
	}
	c := &fakeConn{t: g.t, conn: conn}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	g.scripts[i](ctx, c)
}

// rest reads until the connection ends.
func (c *fakeConn) rest(ctx context.Context) {
	for {
		if _, op, _ := c.request(ctx); op == "" {
			return
		}
	}
}

// start answers connect, then a join, watch or create (op) of channel
// with seq.
func (c *fakeConn) start(ctx context.Context, op, channel string, seq uint64) {
	c.connect(ctx)
	id, got, _ := c.request(ctx)
	if got != op {
		c.t.Errorf("fake gateway: op %q, want %s", got, op)
	}
	c.write(ctx, fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":%q},"seq":%d}}`, id, channel, seq))
}

// wait waits for ch to close or ctx to end.
func wait(ctx context.Context, ch <-chan struct{}) {
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// connect answers the connect request.
func (c *fakeConn) connect(ctx context.Context) {
	if id, op, _ := c.request(ctx); op != protocol.OpConnect {
		c.t.Errorf("fake gateway: first op %q (id %d)", op, id)
	}
	c.write(ctx, `{"id":0,"result":{"session_id":"s","user":{"id":"u"}}}`)
}

func messageEvent(seq uint64) string {
	return fmt.Sprintf(`{"event":"message.new","channel":"ch","seq":%d,"data":{"message":{"id":"%d-x","channel":"ch","segment":%d,"client_id":"other"}}}`, seq, seq, seq)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !pollUntil(context.Background(), 10*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestSessionResetIsResumeBoundary drives a real client through a resume
// answered reset: true. The client's synthetic client.reset must move the
// watcher's stream to the reply's seq: it is neither an event (a
// duplicate of the last seq) nor followed by gaps for the seqs the server
// announced as no longer kept.
func TestSessionResetIsResumeBoundary(t *testing.T) {
	drop := make(chan struct{})
	g := &fakeGateway{t: t}
	g.scripts = []func(context.Context, *fakeConn){
		func(ctx context.Context, c *fakeConn) {
			c.start(ctx, protocol.OpChannelJoin, "ch", 5)
			c.write(ctx, messageEvent(6))
			c.write(ctx, messageEvent(7))
			wait(ctx, drop) // then the connection ends abruptly
		},
		func(ctx context.Context, c *fakeConn) {
			c.connect(ctx)
			id, op, args := c.request(ctx)
			var a protocol.WatchArgs
			_ = json.Unmarshal(args, &a)
			if op != protocol.OpChannelWatch || a.SinceSeq == nil || *a.SinceSeq != 7 {
				t.Errorf("resume: op %q args %s, want channel.watch since_seq 7", op, args)
			}
			c.write(ctx, fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":"ch"},"seq":20,"events":[],"reset":true}}`, id))
			c.write(ctx, messageEvent(21))
			c.rest(ctx)
		},
	}
	srv := httptest.NewServer(g)
	defer srv.Close()
	r := &runner{cfg: Config{Logger: slog.New(slog.DiscardHandler)}, runID: "t", orc: newOracle(), rec: newRecorder()}
	co := r.orc.channel("ch")
	st := co.watch("u")
	s := &session{r: r, user: "u", streams: []sessionStream{{channel: "ch", s: st}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{URLs: []string{"ws" + strings.TrimPrefix(srv.URL, "http")}, UserID: "u",
		OnEvent: s.onEvent, RawEvents: true, MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	s.cl = cl
	s.reader.Store(cl)
	if err := r.call(ctx, s, protocol.OpChannelJoin, protocol.WatchArgs{Channel: "ch"}, st); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "seq 7", func() bool { last, _ := st.position(); return last == 7 })
	close(drop)
	waitFor(t, "seq 21 after the resume", func() bool { last, _ := st.position(); return last == 21 })
	co.finish(21, nil)
	v := r.orc.verdict()
	if !v.OK || v.ResetSkipped != 13 || v.Delivered != 3 {
		t.Fatalf("ok=%v counts %v skipped %d delivered %d violations %v", v.OK, v.Counts, v.ResetSkipped, v.Delivered, v.Violations)
	}
}

// TestSendWhileReconnectingIsResent: a send scheduled while its session
// is between connections (a reconnect storm) is sent once the connection
// is back, settled once, and its latency counts from its intended time,
// the wait for the reconnect included; it is neither dropped from the
// histograms nor failed.
func TestSendWhileReconnectingIsResent(t *testing.T) {
	drop, release := make(chan struct{}), make(chan struct{})
	g := &fakeGateway{t: t}
	g.scripts = []func(context.Context, *fakeConn){
		func(ctx context.Context, c *fakeConn) {
			c.start(ctx, protocol.OpChannelCreate, "lt-t-room0", 1)
			wait(ctx, drop)
		},
		func(ctx context.Context, c *fakeConn) {
			wait(ctx, release) // the client waits for the connect reply, not connected
			c.connect(ctx)
			for {
				id, op, args := c.request(ctx)
				switch op {
				case "":
					return
				case protocol.OpChannelWatch:
					c.write(ctx, fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":"lt-t-room0"},"seq":1,"events":[]}}`, id))
				case protocol.OpMessageSend:
					var a protocol.SendArgs
					_ = json.Unmarshal(args, &a)
					c.write(ctx, fmt.Sprintf(`{"id":%d,"result":{"message":{"id":"2-x","channel":"lt-t-room0","segment":2,"client_id":%q}}}`, id, a.ClientID))
				}
			}
		},
	}
	srv := httptest.NewServer(g)
	defer srv.Close()
	cfg := Config{Targets: []string{"ws" + strings.TrimPrefix(srv.URL, "http")}, Scenario: ScenarioChat, Sessions: 1, Channels: 1, RunID: "t"}
	cfg.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := newRunner(ctx, cfg)
	r.origin = r.origin.Add(-time.Second) // sending started a second ago
	r.setup(ctx, 0)
	s := r.sessions[0]
	if s == nil || r.setupFailed.Load() != 0 {
		t.Fatalf("setup failed: %v", r.ops.m)
	}
	defer func() {
		r.closeAll()
		r.retries.Wait()
	}()
	close(drop)
	waitFor(t, "the drop", func() bool { return !s.cl.Connected() })

	const late = 200 * time.Millisecond // intended this long before dispatch
	r.dispatch(Step{Kind: KindSend, Session: 0, Channel: 0}, r.now()-late)
	close(release)
	waitFor(t, "the send to settle", func() bool { return r.sends.outstanding.Load() == 0 })
	r.rec.flush()
	ack := r.rec.totals()[MetricAck]
	if got := r.sends.report(); got != (Tally{Scheduled: 1, OK: 1}) || r.resent.Load() != 1 {
		t.Fatalf("sends %+v, resent %d, ops %v", got, r.resent.Load(), r.ops.m)
	}
	if ack.Count != 1 || ack.Min < float64(late/time.Millisecond) {
		t.Fatalf("ack latency %+v, want one of at least %v", ack, late)
	}
	if v := r.chans[0]; v.acked[2] == "" {
		t.Fatalf("the ack did not reach the oracle: %v", v.acked)
	}
}
