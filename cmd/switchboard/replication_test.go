package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Multi-process tests of replication: real `switchboard serve` processes
// on loopback, killed, paused and wiped. Each checks every channel's
// history against every acknowledgement (traffic.verify): every
// acknowledged message present exactly once, at its segment, segments
// contiguous, no segment with two contents.

// pause stops the process (SIGSTOP) until resume.
func (p *proc) pause() {
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		p.t.Fatal(err)
	}
}

func (p *proc) resume() {
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		p.t.Fatal(err)
	}
}

// located is GET /v1/cluster/locate.
type located struct {
	Shard    uint32   `json:"shard"`
	Leader   string   `json:"leader"`
	Term     uint64   `json:"term"`
	Replicas []string `json:"replicas"`
}

func (c *testCluster) locate(node, ch string) (located, error) {
	var l located
	resp, err := c.httpClient().Get("http://" + c.procs[node].addr + "/v1/cluster/locate?channel=" + ch)
	if err != nil {
		return l, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return l, fmt.Errorf("locate: %s", resp.Status)
	}
	return l, json.NewDecoder(resp.Body).Decode(&l)
}

// TestLocateAnswersAlikeEverywhere: every node names the same shard,
// leader and replicas for a channel, the leader one of the replicas.
func TestLocateAnswersAlikeEverywhere(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	for _, ch := range []string{"a", "b", "c", "general"} {
		var first located
		for i, n := range c.order {
			l, err := c.locate(n, ch)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = l
				continue
			}
			if l.Shard != first.Shard || l.Leader != first.Leader || strings.Join(l.Replicas, ",") != strings.Join(first.Replicas, ",") {
				t.Fatalf("%s: %s says %+v, %s says %+v", ch, c.order[0], first, n, l)
			}
		}
		if len(first.Replicas) != 3 || !strings.Contains(strings.Join(first.Replicas, ","), first.Leader) || first.Leader != owner(ch, "n1", "n2", "n3") {
			t.Fatalf("%s: %+v", ch, first)
		}
	}
}

// TestPausedLeaderIsReplacedAndServesNothingStale: the node leading a
// channel is paused (SIGSTOP) for longer than the election timeout while
// traffic goes on through the others; a new leader takes over. A read
// and a write were sent to the paused node's gateway during the pause:
// after SIGCONT it answers the read with everything acknowledged before
// it (or refuses, and the client's retry does), and its write is refused
// as a stale leader's (the client's retry lands it once, at the new
// leader). No segment is acknowledged twice.
func TestPausedLeaderIsReplacedAndServesNothingStale(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	ctx := ctxT(t)
	ch := channelOwnedBy("paused", "n2", "n1", "n2", "n3")
	admin := adminClient(t, c.urls("n1", "n3"))
	if _, _, err := admin.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard, Members: []string{"stale"}}); err != nil {
		t.Fatal(err)
	}
	stale := clusterClient(t, c.urls("n2"), "stale", func(o *client.Options) {
		o.MaxRetry = 30 * time.Second
		o.StallTimeout = -1 // its requests stay on the paused gateway
	})
	if _, err := stale.Join(ctx, ch); err != nil {
		t.Fatal(err)
	}
	tr := startTraffic(t, c.urls("n1", "n3"), []string{ch}, 2)
	tr.waitMore(t, 50, 30*time.Second)

	c.procs["n2"].pause()
	paused := time.Now()
	tr.waitMore(t, 50, 30*time.Second) // served by a new leader
	if l, err := c.locate("n1", ch); err != nil || l.Leader == "n2" || l.Leader == "" {
		t.Fatalf("while n2 is paused the channel is led by %+v (%v)", l, err)
	}
	acked := tr.perChannel()[ch]
	type outcome struct {
		msgs []*protocol.Message
		sent *protocol.Message
		err  error
	}
	read, write := make(chan outcome, 1), make(chan outcome, 1)
	go func() {
		msgs, err := historyRetrying(stale, ch)
		read <- outcome{msgs: msgs, err: err}
	}()
	go func() {
		m, err := stale.Send(context.Background(), protocol.SendArgs{Channel: ch, Text: "from the stale side", ClientID: "stale-1"})
		write <- outcome{sent: m, err: err}
	}()
	time.Sleep(time.Until(paused.Add(3 * time.Second))) // a pause well past the election timeout
	c.procs["n2"].resume()

	r := <-read
	if r.err != nil {
		t.Fatalf("read through the paused node after SIGCONT: %v", r.err)
	}
	if len(r.msgs) < acked {
		t.Fatalf("stale read: %d messages, but %d were acknowledged before the read was sent", len(r.msgs), acked)
	}
	w := <-write
	if w.err != nil {
		t.Fatalf("write through the paused node after SIGCONT: %v", w.err)
	}
	tr.waitMore(t, 50, 30*time.Second)
	tr.stop()
	tr.mu.Lock()
	tr.acked[ch] = append(tr.acked[ch], acked2(w.sent))
	tr.mu.Unlock()
	tr.verify(t, admin)
}

