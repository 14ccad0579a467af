package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestHealthAndReadiness: /healthz answers while the process is up;
// /readyz until the node drains.
func TestHealthAndReadiness(t *testing.T) {
	n := testNode(t)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + n.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		if code, body := get(path); code != http.StatusOK || body != want {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || body != "not ready" {
		t.Errorf("/readyz while drained: %d %q", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while drained: %d", code)
	}
}

// TestIdleChannelPassivatesAndComesBack: a channel nobody watches leaves
// memory after --passivate-after, and its next request activates it with
// everything it had.
func TestIdleChannelPassivatesAndComesBack(t *testing.T) {
	n := testNode(t, func(c *Config) { c.PassivateAfter = 200 * time.Millisecond })
	ctx := ctxT(t)
	alice := dial(t, n, "alice")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "idle", Type: protocol.TypeStandard, Name: "Idle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, sendArgs("idle", "kept")); err != nil {
		t.Fatal(err)
	}
	if err := alice.Unwatch(ctx, "idle"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the channel to passivate", func() bool {
		return counters(t, n, "switchboard_actor_passivations_total")["channel"] == 1
	})
	if a := counters(t, n, "switchboard_actors_active")["channel"]; a != 0 {
		t.Fatalf("%v channel actors active after passivation", a)
	}
	h, err := alice.History(ctx, protocol.HistoryArgs{Channel: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 1 || h.Messages[0].Text != "kept" {
		t.Fatalf("history after re-activation: %+v", h.Messages)
	}
	var got protocol.ChannelResult
	if err := alice.Call(ctx, protocol.OpChannelGet, protocol.ChannelRef{Channel: "idle"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Channel.Name != "Idle" || got.Channel.LastSegment != 1 {
		t.Fatalf("channel after re-activation: %+v", got.Channel)
	}
	m, err := alice.Send(ctx, sendArgs("idle", "next"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Segment != 2 {
		t.Fatalf("segment %d after re-activation, want 2", m.Segment)
	}
	if c := counters(t, n, "switchboard_actor_activations_total")["channel"]; c != 2 {
		t.Fatalf("%v channel activations, want 2", c)
	}
}
