package channel

import (
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// historyQueries run against a channel of 60 messages.
var historyQueries = []struct {
	args map[string]any
	want []uint64
	more bool
}{
	{nil, span(36, 60), true},
	{map[string]any{"limit": 100}, span(1, 60), false},
	{map[string]any{"limit": 60}, span(1, 60), false},
	{map[string]any{"limit": 59}, span(2, 60), true},
	{map[string]any{"limit": 1}, span(60, 60), true},
	{map[string]any{"before": 10, "limit": 5}, span(5, 9), true},
	{map[string]any{"before": 6, "limit": 5}, span(1, 5), false},
	{map[string]any{"before": 3}, span(1, 2), false},
	{map[string]any{"before": 1}, nil, false},
	{map[string]any{"before": 1000, "limit": 3}, span(58, 60), true},
	{map[string]any{"before": 61, "limit": 3}, span(58, 60), true},
	{map[string]any{"after": 10, "limit": 5}, span(11, 15), true},
	{map[string]any{"after": 50, "limit": 10}, span(51, 60), false},
	{map[string]any{"after": 55, "limit": 10}, span(56, 60), false},
	{map[string]any{"after": 58}, span(59, 60), false},
	{map[string]any{"after": 60}, nil, false},
	{map[string]any{"after": 1000}, nil, false},
	{map[string]any{"after": 0, "limit": 3}, span(1, 3), true},
	{map[string]any{"after": 0, "limit": 100}, span(1, 60), false},
	{map[string]any{"after": 5, "before": 10}, span(6, 9), false},
	{map[string]any{"after": 5, "before": 10, "limit": 2}, span(6, 7), true},
	{map[string]any{"after": 9, "before": 10}, nil, false},
	{map[string]any{"after": 20, "before": 10}, nil, false},
	{map[string]any{"top_level": true, "limit": 4}, span(57, 60), true},
}

func TestHistoryPages(t *testing.T) {
	t.Parallel() // CPU-bound on its own harness: shares nothing
	setups := []struct {
		name string
		opts func(*Config)
		// prepare sends 60 messages; it may leave entries pending.
		prepare func(h *harness)
	}{
		{"memory", func(c *Config) {}, func(h *harness) { sendN(h, 60) }},
		{"store", func(c *Config) { c.MessageCache = 3 }, func(h *harness) { sendN(h, 60); h.reload() }},
		{"store, cache of one", func(c *Config) { c.MessageCache = 1 }, func(h *harness) { sendN(h, 60); h.reload() }},
		{"pending", func(c *Config) { c.MessageCache = 3 }, func(h *harness) {
			// The store sees the first 40 sends only.
			sendN(h, 40)
			h.reload()
			h.manual = true
			sendN(h, 20)
		}},
		{"pending, reread", func(c *Config) { c.MessageCache = 3 }, func(h *harness) {
			h.manual = true
			sendN(h, 60)
			h.commit()
		}},
		{"pending interleaved", func(c *Config) { c.MessageCache = 2 }, func(h *harness) {
			h.manual = true
			for i := 0; i < 6; i++ {
				sendN(h, 10)
				if i%2 == 0 {
					h.commit()
				}
			}
		}},
	}
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, su.opts)
			h.create("alice", protocol.TypeStandard, nil)
			su.prepare(h)
			for round := 0; round < 2; round++ {
				for _, q := range historyQueries {
					r := h.history(caller("alice"), q.args)
					if got := segments(r.Messages); !slices.Equal(got, q.want) || r.HasMore != q.more {
						t.Errorf("round %d %v: %v has_more=%v, want %v has_more=%v", round, q.args, got, r.HasMore, q.want, q.more)
					}
					for _, m := range r.Messages {
						if m.Text != fmt.Sprint("m", m.Segment) {
							t.Fatalf("%v: segment %d has text %q", q.args, m.Segment, m.Text)
						}
					}
				}
				// Durable now: pinned records may leave the cache and
				// must read back the same from the store.
				h.manual = false
				h.commit()
			}
		})
	}
}

// sendN sends n messages whose text names their segment.
func sendN(h *harness, n int) {
	h.t.Helper()
	for i := 0; i < n; i++ {
		seg := h.s.LastSegment() + 1
		if m := h.send("alice", fmt.Sprint("c", seg), fmt.Sprint("m", seg)); m.Segment != seg {
			h.t.Fatalf("sent segment %d, want %d", m.Segment, seg)
		}
	}
}

