package client

import (
	"context"
	"encoding/json"
	"fmt"
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
		case 2, 3: // the resync, twice never answered (each awaited past its timeout too)
		default:
			write(fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":"c"},"seq":2,"events":[%s,%s]}}`, id, watchEvent(1), watchEvent(2)))
		}
		return true
	})
	c, got := watchAndCollect(t, url, 200*time.Millisecond, 2, &watches)
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

// scriptReq is a request a scripted gateway read.
type scriptReq struct {
	ID   uint64             `json:"id"`
	Op   string             `json:"op"`
	Args protocol.WatchArgs `json:"args"`
}

// scriptedGateway serves a gateway scripted by handle, which is given
// each message's requests (frames packed in one message included) with
// the number of the connection they came on (from 1) and whether the
// message is the connection's first, and writes what it likes; the
// connection ends when handle returns false.
func scriptedGateway(t *testing.T, handle func(conn int32, first bool, reqs []scriptReq, write func(string)) bool) string {
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
		for first := true; ; first = false {
			_, msg, err := conn.Read(ctx)
			if err != nil {
				return
			}
			var reqs []scriptReq
			ok := true
			protocol.SplitFrames(msg, func(f []byte) {
				var q scriptReq
				ok = ok && json.Unmarshal(f, &q) == nil
				reqs = append(reqs, q)
			})
			if !ok || !handle(n, first, reqs, write) {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// watchGateway serves a scripted gateway: it answers connect, ignores
// every other op but channel.watch, and hands each watch (with the
// number of the connection it came on, from 1) to watch, which writes
// what it likes; the connection ends when watch returns false.
func watchGateway(t *testing.T, watch func(conn int32, id uint64, write func(string)) bool) string {
	return scriptedGateway(t, func(n int32, _ bool, reqs []scriptReq, write func(string)) bool {
		for _, q := range reqs {
			switch q.Op {
			case protocol.OpConnect:
				write(fmt.Sprintf(`{"id":%d,"result":{"session":"s"}}`, q.ID))
			case protocol.OpChannelWatch:
				if !watch(n, q.ID, write) {
					return false
				}
			}
		}
		return true
	})
}

// watchEvent is a message.new of channel c at seq.
func watchEvent(seq int) string {
	return fmt.Sprintf(`{"event":"message.new","channel":"c","seq":%d,"data":{"id":"m%d","segment":%d,"created_at":"2026-12-06T00:00:00Z"}}`, seq, seq, seq)
}

// TestReconnectPacksResumesWithTheConnect: a reconnect sends the watched
// channels' resumes in its first message, after the connect, each from
// the last seq delivered; their replays are delivered once; a packed
// resume refused with an error that may pass is tried again the usual
// way; OnResumed comes once every resume is answered.
func TestReconnectPacksResumesWithTheConnect(t *testing.T) {
	t.Parallel()
	var conns, watched, dWatches atomic.Int32
	firsts := make(chan []scriptReq, 4) // each connection's first message
	url := scriptedGateway(t, func(n int32, first bool, reqs []scriptReq, write func(string)) bool {
		conns.Store(max(conns.Load(), n))
		if first {
			firsts <- reqs
		}
		for _, q := range reqs {
			switch {
			case q.Op == protocol.OpConnect:
				write(fmt.Sprintf(`{"id":%d,"result":{"session":"s"}}`, q.ID))
			case q.Op != protocol.OpChannelWatch:
			case n == 1:
				write(fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":%q},"seq":0,"events":[]}}`, q.ID, q.Args.Channel))
				if watched.Add(1) == 2 {
					return false // both watched: the connection drops
				}
			case q.Args.Channel == "d" && dWatches.Add(1) == 1:
				write(fmt.Sprintf(`{"id":%d,"error":{"code":"unavailable","message":"busy"}}`, q.ID))
			default:
				ev := strings.ReplaceAll(watchEvent(1), `"channel":"c"`, fmt.Sprintf(`"channel":%q`, q.Args.Channel))
				write(fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":%q},"seq":1,"events":[%s]}}`, q.ID, q.Args.Channel, ev))
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resumed := make(chan struct{}, 2)
	c, err := Dial(ctx, Options{URLs: []string{url}, UserID: "u", RawEvents: true,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, OnResumed: func() { resumed <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-firsts // the first connection's connect
	for _, ch := range []string{"c", "d"} {
		if err := c.Call(ctx, protocol.OpChannelWatch, protocol.WatchArgs{Channel: ch}, nil); err != nil && ch == "c" {
			t.Fatal(err)
		}
	}
	select {
	case reqs := <-firsts:
		if len(reqs) != 3 || reqs[0].Op != protocol.OpConnect {
			t.Fatalf("the reconnect's first message: %+v, want connect and two resumes", reqs)
		}
		got := map[string]bool{}
		for _, q := range reqs[1:] {
			if q.Op != protocol.OpChannelWatch || q.Args.SinceSeq == nil || *q.Args.SinceSeq != 0 {
				t.Fatalf("packed %+v, want channel.watch since_seq 0", q)
			}
			got[q.Args.Channel] = true
		}
		if !got["c"] || !got["d"] {
			t.Fatalf("resumes packed for %v, want c and d", got)
		}
	case <-ctx.Done():
		t.Fatal("no reconnect")
	}
	select {
	case <-resumed:
	case <-ctx.Done():
		t.Fatal("OnResumed was not called")
	}
	// Every replay was delivered before OnResumed: it is all queued.
	seen := map[string]int{}
	for more := true; more; {
		select {
		case e := <-c.Events():
			if e.Seq != 0 {
				seen[e.Channel]++
			}
		default:
			more = false
		}
	}
	if seen["c"] != 1 || seen["d"] != 1 {
		t.Fatalf("delivered %v, want c and d's seq 1 once each", seen)
	}
	if n := dWatches.Load(); n != 2 {
		t.Fatalf("d was resumed %d times, want the packed one and one more", n)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// TestFailedWriteWaitsForTheReader: a request whose write fails on a
// connection its reader has not yet taken away (a Poller's goroutine,
// busy here in OnEvent) waits before trying again instead of writing to
// the closed connection in a loop: thousands of clients doing that in a
// reconnect storm kept the pollers from running at all.
func TestFailedWriteWaitsForTheReader(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller reads on Linux only")
	}
	t.Parallel()
	url := scriptedGateway(t, func(_ int32, _ bool, reqs []scriptReq, write func(string)) bool {
		for _, q := range reqs {
			if q.Op == protocol.OpConnect {
				write(fmt.Sprintf(`{"id":%d,"result":{"session":"s"}}`, q.ID))
				write(watchEvent(1)) // holds the poller in OnEvent
			}
		}
		return true
	})
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{URLs: []string{url}, UserID: "u", StallTimeout: -1, Poller: newPoller(t, 1),
		RequestTimeout: 200 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnEvent: func(e Event) {
			if e.Name == protocol.EventMessageNew {
				once.Do(func() { close(entered); <-release })
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer close(release)
	<-entered
	c.mu.Lock()
	conn, id0 := c.conn, c.nextID
	c.mu.Unlock()
	conn.CloseNow() // its writes fail from now on; its reader is busy
	err = c.Call(ctx, protocol.OpChannelWatch, protocol.WatchArgs{Channel: "c"}, nil)
	c.mu.Lock()
	tries := c.nextID - id0
	c.mu.Unlock()
	if err == nil {
		t.Fatal("a watch answered on a closed connection")
	}
	// 200 ms of tries at least 5 ms apart (MinBackoff, jittered).
	if tries > 60 {
		t.Fatalf("%d writes to the closed connection in the request's 200 ms", tries)
	}
}

// TestLateResyncReplyIsTaken: a resync whose reply comes after the
// client gave up on it (a gateway answers every request it took, and
// then sends the events after the reply's position) is still taken: its
// missed events are delivered, and the channel is not asked again — a
// second ask would have them sent twice, which a client passing every
// frame on (RawEvents, the load test's) delivers twice.
func TestLateResyncReplyIsTaken(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	var watches atomic.Int32
	url := watchGateway(t, func(conn int32, id uint64, write func(string)) bool {
		switch watches.Add(1) {
		case 1: // the watch; then a gap: seq 2 before 1
			write(fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":"c"},"seq":0,"events":[]}}`, id))
			write(watchEvent(2))
		case 2: // the resync, answered after the client's timeout and within another
			time.AfterFunc(timeout*3/2, func() {
				write(fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":"c"},"seq":2,"events":[%s,%s]}}`, id, watchEvent(1), watchEvent(2)))
				write(watchEvent(3)) // live, after the reply's position
			})
		default: // asked again: the same events, and the new one
			write(fmt.Sprintf(`{"id":%d,"result":{"channel":{"id":"c"},"seq":3,"events":[%s,%s,%s]}}`, id, watchEvent(1), watchEvent(2), watchEvent(3)))
		}
		return true
	})
	_, got := watchAndCollect(t, url, timeout, 3, &watches)
	if got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("delivered %v, want [1 2 3]", got)
	}
	if n := watches.Load(); n != 2 {
		t.Fatalf("%d watches, want the watch and one resync (its late reply taken)", n)
	}
}

// watchAndCollect dials url with requestTimeout, watches channel c and
// returns the client (closed when the test ends) and the first n seqs of
// c it delivers; watches counts the gateway's watches, for the failure.
func watchAndCollect(t *testing.T, url string, requestTimeout time.Duration, n int, watches *atomic.Int32) (*Client, []uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{URLs: []string{url}, UserID: "u",
		RequestTimeout: requestTimeout, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Call(ctx, protocol.OpChannelWatch, protocol.WatchArgs{Channel: "c"}, nil); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for len(got) < n {
		select {
		case e := <-c.Events():
			if e.Channel == "c" && e.Seq != 0 {
				got = append(got, e.Seq)
			}
		case <-ctx.Done():
			t.Fatalf("delivered %v after %d watches, want %d seqs", got, watches.Load(), n)
		}
	}
	return c, got
}
