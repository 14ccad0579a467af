package channel

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestReplyAnnouncesParent: a reply is message.new for the reply, then
// message.updated for the parent with its new reply_count; deleting a
// reply lowers the count and announces it too.
func TestReplyAnnouncesParent(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	parent := h.send("alice", "p", "parent")
	eff := h.do(caller("alice"), protocol.OpMessageSend, map[string]any{"channel": channelID, "client_id": "r1", "text": "reply", "parent_id": parent.ID})
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	if names := eventNames(t, eff); !slices.Equal(names, []string{protocol.EventMessageNew, protocol.EventMessageUpdated}) {
		t.Fatalf("events %v", names)
	}
	var upd messageEvent
	_ = json.Unmarshal(decodeFrame(t, eff.Events[1].Frame).Data, &upd)
	if upd.Message.ID != parent.ID || upd.Message.ReplyCount != 1 || upd.Actor != "alice" {
		t.Fatalf("parent update %+v", upd)
	}
	r2 := h.reply("alice", "r2", parent.ID)

	eff = h.do(caller("alice"), protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": r2.ID})
	if names := eventNames(t, eff); !slices.Equal(names, []string{protocol.EventMessageUpdated, protocol.EventMessageDeleted}) {
		t.Fatalf("delete events %v", names)
	}
	_ = json.Unmarshal(decodeFrame(t, eff.Events[0].Frame).Data, &upd)
	if upd.Message.ID != parent.ID || upd.Message.ReplyCount != 1 {
		t.Fatalf("parent after delete %+v", upd.Message)
	}
	// The deleted reply stays in the thread as a tombstone.
	th := h.history(caller("alice"), map[string]any{"parent_id": parent.ID})
	if len(th.Messages) != 2 || !th.Messages[1].Deleted {
		t.Fatalf("thread %+v", th.Messages)
	}
	// Replies to a deleted parent are still threaded under it.
	ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": parent.ID})
	h.fail(caller("alice"), protocol.OpMessagesHistory, map[string]any{"channel": channelID, "parent_id": r2.ID}, protocol.CodeBadRequest)
	h.fail(caller("alice"), protocol.OpMessagesHistory, map[string]any{"channel": channelID, "parent_id": "77-0000000000000000"}, protocol.CodeNotFound)
}

// TestThreadPagesByIndex: a thread whose replies are spread over a long
// channel pages through its index: every page is exact, has_more and
// next_before/next_after continue it, even with a scan budget far smaller
// than the channel, and even while the writes are not yet durable.
func TestThreadPagesByIndex(t *testing.T) {
	t.Parallel() // CPU-bound on its own harness: shares nothing
	for _, manual := range []bool{false, true} {
		t.Run(fmt.Sprint("pending=", manual), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.MessageCache = 4; c.Rich.AuxCache = 4; c.Rich.ScanBudget = 50 })
			h.manual = manual
			h.create("alice", protocol.TypeStandard, nil)
			parent := h.send("alice", "p", "parent")
			var want []uint64
			for i := 0; i < 12; i++ {
				for j := 0; j < 30; j++ {
					h.send("alice", fmt.Sprint("f", i, "-", j), "filler")
				}
				want = append(want, h.reply("alice", fmt.Sprint("r", i), parent.ID).Segment)
			}
			if !manual {
				h.reload()
			}
			// Backward, three at a time.
			var got []uint64
			args := map[string]any{"parent_id": parent.ID, "limit": 3}
			for {
				r := ok[protocol.HistoryResult](h, caller("alice"), protocol.OpMessagesHistory, withChannel(args))
				got = append(segmentsOf(r.Messages), got...)
				if !r.HasMore {
					break
				}
				if r.NextBefore == nil || *r.NextBefore != r.Messages[0].Segment {
					t.Fatalf("next_before %v for page %v", r.NextBefore, segmentsOf(r.Messages))
				}
				args["before"] = *r.NextBefore
			}
			if !slices.Equal(got, want) {
				t.Fatalf("backward %v, want %v", got, want)
			}
			// Forward, five at a time.
			got = nil
			args = map[string]any{"parent_id": parent.ID, "limit": 5, "after": 0}
			for {
				r := ok[protocol.HistoryResult](h, caller("alice"), protocol.OpMessagesHistory, withChannel(args))
				got = append(got, segmentsOf(r.Messages)...)
				if !r.HasMore {
					break
				}
				args["after"] = *r.NextAfter
			}
			if !slices.Equal(got, want) {
				t.Fatalf("forward %v, want %v", got, want)
			}
			p := h.history(caller("alice"), map[string]any{"limit": 1, "after": 0}).Messages[0]
			if p.ReplyCount != 12 {
				t.Errorf("reply_count %d", p.ReplyCount)
			}
		})
	}
}

// TestSearchPagesPastTheBudget: a search that runs out of its scan budget
// says has_more with the segment to continue below, so paging never
// stalls on an empty page and finds every match.
func TestSearchPagesPastTheBudget(t *testing.T) {
	t.Parallel() // CPU-bound on its own harness: shares nothing
	h := newHarness(t, func(c *Config) { c.MessageCache = 8; c.Rich.ScanBudget = 40 })
	h.create("alice", protocol.TypeStandard, nil)
	var want []uint64
	for i := 1; i <= 300; i++ {
		text := "noise"
		if i%97 == 0 || i == 1 {
			text = "the Needle here"
		}
		m := h.send("alice", fmt.Sprint("c", i), text)
		if text != "noise" {
			want = append(want, m.Segment)
		}
	}
	h.reload()
	var got []uint64
	args := map[string]any{"search": "needle", "limit": 2}
	pages := 0
	for {
		pages++
		r := ok[protocol.HistoryResult](h, caller("alice"), protocol.OpMessagesHistory, withChannel(args))
		got = append(segmentsOf(r.Messages), got...)
		if !r.HasMore {
			break
		}
		if r.NextBefore == nil {
			t.Fatal("has_more without next_before")
		}
		args["before"] = *r.NextBefore
	}
	if !slices.Equal(got, want) {
		t.Fatalf("found %v, want %v", got, want)
	}
	if pages < 300/40 {
		t.Errorf("%d pages: the budget did not bound the scans", pages)
	}
}

func withChannel(args map[string]any) map[string]any {
	a := map[string]any{"channel": channelID}
	for k, v := range args {
		a[k] = v
	}
	return a
}

func segmentsOf(ms []*protocol.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Segment
	}
	return out
}

func TestSearchWords(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	for i, text := range []string{"the quick brown fox", "Brown bread, quickly", "a fox", "QUICK"} {
		h.send("alice", fmt.Sprint("c", i), text)
	}
	for q, want := range map[string][]uint64{
		"quick brown":   {1, 2},
		"  FOX   quick": {1},
		"quick":         {1, 2, 4},
		"brown zebra":   nil,
	} {
		if got := segments(h.history(caller("alice"), map[string]any{"search": q}).Messages); !slices.Equal(got, want) {
			t.Errorf("%q: %v, want %v", q, got, want)
		}
	}
}
