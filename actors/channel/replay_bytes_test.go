package channel

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// sendLarge sends n messages of the longest text the limits allow.
func sendLarge(h *harness, n int) {
	h.t.Helper()
	text := strings.Repeat("x", h.cfg.Limits.MaxTextLen)
	for i := range n {
		h.send("alice", fmt.Sprint("big-", h.s.LastSeq(), "-", i), text)
	}
}

// watchPages resumes from since as a client does (following
// events_has_more) and checks every reply's events against the byte
// budget: within it, or a single event alone. It returns the replies.
func watchPages(h *harness, c Caller, since uint64, budget int) int {
	h.t.Helper()
	replies := 0
	for {
		replies++
		if replies > 1000 {
			h.t.Fatalf("resume from %d does not end", since)
		}
		r := ok[watchResult](h, c, protocol.OpChannelWatch, map[string]any{"channel": channelID, "since_seq": since})
		size := 0
		for _, ev := range r.Events {
			size += len(ev)
		}
		if size > budget && len(r.Events) > 1 {
			h.t.Fatalf("reply from %d: %d events of %d bytes, budget %d", since, len(r.Events), size, budget)
		}
		if r.HasMore != r.EventsHasMore {
			h.t.Fatalf("has_more %v but events_has_more %v", r.HasMore, r.EventsHasMore)
		}
		if !r.EventsHasMore {
			return replies
		}
		if len(r.Events) == 0 {
			h.t.Fatalf("events_has_more with no events")
		}
		since = decodeFrame(h.t, r.Events[len(r.Events)-1]).Seq
	}
}

// TestReplayIsBoundedByBytes: a resume over large events pages by their
// encoded size as well as by count, from memory and from the log, and the
// pages together are exactly the events after since.
func TestReplayIsBoundedByBytes(t *testing.T) {
	t.Parallel() // CPU-bound on its own harness: shares nothing
	for _, reload := range []bool{false, true} {
		t.Run(fmt.Sprint("reload=", reload), func(t *testing.T) {
			const budget = 10 << 10 // two 4 KB events
			h := newHarness(t, func(c *Config) { c.ReplayBytes = budget })
			h.create("alice", protocol.TypeStandard, nil)
			sendLarge(h, 12)
			if reload {
				h.reload()
			}
			if replies := watchPages(h, caller("w"), 0, budget); replies != 6 {
				t.Fatalf("%d replies for 12 large events under a %d-byte budget, want 6", replies, budget)
			}
			for since := uint64(0); since <= h.s.LastSeq(); since++ {
				h.checkResume(since)
			}
		})
	}
}

// TestReplayDefaultBudget: without ReplayBytes a reply carries at most 1
// MiB of events, however few they are.
func TestReplayDefaultBudget(t *testing.T) {
	t.Parallel() // CPU-bound on its own harness: shares nothing
	h := newHarness(t, func(c *Config) { c.Limits.MaxTextLen = 60 << 10 })
	h.create("alice", protocol.TypeStandard, nil)
	sendLarge(h, 20) // about 1.2 MiB of events
	r := ok[watchResult](h, caller("w"), protocol.OpChannelWatch, map[string]any{"channel": channelID, "since_seq": 0})
	if !r.EventsHasMore || !r.HasMore || len(r.Events) >= 20 {
		t.Fatalf("first reply: %d events, has_more %v", len(r.Events), r.EventsHasMore)
	}
	if replies := watchPages(h, caller("w"), 0, defaultReplayBytes); replies != 2 {
		t.Fatalf("%d replies, want 2", replies)
	}
	h.checkResume(0)
}

// TestReplayOversizeEventGoesAlone: an event larger than the budget is
// still replayed, alone, so paging always advances; a join's own events
// wait for the next page when the budget is spent.
func TestReplayOversizeEventGoesAlone(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ReplayBytes = 100 })
	h.create("alice", protocol.TypeStandard, nil)
	sendLarge(h, 3)
	j := h.join(caller("bob"), u64(0))
	if len(j.Events) != 1 || !j.EventsHasMore || !j.HasMore {
		t.Fatalf("join: %d events, has_more %v", len(j.Events), j.EventsHasMore)
	}
	// The rest, bob's member.joined included, comes one per reply.
	if replies := watchPages(h, caller("bob"), 1, 100); replies != int(h.s.LastSeq())-1 {
		t.Fatalf("%d replies for %d events", replies, h.s.LastSeq()-1)
	}
	h.checkResume(0)
}
