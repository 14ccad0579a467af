package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestResyncIsTriedAgainUntilItSucceeds: a gap starts a resync; a
// gateway too busy to answer it in time (two attempts time out) does not
// end it: the client tries again and delivers the missed events, once
// each and in order.
func TestResyncIsTriedAgainUntilItSucceeds(t *testing.T) {
	t.Parallel()
	var watches atomic.Int32
	url := watchGateway(t, func(conn int32, id uint64, write func(string)) bool {
		switch watches.Add(1) {
		case 1: // the watch itself; then a gap: seq 2 before 1
			write(fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":"c"},"seq":0,"events":[]}}`, id))
			write(watchEvent(2))
		case 2, 3: // the resync, twice too slow to answer
		default:
			write(fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":"c"},"seq":2,"events":[%s,%s]}}`, id, watchEvent(1), watchEvent(2)))
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{URLs: []string{url}, UserID: "u",
		RequestTimeout: 200 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Call(ctx, protocol.OpChannelWatch, protocol.WatchArgs{Channel: "c"}, nil); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for len(got) < 2 {
		select {
		case e := <-c.Events():
			if e.Channel == "c" && e.Seq != 0 {
				got = append(got, e.Seq)
			}
		case <-ctx.Done():
			t.Fatalf("delivered %v after %d watches, want seqs 1 and 2", got, watches.Load())
		}
	}
	if got[0] != 1 || got[1] != 2 {
		t.Fatalf("delivered %v, want [1 2]", got)
	}
	if n := watches.Load(); n < 4 {
		t.Fatalf("%d watches, want the watch and at least three resync attempts", n)
	}
	select {
	case e := <-c.Events():
		if e.Seq != 0 {
			t.Fatalf("delivered seq %d again", e.Seq)
		}
	case <-time.After(100 * time.Millisecond):
	}
}

// TestReconnectDoesNotResumeTwice: a resume still in flight when its
// connection drops goes on on the next connection by itself; the
// reconnect does not start a second one beside it, so even a client that
// passes every frame on (RawEvents) gets the missed events once.
func TestReconnectDoesNotResumeTwice(t *testing.T) {
	t.Parallel()
	url := watchGateway(t, func(conn int32, id uint64, write func(string)) bool {
		switch conn {
		case 1: // the watch; then the connection drops
			write(fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":"c"},"seq":0,"events":[]}}`, id))
			return false
		case 2: // the resume goes unanswered, and this connection drops too
			return false
		}
		write(fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":"c"},"seq":2,"events":[%s,%s]}}`, id, watchEvent(1), watchEvent(2)))
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{URLs: []string{url}, UserID: "u", RawEvents: true,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Call(ctx, protocol.OpChannelWatch, protocol.WatchArgs{Channel: "c"}, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]int{}
	deadline := time.After(300 * time.Millisecond)
	for seen[1] == 0 || seen[2] == 0 || deadline != nil {
		select {
		case e := <-c.Events():
			if e.Channel == "c" && e.Seq != 0 {
				seen[e.Seq]++
			}
		case <-deadline:
			if seen[1] == 0 || seen[2] == 0 {
				deadline = time.After(300 * time.Millisecond) // not resumed yet
				continue
			}
			deadline = nil
		case <-ctx.Done():
			t.Fatalf("delivered %v", seen)
		}
	}
	if seen[1] != 1 || seen[2] != 1 {
		t.Fatalf("delivered %v, want seqs 1 and 2 once each", seen)
	}
}

// watchGateway serves a scripted gateway: it answers connect, ignores
// every other op but channel.watch, and hands each watch (with the
// number of the connection it came on, from 1) to watch, which writes
// what it likes; the connection ends when watch returns false.
func watchGateway(t *testing.T, watch func(conn int32, id uint64, write func(string)) bool) string {
	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"switchboard.v1.json"}})
		if err != nil {
			return
		}
		defer conn.CloseNow()
		n := conns.Add(1)
		ctx := r.Context()
		write := func(s string) { _ = conn.Write(ctx, websocket.MessageText, []byte(s)) }
		for {
			_, msg, err := conn.Read(ctx)
			if err != nil {
				return
			}
			var req struct {
				ID uint64 `json:"id"`
				Op string `json:"op"`
			}
			if json.Unmarshal(msg, &req) != nil {
				return
			}
			switch req.Op {
			case protocol.OpConnect:
				write(fmt.Sprintf(`{"id":%d,"result":{"session":"s"}}`, req.ID))
			case protocol.OpChannelWatch:
				if !watch(n, req.ID, write) {
					return
				}
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// watchEvent is a message.new of channel c at seq.
func watchEvent(seq int) string {
	return fmt.Sprintf(`{"event":"message.new","channel":"c","seq":%d,"data":{"id":"m%d","segment":%d,"created_at":"2026-12-06T00:00:00Z"}}`, seq, seq, seq)
}
