package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

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

// largeSendFrame is a message.send frame of a message at the limits whose
// encoding is as large as they let it be: its text, data, metadata and
// tags are of '<', which every JSON the server writes escapes as \u003c,
// six bytes for one. A frame of about 24 KB makes a message of about
// 142 KB in replies and events.
func largeSendFrame(id int, ch, text string) string {
	obj, tags := largeParts()
	return `{"id":` + itoa(id) + `,"op":"message.send","args":{"channel":"` + ch + `","client_id":"c` + itoa(id) +
		`","text":"` + text + `","data":` + obj + `,"metadata":` + obj + `,"tags":` + tags + `}}`
}

// largeParts returns the data (and metadata) object and the tags of
// largeSendFrame, as JSON of unescaped '<'.
func largeParts() (obj, tags string) {
	l := protocol.DefaultLimits()
	t := make([]string, l.MaxTags)
	for i := range t {
		t[i] = `"` + fmt.Sprintf("%02d", i) + strings.Repeat("<", l.MaxNameLen-2) + `"`
	}
	return `{"d":"` + strings.Repeat("<", l.MaxDataBytes-8) + `"}`, "[" + strings.Join(t, ",") + "]"
}

// largeMessage is what the checks read of a message of largeSendFrame:
// its text, and the rest as the server wrote it (unescaping 140 KB of
// \u003c per message is slow under the race detector).
type largeMessage struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	Data     json.RawMessage `json:"data"`
	Metadata json.RawMessage `json:"metadata"`
	Tags     json.RawMessage `json:"tags"`
}

// okReply checks that f is the successful reply to request id, reading
// only its head.
func okReply(t *testing.T, f []byte, id int) {
	t.Helper()
	if !bytes.HasPrefix(f, []byte(`{"id":`+itoa(id)+`,"result":`)) {
		t.Fatalf("request %d: %.300s", id, f)
	}
}

