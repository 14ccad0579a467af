package main

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/protocol"
)

// fillLarge sends n messages of the longest text allowed to ch and
// returns the channel's seq after them.
func fillLarge(t *testing.T, c *client.Client, ch string, n int) uint64 {
	t.Helper()
	ctx := ctxT(t)
	text := strings.Repeat("x", protocol.DefaultLimits().MaxTextLen)
	for i := range n {
		if _, err := c.Send(ctx, sendArgs(ch, text)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	w, err := c.Watch(ctx, ch, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w.Seq
}

// rawReply returns the next reply frame as sent, skipping events.
func (r *rawConn) rawReply() []byte {
	r.t.Helper()
	for {
		f := r.nextRaw()
		var head struct {
			Event string `json:"event"`
		}
		if json.Unmarshal(f, &head) == nil && head.Event == "" {
			return f
		}
	}
}

// TestResumeOverLargeEventsPagesWithinTheQueue: a session resumes over
// more large events than its outbound queue holds. The replay comes in
// pages bounded in bytes (1 MiB) with has_more, each event exactly once,
// and the session is never cut off as a slow consumer — before, the one
// reply overflowed the queue, the session was closed, resumed, and closed
// again, forever. The Go client follows has_more by itself.
func TestResumeOverLargeEventsPagesWithinTheQueue(t *testing.T) {
	n := testNode(t, func(c *Config) { c.Gateway.QueueBytes = 1 << 20 })
	ctx := ctxT(t)
	alice := dial(t, n, "alice")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "big", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	bob := dial(t, n, "bob")
	j, err := bob.Join(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	bob.Close()
	since := j.Seq
	last := fillLarge(t, alice, "big", 260) // about 1.15 MB of events

	r := rawDial(t, n)
	r.connect("bob")
	next, replies := since, 0
	for id := 10; ; id++ {
		r.write(`{"id":` + itoa(id) + `,"op":"channel.watch","args":{"channel":"big","since_seq":` + itoa(int(next)) + `}}`)
		f := r.rawReply()
		var rep struct {
			Result *struct {
				Events        []json.RawMessage `json:"events"`
				HasMore       bool              `json:"has_more"`
				EventsHasMore bool              `json:"events_has_more"`
				Reset         bool              `json:"reset"`
			} `json:"result"`
		}
		if err := json.Unmarshal(f, &rep); err != nil || rep.Result == nil || rep.Result.Reset {
			t.Fatalf("watch since %d: %.200s", next, f)
		}
		replies++
		size := 0
		for _, ev := range rep.Result.Events {
			size += len(ev)
			var e client.Event
			if err := json.Unmarshal(ev, &e); err != nil {
				t.Fatal(err)
			}
			if e.Seq != next+1 {
				t.Fatalf("event seq %d after %d", e.Seq, next)
			}
			next = e.Seq
		}
		if size > 1<<20 {
			t.Fatalf("one reply carries %d bytes of events", size)
		}
		if rep.Result.HasMore != rep.Result.EventsHasMore {
			t.Fatalf("has_more %v, events_has_more %v", rep.Result.HasMore, rep.Result.EventsHasMore)
		}
		if !rep.Result.HasMore {
			break
		}
	}
	if next != last || replies < 2 {
		t.Fatalf("resumed to %d of %d in %d replies", next, last, replies)
	}
	// Still connected and answering.
	r.write(`{"id":99,"op":"me"}`)
	if m := r.reply(); m["result"] == nil {
		t.Fatalf("me: %v", m)
	}

	// The Go client pages by itself: every event once, in order.
	bob2 := dial(t, n, "bob")
	if _, err := bob2.Watch(ctx, "big", &since); err != nil {
		t.Fatal(err)
	}
	for want := since + 1; want <= last; want++ {
		select {
		case e := <-bob2.Events():
			if e.Seq != want {
				t.Fatalf("client event %s seq %d, want %d", e.Name, e.Seq, want)
			}
		case <-ctx.Done():
			t.Fatalf("client waits for seq %d of %d", want, last)
		}
	}
	if !bob2.Connected() {
		t.Fatal("client disconnected")
	}
}

// TestReplyLargerThanTheQueueIsDelivered: a messages.history page of 100
// large messages is larger than the whole outbound queue; it reaches a
// client that keeps up instead of closing its session.
func TestReplyLargerThanTheQueueIsDelivered(t *testing.T) {
	n := testNode(t, func(c *Config) { c.Gateway.QueueBytes = 256 << 10 })
	ctx := ctxT(t)
	alice := dial(t, n, "alice")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "big", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	fillLarge(t, alice, "big", 100)
	r := rawDial(t, n)
	r.connect("alice")
	r.write(`{"id":2,"op":"messages.history","args":{"channel":"big","limit":100}}`)
	f := r.rawReply()
	var rep struct {
		Result *protocol.HistoryResult `json:"result"`
	}
	if err := json.Unmarshal(f, &rep); err != nil || rep.Result == nil || len(rep.Result.Messages) != 100 {
		t.Fatalf("history: %.200s", f)
	}
	if len(f) <= 256<<10 {
		t.Fatalf("the reply is %d bytes: not larger than the queue", len(f))
	}
	r.write(`{"id":3,"op":"me"}`)
	if m := r.reply(); m["result"] == nil {
		t.Fatalf("me: %v", m)
	}
}

// TestOnResumedWaitsForEveryPage: a client that missed more than one
// resume reply carries calls OnResumed only once every page is in, so
// everything it missed was delivered by then.
func TestOnResumedWaitsForEveryPage(t *testing.T) {
	n := authNode(t)
	ctx := ctxT(t)
	signer := auth.NewSigner(testSecret)
	gate := make(chan struct{})
	var dials atomic.Int32
	resumed := make(chan uint64, 1)
	var bob *client.Client
	bob, err := client.Dial(ctx, client.Options{
		URLs: []string{"ws://" + n.Addr() + "/v1/ws"},
		TokenFunc: func() (string, error) {
			if dials.Add(1) > 1 {
				<-gate // the reconnect waits while bob misses events
			}
			return signer.SessionToken(auth.Session{User: "bob"}, time.Hour)
		},
		OnEvent: func(client.Event) {},
		OnResumed: func() {
			seq, _ := bob.LastSeq("big")
			resumed <- seq
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if _, _, err := bob.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "big", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	n.gw.DropAll(ctx)
	alice := dialAs(t, n, "alice", false)
	if _, err := alice.Join(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	last := fillLarge(t, alice, "big", 260) // two resume replies
	close(gate)
	select {
	case seq := <-resumed:
		if seq != last {
			t.Fatalf("OnResumed at seq %d, the channel is at %d", seq, last)
		}
	case <-ctx.Done():
		t.Fatal("no OnResumed")
	}
}