func acked2(m *protocol.Message) acked { return acked{clientID: m.ClientID, msg: m} }

// historyRetrying reads a channel's whole history, retrying refusals
// (a stale leader refuses to read until it has confirmed its leadership).
func historyRetrying(c *client.Client, ch string) ([]*protocol.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var out []*protocol.Message
	after := uint64(0)
	for {
		limit := 100
		h, err := c.History(ctx, protocol.HistoryArgs{Channel: ch, After: &after, Limit: &limit})
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Code == protocol.CodeUnavailable {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, h.Messages...)
		if !h.HasMore || len(h.Messages) == 0 {
			return out, nil
		}
		after = h.Messages[len(h.Messages)-1].Segment
	}
}

// TestWipedNodeIsRebuiltBySnapshot: a node loses its disk and comes back
// empty under its name (with --join): the shards' leaders replace its old
// replicas with new ones on its new store, filled by snapshot. Then
// another node is killed: the shards keep a majority only with the
// rebuilt replicas, and every acknowledged message is there.
func TestWipedNodeIsRebuiltBySnapshot(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	ctx := ctxT(t)
	channels := []string{channelOwnedBy("w", "n1", "n1", "n2", "n3"), channelOwnedBy("w", "n2", "n1", "n2", "n3"),
		channelOwnedBy("w", "n3", "n1", "n2", "n3")}
	admin := adminClient(t, c.urls("n1", "n2"))
	for _, ch := range channels {
		if _, _, err := admin.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
			t.Fatal(err)
		}
	}
	tr := startTraffic(t, c.urls("n1", "n2"), channels, 2)
	tr.waitMore(t, 150, 30*time.Second)
	c.procs["n3"].kill()
	if err := os.RemoveAll(c.dirs["n3"]); err != nil {
		t.Fatal(err)
	}
	tr.waitMore(t, 50, 30*time.Second)
	c.start("n3")
	c.waitAlive(3)
	c.waitSettled("n1", "n2", "n3")
	if got := c.metric("n3", `switchboard_raft_events_total{kind="snapshots_applied"}`); got < float64(DefaultShards) {
		t.Fatalf("n3 applied %v snapshots, want one per shard", got)
	}
	tr.waitMore(t, 50, 30*time.Second)
	c.procs["n1"].kill()
	tr2 := startTraffic(t, c.urls("n2", "n3"), channels, 1)
	tr2.waitMore(t, 30, 30*time.Second)
	tr.stop()
	tr2.stop()
	reader := clusterClient(t, c.urls("n2", "n3"), "reader")
	tr.verify(t, reader)
	tr2.verify(t, reader)
}

// metric reads one sample of a node's /metrics.
func (c *testCluster) metric(node, series string) float64 {
	c.t.Helper()
	resp, err := http.Get("http://" + c.procs[node].addr + "/metrics")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	c.t.Fatalf("%s has no %s", node, series)
	return 0
}