// TestLargeRepliesCrossNodes: replies and events larger than gRPC's
// default 4 MB message limit cross between node processes intact. Clients
// on node a use a channel that node b owns: a watcher gets every large
// message.new live, a messages.history page of 100 large messages (about
// 14 MB) arrives whole, so does a resume reply of more than 4 MiB, and 64
// large sends in flight at once (replies and events batched together on
// the way back) are all answered. Before the transport's limits were set,
// the receiving node refused such a message and dropped the connection
// with everything queued on it: the reply never came and the request
// timed out.
func TestLargeRepliesCrossNodes(t *testing.T) {
	c := newTestCluster(t, "a", "b")
	ch := channelOwnedBy("big", "b", "a", "b")
	ctx := ctxT(t)
	owner := clusterClient(t, c.urls("a"), "owner")
	if _, _, err := owner.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard, Members: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	owner.Close() // watches no more
	// The watcher on a keeps the message.new events; liveCount decodes
	// what came since it last looked and counts the user messages.
	var mu sync.Mutex
	var events []client.Event
	bob := clusterClient(t, c.urls("a"), "bob", func(o *client.Options) {
		o.OnEvent = func(e client.Event) {
			if e.Name == protocol.EventMessageNew {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			}
		}
	})
	var live []*largeMessage
	decoded := 0
	liveCount := func() int {
		mu.Lock()
		fresh := events[decoded:]
		decoded = len(events)
		mu.Unlock()
		for _, e := range fresh {
			var d struct{ Message *largeMessage }
			if err := json.Unmarshal(e.Data, &d); err != nil || d.Message == nil {
				t.Fatalf("watcher: %.200s: %v", e.Data, err)
			}
			if d.Message.Type != protocol.MessageSystem {
				live = append(live, d.Message)
			}
		}
		return len(live)
	}
	j, err := bob.Join(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	since := j.Seq

	r := rawDialAddr(t, c.procs["a"].addr)
	r.connect("alice")
	const n = 100
	texts := make([]string, n)
	for i := range texts {
		texts[i] = fmt.Sprintf("%03d", i) + strings.Repeat("<", protocol.DefaultLimits().MaxTextLen-3)
		r.write(largeSendFrame(10+i, ch, texts[i]))
		okReply(t, r.nextRaw(), 10+i) // alice watches nothing: no events
	}
	// checkMessages checks that msgs are the large messages sent, whole:
	// the server's JSON escapes as Go's does.
	obj, tags := largeParts()
	wantObj, _ := json.Marshal(json.RawMessage(obj))
	wantTags, _ := json.Marshal(json.RawMessage(tags))
	checkMessages := func(what string, msgs []*largeMessage, first int) {
		t.Helper()
		for i, m := range msgs {
			if m.Text != texts[first+i] || !bytes.Equal(m.Data, wantObj) || !bytes.Equal(m.Metadata, wantObj) || !bytes.Equal(m.Tags, wantTags) {
				t.Fatalf("%s: message %d is not message %d as sent: %.40q", what, i, first+i, m.Text)
			}
		}
	}

	// Live: every message.new reached the watcher on a, in order.
	waitFor(t, 20*time.Second, "the watcher's 100 messages", func() bool { return liveCount() >= n })
	checkMessages("live", live, 0)

	// A history page of 100.
	r.write(`{"id":200,"op":"messages.history","args":{"channel":"` + ch + `","limit":100}}`)
	f := r.rawReply()
	var hist struct {
		Result *struct{ Messages []*largeMessage } `json:"result"`
	}
	if err := json.Unmarshal(f, &hist); err != nil || hist.Result == nil || len(hist.Result.Messages) != n {
		t.Fatalf("history: %.300s", f)
	}
	if len(f) <= 4<<20 {
		t.Fatalf("the history reply is %d bytes: not over 4 MiB", len(f))
	}
	checkMessages("history", hist.Result.Messages, 0)

	// A resume from before the messages: 1 MiB of events and the newest
	// page of 25.
	rb := rawDialAddr(t, c.procs["a"].addr)
	rb.connect("bob")
	rb.write(`{"id":2,"op":"channel.watch","args":{"channel":"` + ch + `","since_seq":` + itoa(int(since)) + `}}`)
	f = rb.rawReply()
	var w struct {
		Result *struct {
			Messages []*largeMessage
			Events   []json.RawMessage
			HasMore  bool `json:"has_more"`
		} `json:"result"`
	}
	if err := json.Unmarshal(f, &w); err != nil || w.Result == nil || len(w.Result.Events) == 0 || !w.Result.HasMore {
		t.Fatalf("resume: %.300s", f)
	}
	if len(f) <= 4<<20 {
		t.Fatalf("the resume reply is %d bytes: not over 4 MiB", len(f))
	}
	page := protocol.DefaultLimits().DefaultHistoryLimit
	checkMessages("resume page", w.Result.Messages, n-page)
	for i, raw := range w.Result.Events {
		var e client.Event
		if err := json.Unmarshal(raw, &e); err != nil || e.Seq != since+1+uint64(i) {
			t.Fatalf("resume event %d: seq %d, want %d (%v)", i, e.Seq, since+1+uint64(i), err)
		}
	}

	// 64 sends in flight: their replies and events go back to a together.
	const burst = 64
	errc := make(chan error, 1)
	go func() {
		for i := range burst {
			wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := r.conn.Write(wctx, websocket.MessageText, []byte(largeSendFrame(300+i, ch, texts[i])))
			cancel()
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range burst {
		okReply(t, r.nextRaw(), 300+i) // in order: one session, one channel
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the watcher's burst", func() bool { return liveCount() >= n+burst })
	checkMessages("live burst", live[n:], 0)
}

// TestReplyOverTheEnvelopeBoundIsTooLarge: a reply larger than one
// envelope may be (cluster.MaxEnvelopeBytes, 32 MiB) gets too_large at
// once, and the session goes on. The default limits keep every reply
// under it; here data and metadata may be 1 MiB, so three messages make a
// page of about 38 MB. (One node is enough: the bound is applied where a
// reply is made, whether it crosses the network or not.)
func TestReplyOverTheEnvelopeBoundIsTooLarge(t *testing.T) {
	n := testNode(t, func(c *Config) {
		c.Limits.MaxDataBytes = 1 << 20
		c.Limits.MaxFrameBytes = 3 << 20
		// Each send makes about 12 MB of escaped JSON, which under -race
		// on 2 busy cores took more than the 10 s default.
		c.RequestTimeout = time.Minute
	})
	// Alice is a member who does not watch: her session gets the replies
	// only.
	owner := dial(t, n, "owner")
	if _, _, err := owner.CreateChannel(ctxT(t), protocol.ChannelCreateArgs{ID: "big", Type: protocol.TypeStandard, Members: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	owner.Close() // watches no more
	r := rawDial(t, n)
	// 2 MiB sends (each an entry of about 25 MB, its record and event
	// escaped, written to the raft log, then applied) and a 36 MB reply
	// made and measured: seconds each under -race on 2 busy cores.
	r.wait = time.Minute
	r.connect("alice")
	obj := `{"d":"` + strings.Repeat("<", 1<<20-8) + `"}`
	for i := range 3 {
		r.write(`{"id":` + itoa(10+i) + `,"op":"message.send","args":{"channel":"big","client_id":"c` + itoa(i) +
			`","data":` + obj + `,"metadata":` + obj + `}}`)
		okReply(t, r.nextRaw(), 10+i)
	}
	r.write(`{"id":20,"op":"messages.history","args":{"channel":"big","limit":3}}`)
	start := time.Now()
	m := r.reply()
	t.Logf("history reply in %v", time.Since(start))
	if errCode(m) != string(protocol.CodeTooLarge) || m["id"] != 20.0 {
		t.Fatalf("history of 3: %.300v", m)
	}
	r.write(`{"id":21,"op":"me"}`)
	if m := r.reply(); m["result"] == nil {
		t.Fatalf("me: %v", m)
	}
}