func TestHistoryLimit(t *testing.T) {
	t.Parallel() // CPU-bound on its own harness: shares nothing
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	sendN(h, 120)
	for _, bad := range []string{`0`, `-1`, `101`, `1000`, `"10"`, `1.5`} {
		h.fail(caller("alice"), protocol.OpMessagesHistory, `{"channel":"general","limit":`+bad+`}`, protocol.CodeBadRequest)
	}
	for _, bad := range []string{`{"channel":"general","before":-1}`, `{"channel":"general","after":"x"}`, `[]`} {
		h.fail(caller("alice"), protocol.OpMessagesHistory, bad, protocol.CodeBadRequest)
	}
	if r := h.history(caller("alice"), nil); len(r.Messages) != protocol.DefaultLimits().DefaultHistoryLimit || !r.HasMore {
		t.Errorf("default page: %d messages has_more=%v", len(r.Messages), r.HasMore)
	}
	if r := h.history(caller("alice"), map[string]any{"limit": 100}); !slices.Equal(segments(r.Messages), span(21, 120)) || !r.HasMore {
		t.Errorf("limit 100: %v has_more=%v", segments(r.Messages), r.HasMore)
	}
}

// TestHistoryWalk pages through a channel in both directions and checks
// that every message comes exactly once.
func TestHistoryWalk(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MessageCache = 4 })
	h.create("alice", protocol.TypeStandard, nil)
	sendN(h, 50)
	h.reload()
	h.manual = true
	sendN(h, 23) // pending: only in memory
	var back []uint64
	args := map[string]any{"limit": 7}
	for {
		r := h.history(caller("alice"), args)
		back = append(segments(r.Messages), back...)
		if !r.HasMore {
			break
		}
		args = map[string]any{"limit": 7, "before": r.Messages[0].Segment}
	}
	var fwd []uint64
	args = map[string]any{"limit": 9, "after": 0}
	for {
		r := h.history(caller("alice"), args)
		fwd = append(fwd, segments(r.Messages)...)
		if !r.HasMore {
			break
		}
		args = map[string]any{"limit": 9, "after": r.Messages[len(r.Messages)-1].Segment}
	}
	if !slices.Equal(back, span(1, 73)) || !slices.Equal(fwd, span(1, 73)) {
		t.Errorf("walks:\nback %v\nfwd  %v", back, fwd)
	}
}

// TestHistoryPendingEdits checks that a pending edit or delete of a message
// the store already holds wins over the store's older copy.
func TestHistoryPendingEdits(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MessageCache = 2 })
	h.create("alice", protocol.TypeStandard, nil)
	sendN(h, 30)
	h.reload()
	h.manual = true
	ids := map[uint64]string{}
	for _, m := range h.history(caller("alice"), map[string]any{"limit": 30}).Messages {
		ids[m.Segment] = m.ID
	}
	ok[messageResult](h, caller("alice"), protocol.OpMessageEdit, map[string]any{"channel": channelID, "message_id": ids[5], "text": "edited"})
	ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": ids[20]})
	sendN(h, 5)
	check := func(when string) {
		t.Helper()
		for _, args := range []map[string]any{{"limit": 100}, {"after": 0, "limit": 100}, {"before": 21, "limit": 20}} {
			r := h.history(caller("alice"), args)
			for _, m := range r.Messages {
				want := fmt.Sprint("m", m.Segment)
				switch m.Segment {
				case 5:
					want = "edited"
				case 20:
					want = ""
				}
				if m.Text != want || m.Deleted != (m.Segment == 20) {
					t.Errorf("%s %v: segment %d text %q deleted %v, want %q", when, args, m.Segment, m.Text, m.Deleted, want)
				}
			}
		}
	}
	check("pending")
	h.commit()
	check("committed")
	h.reload()
	check("reloaded")
}

// TestHistoryReadsInChunks checks that a cold page costs a few range scans
// of the store, not one read per message, however small the cache.
func TestHistoryReadsInChunks(t *testing.T) {
	t.Parallel() // CPU-bound on its own harness: shares nothing
	for _, cache := range []int{1, 3, 512} {
		t.Run(fmt.Sprint("cache ", cache), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(c *Config) { c.MessageCache = cache })
			h.create("alice", protocol.TypeStandard, nil)
			sendN(h, 300)
			for _, args := range []map[string]any{
				{"limit": 100, "before": 150},
				{"limit": 100, "after": 20},
				{"limit": 25, "before": 60},
				{"limit": 100, "top_level": true, "before": 290},
			} {
				h.reload()
				h.r.scans, h.r.gets = 0, 0
				r := h.history(caller("alice"), args)
				if len(r.Messages) == 0 {
					t.Fatalf("%v: empty page", args)
				}
				if reads := h.r.scans + h.r.gets; reads > 4 {
					t.Errorf("%v: %d scans and %d gets for one page", args, h.r.scans, h.r.gets)
				}
			}
		})
	}
}