// TestQuorumLossRefusesThenRecovers: with two of three nodes killed, the
// survivor can neither elect itself nor serve: writes and reads answer
// unavailable, none is acknowledged (no split brain). Once the two come
// back, everything acknowledged before is there and writes go on.
func TestQuorumLossRefusesThenRecovers(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	ctx := ctxT(t)
	channels := []string{channelOwnedBy("q", "n1", "n1", "n2", "n3"), channelOwnedBy("q", "n2", "n1", "n2", "n3")}
	admin := adminClient(t, c.urls("n1"))
	for _, ch := range channels {
		if _, _, err := admin.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
			t.Fatal(err)
		}
	}
	tr := startTraffic(t, c.urls("n1"), channels, 2)
	tr.waitMore(t, 100, 30*time.Second)
	tr.stop()
	c.procs["n2"].kill()
	c.procs["n3"].kill()
	probe := clusterClient(t, c.urls("n1"), "admin", func(o *client.Options) { o.MaxRetry = time.Millisecond })
	refused := 0
	deadline := time.Now().Add(4 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		for _, ch := range channels {
			m, err := probe.Send(ctx, protocol.SendArgs{Channel: ch, Text: "alone", ClientID: fmt.Sprintf("alone-%d", i)})
			var pe *protocol.Error
			switch {
			case err == nil && time.Now().After(deadline.Add(-3*time.Second)):
				t.Fatalf("a lone node acknowledged segment %d of %s", m.Segment, ch)
			case err == nil:
				// Sent just as the others died: a leader may still have had
				// its followers' acknowledgement.
				tr.mu.Lock()
				tr.acked[ch] = append(tr.acked[ch], acked2(m))
				tr.mu.Unlock()
			case errors.As(err, &pe) && pe.Code == protocol.CodeUnavailable:
				refused++
			default:
				t.Fatalf("send without a quorum: %v", err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if refused == 0 {
		t.Fatal("no send was refused without a quorum")
	}
	c.start("n2")
	c.start("n3")
	c.waitAlive(3)
	c.waitSettled("n1", "n2", "n3")
	tr2 := startTraffic(t, c.urls("n1", "n3"), channels, 1)
	tr2.waitMore(t, 30, 30*time.Second)
	tr2.stop()
	tr.verify(t, admin)
	tr2.verify(t, admin)
}

// TestActivationOnAStaleLeaderIsRefused: n3 believes it leads a channel's
// shard whatever Raft says (the test build's --test-claim-channels), as a
// deposed leader that has not heard of its successor would: its gateway
// sends the channel's requests to its own host, which activates the
// channel in the term its follower replica knows. Raft refuses everything
// that activation proposes or confirms: it acknowledges no write and
// serves no read, while the real leader acknowledges every write, each
// stored once.
func TestActivationOnAStaleLeaderIsRefused(t *testing.T) {
	ch := channelOwnedBy("claimed", "n1", "n1", "n2", "n3")
	c := newTestCluster(t, "n1", "n2")
	c.start("n3", "--test-claim-channels", ch)
	c.waitAlive(3)
	c.waitSettled("n1", "n2", "n3")
	ctx := ctxT(t)
	a := clusterClient(t, c.urls("n1"), "alice")
	if _, _, err := a.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard, Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	if l, err := c.locate("n3", ch); err != nil || l.Leader != "n1" {
		t.Fatalf("the channel is led by %+v (%v), want n1", l, err)
	}
	b := clusterClient(t, c.urls("n3"), "bob", func(o *client.Options) { o.MaxRetry = time.Millisecond })
	unavailable := func(what string, err error) {
		t.Helper()
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.CodeUnavailable {
			t.Fatalf("%s on the claiming node: %v, want unavailable", what, err)
		}
	}
	after := uint64(0)
	for i := range 20 {
		if _, err := a.Send(ctx, sendArgs(ch, fmt.Sprintf("a%d", i))); err != nil {
			t.Fatalf("send %d at the leader: %v", i, err)
		}
		_, err := b.Send(ctx, sendArgs(ch, fmt.Sprintf("b%d", i)))
		unavailable("a send", err)
		_, err = b.History(ctx, protocol.HistoryArgs{Channel: ch, After: &after})
		unavailable("a read", err)
	}
	if got := c.metric("n3", `switchboard_actor_activations_total{kind="channel"}`); got == 0 {
		t.Fatal("the claiming node never activated the channel: the test proved nothing")
	}
	msgs := allMessages(t, a, ch)
	if len(msgs) != 20 {
		t.Fatalf("%d messages stored, want the leader's 20", len(msgs))
	}
	for i, m := range msgs {
		if m.Segment != uint64(i+1) || m.Text != fmt.Sprintf("a%d", i) {
			t.Fatalf("message %d: segment %d %q", i, m.Segment, m.Text)
		}
	}
}
