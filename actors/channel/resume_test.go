package channel

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// populate makes a standard channel owned by alice and gives it n rounds of
// varied events: joins, messages, edits, deletes, updates, leaves.
func populate(h *harness, n int) {
	h.t.Helper()
	if !h.s.Exists() {
		h.create("alice", protocol.TypeStandard, nil)
	}
	for i := 0; i < n; i++ {
		h.tick(time.Second)
		u := fmt.Sprintf("u%d", i%3)
		m := h.send("alice", fmt.Sprintf("a%d-%d", i, h.s.LastSeq()), fmt.Sprintf("message %d", i))
		switch i % 5 {
		case 0:
			h.join(caller(u), nil)
		case 1:
			ok[messageResult](h, caller("alice"), protocol.OpMessageEdit, map[string]any{"channel": channelID, "message_id": m.ID, "text": "edited"})
		case 2:
			ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": m.ID})
		case 3:
			ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, map[string]any{"channel": channelID, "name": fmt.Sprint("n", i)})
		case 4:
			if eff := h.do(caller(u), protocol.OpChannelLeave, `{"channel":"general"}`); eff.Err != nil && eff.Err.Code != protocol.CodeNotMember {
				h.t.Fatal(eff.Err)
			}
		}
	}
}

// resume watches from since, following events_has_more, and returns every
// event frame it got, how many replies it took, and whether it was reset.
func (h *harness) resume(c Caller, since uint64) (frames [][]byte, replies int, reset bool) {
	h.t.Helper()
	for {
		replies++
		if replies > 1000 {
			h.t.Fatalf("resume from %d does not end", since)
		}
		r := ok[watchResult](h, c, protocol.OpChannelWatch, map[string]any{"channel": channelID, "since_seq": since})
		if r.Reset {
			if len(r.Events) > 0 || r.EventsHasMore {
				h.t.Fatalf("reset with %d events, has_more=%v", len(r.Events), r.EventsHasMore)
			}
			return frames, replies, true
		}
		if max := h.cfg.Limits.MaxEventsPerReplay; len(r.Events) > max {
			h.t.Fatalf("%d events in one reply, max %d", len(r.Events), max)
		}
		if r.EventsHasMore && len(r.Events) == 0 {
			h.t.Fatalf("events_has_more with no events")
		}
		for _, ev := range r.Events {
			frames = append(frames, ev)
		}
		if !r.EventsHasMore {
			return frames, replies, false
		}
		since = decodeFrame(h.t, r.Events[len(r.Events)-1]).Seq
	}
}

// checkResume asserts that a resume from since returns exactly the events
// emitted after it, byte for byte.
func (h *harness) checkResume(since uint64) {
	h.t.Helper()
	frames, _, reset := h.resume(caller("watcher"), since)
	if reset {
		h.t.Fatalf("resume from %d (last %d): unexpected reset", since, h.s.LastSeq())
	}
	want := h.events[since:]
	if len(frames) != len(want) {
		h.t.Fatalf("resume from %d: %d events, want %d", since, len(frames), len(want))
	}
	for i := range want {
		if !bytes.Equal(frames[i], want[i].Frame) {
			h.t.Fatalf("resume from %d: event %d is\n%s\nwant\n%s", since, i, frames[i], want[i].Frame)
		}
	}
}

func TestResumeEverySince(t *testing.T) {
	t.Parallel() // CPU-bound on its own harness: shares nothing
	tests := []struct {
		name   string
		opts   func(*Config)
		reload bool
	}{
		{"memory", func(c *Config) {}, false},
		{"memory paged", func(c *Config) { c.Limits.MaxEventsPerReplay = 3 }, false},
		{"log", func(c *Config) {}, true},
		{"log paged", func(c *Config) { c.Limits.MaxEventsPerReplay = 3 }, true},
		{"small ring", func(c *Config) { c.RecentEvents = 4; c.Limits.MaxEventsPerReplay = 5 }, false},
		{"one per reply", func(c *Config) { c.RecentEvents = 2; c.Limits.MaxEventsPerReplay = 1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tt.opts)
			populate(h, 12)
			if tt.reload {
				h.reload()
			}
			for since := uint64(0); since <= h.s.LastSeq(); since++ {
				h.checkResume(since)
			}
			// New events after a reload: the older ones come from the
			// log, the newer from memory.
			populate(h, 4)
			for since := uint64(0); since <= h.s.LastSeq(); since++ {
				h.checkResume(since)
			}
		})
	}
}

func TestResumePaging(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.MaxEventsPerReplay = 4 })
	populate(h, 5)
	last := h.s.LastSeq()
	r := ok[watchResult](h, caller("w"), protocol.OpChannelWatch, map[string]any{"channel": channelID, "since_seq": 0})
	if len(r.Events) != 4 || !r.EventsHasMore || r.Reset || r.Seq != last {
		t.Fatalf("first page: %d events has_more=%v reset=%v seq=%d", len(r.Events), r.EventsHasMore, r.Reset, r.Seq)
	}
	_, replies, _ := h.resume(caller("w"), 0)
	if want := int(last+3) / 4; replies != want {
		t.Errorf("%d replies for %d events, want %d", replies, last, want)
	}
	// Exactly one page left: no has_more.
	r = ok[watchResult](h, caller("w"), protocol.OpChannelWatch, map[string]any{"channel": channelID, "since_seq": last - 4})
	if len(r.Events) != 4 || r.EventsHasMore {
		t.Errorf("last page: %d events has_more=%v", len(r.Events), r.EventsHasMore)
	}
}

