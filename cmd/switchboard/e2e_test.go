package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/protocol"
)

// testNode boots a node in-process on loopback port 0 with its data in a
// temp dir, and closes it when the test ends. Its gossip and actor
// traffic go over a cluster.MemNetwork of its own unless mutate sets
// another: protoactor's gRPC transport sets a process-global logger on
// every start, which the race detector flags against another in-process
// node's gRPC goroutines (the real transport is tested in the process
// tests and in package cluster). Every test that builds a Config itself
// does the same.
func testNode(t *testing.T, mutate ...func(*Config)) *Node {
	t.Helper()
	cfg := Config{
		Listen:      "127.0.0.1:0",
		DataDir:     t.TempDir(),
		ClusterBind: "127.0.0.1:0",
		DevAuth:     true,
		Detection:   "fast",
		Logger:      testLogger(),
		Limits:      protocol.DefaultLimits(),
		Network:     cluster.NewMemNetwork(),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node run: %v", err)
		}
	})
	return n
}

func testLogger() *slog.Logger {
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func dial(t *testing.T, n *Node, user string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URLs: []string{"ws://" + n.Addr() + "/v1/ws"}, UserID: user})
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// nextEvent waits for the next event named name on c, skipping others.
func nextEvent(t *testing.T, c *client.Client, name string) client.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				t.Fatalf("event stream closed waiting for %s", name)
			}
			if e.Name == name {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event", name)
		}
	}
}

func TestSendReceiveHistory(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	alice := dial(t, n, "alice")
	bob := dial(t, n, "bob")

	ch, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "general", Type: protocol.TypeStandard, Name: "General"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if ch.ID != "general" || ch.MemberCount != 1 {
		t.Fatalf("created %+v", ch)
	}
	if _, err := bob.Join(ctx, "general"); err != nil {
		t.Fatalf("join: %v", err)
	}
	m, err := alice.Send(ctx, protocol.SendArgs{Channel: "general", Text: "hello bob"})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	// Bob's join added a system message (segment 1).
	if m.Segment != 2 {
		t.Fatalf("segment after bob's join = %d, want 2", m.Segment)
	}
	e := nextEvent(t, bob, protocol.EventMessageNew)
	var data protocol.MessageResult
	if err := json.Unmarshal(e.Data, &data); err != nil || data.Message.Text != "hello bob" {
		t.Fatalf("event %s: %v", e.Data, err)
	}
	h, err := bob.History(ctx, protocol.HistoryArgs{Channel: "general"})
	if err != nil || len(h.Messages) != 2 || h.Messages[0].Type != protocol.MessageSystem || h.Messages[1].ID != m.ID {
		t.Fatalf("history %+v %v", h, err)
	}
}
