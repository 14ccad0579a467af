package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestWatchSinceSeqReturnsExactlyMissedEvents: a session that went away at
// seq S and watches again with since_seq S gets exactly the persisted events
// after S — new, edited and deleted messages — and then live ones.
func TestWatchSinceSeqReturnsExactlyMissedEvents(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	alice := dial(t, n, "alice")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "r", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	first, err := alice.Send(ctx, sendArgs("r", "before"))
	if err != nil {
		t.Fatal(err)
	}

	bob := dial(t, n, "bob")
	j, err := bob.Join(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	since := j.Seq
	bob.Close()

	// While bob is away: a new message, an edit and a delete.
	m2, err := alice.Send(ctx, sendArgs("r", "while away"))
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Call(ctx, protocol.OpMessageEdit, map[string]any{"channel": "r", "message_id": m2.ID, "text": "edited"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := alice.Call(ctx, protocol.OpMessageDelete, protocol.MessageRef{Channel: "r", MessageID: first.ID}, nil); err != nil {
		t.Fatal(err)
	}

	bob2 := dial(t, n, "bob")
	w, err := bob2.Watch(ctx, "r", &since)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Events) != 3 || w.Reset || w.EventsHasMore {
		t.Fatalf("events %d reset %v more %v", len(w.Events), w.Reset, w.EventsHasMore)
	}
	want := []string{protocol.EventMessageNew, protocol.EventMessageUpdated, protocol.EventMessageDeleted}
	for i, raw := range w.Events {
		var e client.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		if e.Name != want[i] || e.Seq != since+uint64(i)+1 || e.Channel != "r" {
			t.Fatalf("event %d: %s seq %d, want %s seq %d", i, e.Name, e.Seq, want[i], since+uint64(i)+1)
		}
	}
	if w.Seq != since+3 {
		t.Fatalf("watch seq %d, want %d", w.Seq, since+3)
	}
	// The replayed events also came through bob2's stream, then live ones.
	for _, name := range want {
		nextEvent(t, bob2, name)
	}
	if _, err := alice.Send(ctx, sendArgs("r", "live")); err != nil {
		t.Fatal(err)
	}
	e := nextEvent(t, bob2, protocol.EventMessageNew)
	if e.Seq != since+4 {
		t.Fatalf("live event seq %d, want %d", e.Seq, since+4)
	}
	// Resuming from the current seq returns nothing.
	cur := e.Seq
	w, err = bob2.Watch(ctx, "r", &cur)
	if err != nil || len(w.Events) != 0 || w.Reset {
		t.Fatalf("resume at head: %+v %v", w, err)
	}
	// From the future: reset.
	future := cur + 100
	if w, err = bob2.Watch(ctx, "r", &future); err != nil || !w.Reset {
		t.Fatalf("resume from the future: %+v %v", w, err)
	}
}

// TestRestartKeepsMessagesAndIdempotency restarts a node on the same data
// directory: messages survive, segments continue, and a resend of an
// acknowledged client_id returns the original message.
func TestRestartKeepsMessagesAndIdempotency(t *testing.T) {
	dir := t.TempDir()
	start := func() (*Node, func()) {
		cfg := Config{Listen: "127.0.0.1:0", DataDir: dir, ClusterBind: "127.0.0.1:0", DevAuth: true,
			Detection: "fast", Logger: testLogger(), Limits: protocol.DefaultLimits(), NodeName: "n1", Network: cluster.NewMemNetwork()}
		n, err := NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		return n, func() { cancel(); <-done }
	}
	n, stop := start()
	ctx := ctxT(t)
	c := dial(t, n, "alice")
	if _, _, err := c.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "keep", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	var sent []*protocol.Message
	for i := range 30 {
		m, err := c.Send(ctx, protocol.SendArgs{Channel: "keep", Text: "m", ClientID: "cid-" + itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	c.Close()
	stop()

	n, stop = start()
	defer stop()
	c = dial(t, n, "alice")
	again, err := c.Send(ctx, protocol.SendArgs{Channel: "keep", Text: "different text", ClientID: "cid-7"})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != sent[7].ID || again.Segment != 8 || again.Text != "m" {
		t.Fatalf("resend after restart = %+v, want the original %+v", again, sent[7])
	}
	next, err := c.Send(ctx, sendArgs("keep", "after restart"))
	if err != nil || next.Segment != 31 {
		t.Fatalf("next segment %v %v, want 31", next, err)
	}
	h, err := c.History(ctx, protocol.HistoryArgs{Channel: "keep", Limit: ptr(100)})
	if err != nil || len(h.Messages) != 31 {
		t.Fatalf("history %d %v", len(h.Messages), err)
	}
	for i, m := range h.Messages {
		if m.Segment != uint64(i+1) {
			t.Fatalf("history[%d].segment = %d", i, m.Segment)
		}
	}
}

// TestClientReconnectsAndResumes drops a client's connection; it reconnects
// and resumes its channel without losing or repeating events.
func TestClientReconnectsAndResumes(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	alice := dial(t, n, "alice")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "r", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	bob := dial(t, n, "bob")
	if _, err := bob.Join(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, sendArgs("r", "one")); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, bob, protocol.EventMessageNew)

	// Cut every session on the node: bob's client must come back by itself.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n.gw.DropAll(cctx)
	for i := range 5 {
		if _, err := alice.Send(ctx, sendArgs("r", "while cut "+itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	nextEvent(t, bob, client.EventReconnected)
	seen := map[uint64]bool{}
	for len(seen) < 5 {
		e := nextEvent(t, bob, protocol.EventMessageNew)
		if seen[e.Seq] {
			t.Fatalf("seq %d delivered twice", e.Seq)
		}
		seen[e.Seq] = true
	}
}

func ptr[T any](v T) *T { return &v }