func TestResumeUpToDate(t *testing.T) {
	h := newHarness(t)
	populate(h, 3)
	r := ok[watchResult](h, caller("w"), protocol.OpChannelWatch, map[string]any{"channel": channelID, "since_seq": h.s.LastSeq()})
	if len(r.Events) != 0 || r.EventsHasMore || r.Reset || r.Seq != h.s.LastSeq() {
		t.Errorf("up to date: %+v", r)
	}
}

func TestResumeReset(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.EventRetention = 5 })
	// A channel without events: since 0 is up to date, anything else is
	// from another life of the channel.
	h.create("alice", protocol.TypeStandard, nil)
	if _, _, reset := h.resume(caller("w"), 0); reset {
		t.Fatalf("since 0 on a channel without events was reset")
	}
	if _, _, reset := h.resume(caller("w"), 1); !reset {
		t.Fatalf("since 1 on a channel without events was not reset")
	}

	populate(h, 10)
	last := h.s.LastSeq()
	first := h.s.meta.FirstSeq
	if kept := last - first + 1; kept < 5 || kept > 6 {
		t.Fatalf("keeps seqs %d..%d, want about the retention of 5", first, last)
	}
	for round := 0; round < 2; round++ {
		for since := uint64(0); since+1 < first; since++ {
			if _, _, reset := h.resume(caller("w"), since); !reset {
				t.Errorf("since %d (first kept %d): not reset", since, first)
			}
		}
		for since := first - 1; since <= last; since++ {
			h.checkResume(since)
		}
		for _, since := range []uint64{last + 1, last + 100} {
			if _, _, reset := h.resume(caller("w"), since); !reset {
				t.Errorf("since %d beyond the last seq %d: not reset", since, last)
			}
		}
		// A join resuming from too far back resets too, and still joins.
		r := h.join(caller(fmt.Sprint("late", round)), u64(0))
		if !r.Reset || r.Member == nil || len(r.Events) != 0 {
			t.Errorf("join from 0: reset=%v member=%v events=%d", r.Reset, r.Member != nil, len(r.Events))
		}
		last, first = h.s.LastSeq(), h.s.meta.FirstSeq
		h.reload()
	}
	// The log itself keeps only the retained events.
	recs, err := h.log.Scan(persistence.TableEvent, persistence.Range{})
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := persistence.ParseU64(recs[0].Key); k != first || uint64(len(recs)) != last-first+1 {
		t.Errorf("log holds %d events from %d, want %d..%d", len(recs), k, first, last)
	}
}

func TestJoinSinceIncludesOwnJoin(t *testing.T) {
	h := newHarness(t)
	populate(h, 3)
	since := h.s.LastSeq()
	r := h.join(caller("newcomer"), u64(since))
	// The join's system message, then member.joined.
	if len(r.Events) != 2 || r.Seq != since+2 {
		t.Fatalf("join since %d: %d events, seq %d", since, len(r.Events), r.Seq)
	}
	if f := decodeFrame(t, r.Events[0]); f.Event != protocol.EventMessageNew || f.Seq != since+1 {
		t.Errorf("event %+v, want the system message at %d", f, since+1)
	}
	if f := decodeFrame(t, r.Events[1]); f.Event != protocol.EventMemberJoined || f.Seq != since+2 {
		t.Errorf("event %+v, want member.joined at %d", f, since+2)
	}
}

// TestResumePending resumes while entries are written but not durable: the
// store does not hold them yet, so they must come from memory, and nothing
// may be missed or repeated where memory and store meet.
func TestResumePending(t *testing.T) {
	t.Parallel() // CPU-bound on its own harness: shares nothing
	for _, ring := range []int{1, 3, 100} {
		t.Run(fmt.Sprint("ring ", ring), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.RecentEvents = ring; c.Limits.MaxEventsPerReplay = 4 })
			h.manual = true
			populate(h, 4)
			for step := 0; step < 4; step++ {
				for since := uint64(0); since <= h.s.LastSeq(); since++ {
					h.checkResume(since)
				}
				// Commit all but the newest few entries, then add more.
				keep := min(len(h.pending), 2)
				held := h.pending[len(h.pending)-keep:]
				h.pending = h.pending[:len(h.pending)-keep]
				h.commit()
				h.pending = held
				populate(h, 2)
			}
			h.commit()
			for since := uint64(0); since <= h.s.LastSeq(); since++ {
				h.checkResume(since)
			}
		})
	}
}

// TestJoinSincePaged resumes with a join whose missed events fill the
// reply: its own member.joined comes in the next one.
func TestJoinSincePaged(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.MaxEventsPerReplay = 3 })
	populate(h, 3)
	// A join adds two events: its system message and member.joined.
	for _, back := range []uint64{1, 2, 3} {
		user := fmt.Sprint("newcomer", back)
		since := h.s.LastSeq() - back
		r := h.join(caller(user), u64(since))
		if r.Reset || r.Seq != h.s.LastSeq() || len(r.Events) != 3 || r.EventsHasMore != (back >= 2) {
			t.Fatalf("join %d back: %d events has_more=%v reset=%v", back, len(r.Events), r.EventsHasMore, r.Reset)
		}
		frames, _, _ := h.resume(caller(user), since)
		if f := decodeFrame(t, frames[len(frames)-1]); f.Event != protocol.EventMemberJoined || f.Seq != h.s.LastSeq() {
			t.Errorf("join %d back: last event %+v, want its member.joined", back, f)
		}
		h.checkResume(since)
	}
}
