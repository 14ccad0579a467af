package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestHandedOnBytesOutliveTheReadBuffer: the read loop reuses its buffer
// from message to message (and lets a large one's go); an event's Data
// and a reply's result, kept after they were handed on, still hold what
// the server sent while later messages are read.
func TestHandedOnBytesOutliveTheReadBuffer(t *testing.T) {
	big := strings.Repeat("b", keptReadBuffer+1000)
	datas := []string{`{"text":"first"}`, `{"text":"` + big + `"}`, `{"text":"third, after the big one"}`, `{"text":"after the reply"}`}
	u := sessionGateway(t, func(ctx context.Context, conn *websocket.Conn) {
		send := func(s string) bool { return conn.Write(ctx, websocket.MessageText, []byte(s)) == nil }
		event := func(i int) string {
			return fmt.Sprintf(`{"event":"message.new","channel":"c","seq":%d,"data":%s}`, i+1, datas[i])
		}
		for i := range 3 {
			if !send(event(i)) {
				return
			}
		}
		_, msg, err := conn.Read(ctx)
		var req struct{ ID uint64 }
		if err != nil || json.Unmarshal(msg, &req) != nil {
			return
		}
		if !send(fmt.Sprintf(`{"id":%d,"result":{"kept":"the reply's own bytes"}}`, req.ID)) || !send(event(3)) {
			return
		}
		_, _, _ = conn.Read(ctx) // until the client goes
	})
	events := make(chan Event, len(datas))
	c, err := Dial(testCtx(t), Options{URLs: []string{u}, UserID: "alice", NoReconnect: true,
		OnEvent: func(e Event) { events <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []Event
	next := func() {
		select {
		case e := <-events:
			got = append(got, e)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d events of %d", len(got), len(datas))
		}
	}
	for range 3 {
		next()
	}
	results := make(chan json.RawMessage, 1)
	if err := c.CallAsync(protocol.OpChannelGet, protocol.ChannelRef{Channel: "c"}, func(res json.RawMessage, err error) { results <- res }); err != nil {
		t.Fatal(err)
	}
	res := <-results
	next()
	for i, e := range got {
		if string(e.Data) != datas[i] || e.Seq != uint64(i+1) {
			t.Fatalf("event %d: seq %d, data %.60s…, want %.60s…", i, e.Seq, e.Data, datas[i])
		}
	}
	if string(res) != `{"kept":"the reply's own bytes"}` {
		t.Fatalf("the reply's result reads %s", res)
	}
}

// TestFragmentedMessage: a message the server sends in several frames is
// read whole (each Write of coder/websocket's message writer is a frame).
func TestFragmentedMessage(t *testing.T) {
	u := sessionGateway(t, func(ctx context.Context, conn *websocket.Conn) {
		mw, err := conn.Writer(ctx, websocket.MessageText)
		if err != nil {
			return
		}
		for _, part := range []string{`{"event":"message.new","chan`, `nel":"c","seq":1,"data":{"text":"`, strings.Repeat("x", 3000), `"}}`} {
			if _, err := mw.Write([]byte(part)); err != nil {
				return
			}
		}
		if mw.Close() != nil {
			return
		}
		_, _, _ = conn.Read(ctx) // until the client goes
	})
	events := make(chan Event, 1)
	c, err := Dial(testCtx(t), Options{URLs: []string{u}, UserID: "alice", NoReconnect: true,
		OnEvent: func(e Event) { events <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case e := <-events:
		if e.Channel != "c" || e.Seq != 1 || string(e.Data) != `{"text":"`+strings.Repeat("x", 3000)+`"}` {
			t.Fatalf("event %s %s %d, data %.40s…", e.Name, e.Channel, e.Seq, e.Data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
}

// sessionGateway serves sessions: it answers each connect and then runs
// script on the connection.
func sessionGateway(t *testing.T, script func(ctx context.Context, conn *websocket.Conn)) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := acceptSession(w, r, `{"id":0,"result":{}}`)
		if conn == nil {
			return
		}
		defer conn.CloseNow()
		script(r.Context(), conn)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}
