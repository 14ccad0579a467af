package main

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestSIGKILLLosesNoAcknowledgedMessage runs a real node process, sends on
// several channels concurrently, kills the node with SIGKILL mid-traffic,
// restarts it on the same data directory, and checks that every
// acknowledged message is there with contiguous segments and seqs, that
// segments continue without reuse, and that resending an acknowledged
// client_id returns the original.
func TestSIGKILLLosesNoAcknowledgedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	args := []string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", dir, "--node-name", "n1", "--failure-detection", "fast"}
	p := startProc(t, args...)
	ctx := ctxT(t)
	channels := []string{"k1", "k2", "k3", "k4"}

	type acked struct {
		clientID string
		msg      *protocol.Message
	}
	var mu sync.Mutex
	ack := map[string][]acked{}
	total := 0

	admin := procDial(t, p.url(), "owner")
	for _, ch := range channels {
		if _, _, err := admin.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: protocol.TypeStandard}); err != nil {
			t.Fatal(err)
		}
	}
	sendCtx, stopSending := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, ch := range channels {
		c, err := client.Dial(ctx, client.Options{URLs: []string{p.url()}, UserID: "owner", NoReconnect: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Go(func() {
			for j := 0; ; j++ {
				cid := ch + "-" + itoa(i) + "-" + itoa(j)
				m, err := c.Send(sendCtx, protocol.SendArgs{Channel: ch, Text: cid, ClientID: cid})
				if err != nil {
					return // killed (or stopped): the outcome of this one is unknown
				}
				mu.Lock()
				ack[ch] = append(ack[ch], acked{cid, m})
				total++
				mu.Unlock()
			}
		})
	}
	waitFor(t, 20*time.Second, "200 acknowledged sends", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return total >= 200
	})
	p.kill()
	stopSending()
	wg.Wait()

	p = startProc(t, args...)
	c := procDial(t, p.url(), "owner")
	for _, ch := range channels {
		msgs := allMessages(t, c, ch)
		bySeg := map[uint64]*protocol.Message{}
		for i, m := range msgs {
			if m.Segment != uint64(i+1) {
				t.Fatalf("%s: message %d has segment %d: segments must be contiguous from 1", ch, i, m.Segment)
			}
			bySeg[m.Segment] = m
		}
		for _, a := range ack[ch] {
			got := bySeg[a.msg.Segment]
			if got == nil || got.ID != a.msg.ID || got.ClientID != a.clientID {
				t.Fatalf("%s: acknowledged %s (segment %d) lost after SIGKILL", ch, a.clientID, a.msg.Segment)
			}
		}
		events := allEvents(t, c, ch)
		newSeen := map[string]bool{}
		for i, e := range events {
			if e.Seq != uint64(i+1) {
				t.Fatalf("%s: event %d has seq %d: seqs must be contiguous from 1", ch, i, e.Seq)
			}
			if e.Name == protocol.EventMessageNew {
				var d protocol.MessageResult
				_ = json.Unmarshal(e.Data, &d)
				if newSeen[d.Message.ClientID] {
					t.Fatalf("%s: two message.new for %s", ch, d.Message.ClientID)
				}
				newSeen[d.Message.ClientID] = true
			}
		}
		if len(newSeen) != len(msgs) {
			t.Fatalf("%s: %d message.new events for %d messages", ch, len(newSeen), len(msgs))
		}
		// Segments continue without reuse; an acknowledged resend returns
		// the original.
		next, err := c.Send(ctx, sendArgs(ch, "after restart"))
		if err != nil || next.Segment != uint64(len(msgs)+1) {
			t.Fatalf("%s: next send %+v %v, want segment %d", ch, next, err, len(msgs)+1)
		}
		if len(ack[ch]) > 0 {
			a := ack[ch][len(ack[ch])-1]
			again, err := c.Send(ctx, protocol.SendArgs{Channel: ch, Text: "resend", ClientID: a.clientID})
			if err != nil || again.ID != a.msg.ID {
				t.Fatalf("%s: resend of %s = %+v %v, want the original", ch, a.clientID, again, err)
			}
		}
	}
	t.Logf("acknowledged before SIGKILL: %d across %d channels", total, len(channels))
}

func procDial(t *testing.T, url, user string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URLs: []string{url}, UserID: user})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// allMessages pages through a channel's whole history, oldest first.
func allMessages(t *testing.T, c *client.Client, ch string) []*protocol.Message {
	t.Helper()
	var out []*protocol.Message
	after := uint64(0)
	for {
		h, err := c.History(ctxT(t), protocol.HistoryArgs{Channel: ch, After: &after, Limit: ptr(100)})
		if err != nil {
			t.Fatalf("history %s: %v", ch, err)
		}
		out = append(out, h.Messages...)
		if !h.HasMore || len(h.Messages) == 0 {
			return out
		}
		after = h.Messages[len(h.Messages)-1].Segment
	}
}

// allEvents replays a channel's whole event log through watch since_seq.
func allEvents(t *testing.T, c *client.Client, ch string) []client.Event {
	t.Helper()
	var out []client.Event
	since := uint64(0)
	for {
		var r protocol.WatchResult
		err := c.Call(ctxT(t), protocol.OpChannelWatch, protocol.WatchArgs{Channel: ch, SinceSeq: &since}, &r)
		if err != nil {
			t.Fatalf("watch %s: %v", ch, err)
		}
		if r.Reset {
			t.Fatalf("watch %s since %d: reset", ch, since)
		}
		for _, raw := range r.Events {
			var e client.Event
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
			since = e.Seq
		}
		if !r.EventsHasMore {
			return out
		}
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
