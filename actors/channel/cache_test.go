package channel

import (
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestCachePinsDirty(t *testing.T) {
	c := newCache[string, int](2)
	for i := 1; i <= 5; i++ {
		c.write(fmt.Sprint("k", i), i, uint64(i))
	}
	if c.len() != 5 {
		t.Fatalf("len %d with 5 dirty records, want all 5 kept", c.len())
	}
	c.committed(3)
	if c.len() != 2 {
		t.Fatalf("len %d after k1..k3 became clean, want 2", c.len())
	}
	for _, k := range []string{"k4", "k5"} {
		if v, ok := c.get(k); !ok || !c.isDirty(k) {
			t.Errorf("%s: %v %v, want it pinned", k, v, ok)
		}
	}
	// Pinned records fill the bound: a clean record read now does not
	// stay.
	c.put("k6", 6)
	if _, ok := c.get("k6"); ok || c.len() != 2 {
		t.Errorf("len %d, k6 kept=%v; want only the 2 pinned records", c.len(), ok)
	}
	c.committed(5)
	c.put("k7", 7)
	if _, ok := c.get("k4"); ok || c.len() != 2 {
		t.Errorf("after committing everything: len %d, k4 kept=%v; want the 2 most recent", c.len(), ok)
	}
	// A rewrite re-pins with its new index.
	c.write("k5", 50, 7)
	c.committed(6)
	if !c.isDirty("k5") {
		t.Errorf("k5 unpinned by an older commit")
	}
	var dirty []string
	c.eachDirty(func(k string, _ int) { dirty = append(dirty, k) })
	if !slices.Equal(dirty, []string{"k5"}) {
		t.Errorf("dirty %v", dirty)
	}
}

// TestPendingWritesSurviveEviction writes through tiny caches into a store
// that sees nothing until commit: every read must still see every write,
// before the commit (from the pinned records) and after (from the store).
func TestPendingWritesSurviveEviction(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.MessageCache, c.MemberCache, c.IdemCache, c.RecentEvents = 1, 1, 1, 2
	})
	h.create("alice", protocol.TypeStandard, nil)
	h.manual = true
	users := []string{"u1", "u2", "u3", "u4"}
	for _, u := range users {
		h.join(caller(u), nil)
	}
	var sent []protocol.Message
	for i, u := range users {
		sent = append(sent, h.send(u, fmt.Sprint("c", i), fmt.Sprint("m", i+1)))
	}
	// u1 leaves again: the store still holds u1's membership.
	ok[struct{}](h, caller("u1"), protocol.OpChannelLeave, `{"channel":"general"}`)
	if !h.s.Pending() || h.log.Appended() != 1 {
		t.Fatalf("pending=%v appended=%d, want everything but the create pending", h.s.Pending(), h.log.Appended())
	}
	// 4 joins (each a system message and member.joined), 4 sends, a
	// leave (member.left and its system message).
	if h.s.msgs.len() < 9 || h.s.members.len() < 4 || h.s.idem.len() < 4 || len(h.s.recent) != 14 {
		t.Fatalf("caches %d/%d/%d recent %d: pending records were evicted",
			h.s.msgs.len(), h.s.members.len(), h.s.idem.len(), len(h.s.recent))
	}

	check := func(when string) {
		t.Helper()
		r := h.history(caller("alice"), nil)
		if !slices.Equal(segments(r.Messages), span(1, 9)) {
			t.Errorf("%s: history %v", when, segments(r.Messages))
		}
		for i, u := range users {
			again := ok[messageResult](h, caller(u), protocol.OpMessageSend,
				map[string]any{"channel": channelID, "client_id": fmt.Sprint("c", i), "text": "resend"}).Message
			if again.ID != sent[i].ID {
				t.Errorf("%s: resend by %s made %s, want %s", when, u, again.ID, sent[i].ID)
			}
			g := ok[protocol.ChannelResult](h, caller(u), protocol.OpChannelGet, `{"channel":"general"}`)
			if member := g.Member != nil; member != (u != "u1") {
				t.Errorf("%s: %s member=%v", when, u, member)
			}
		}
		h.checkResume(0)
	}
	check("pending")
	h.commit()
	if h.s.Pending() {
		t.Fatalf("still pending after commit")
	}
	if h.s.msgs.len() > 1 || h.s.members.len() > 1 || h.s.idem.len() > 1 || len(h.s.recent) > 2 {
		t.Errorf("after commit caches %d/%d/%d recent %d, want them back within their bounds",
			h.s.msgs.len(), h.s.members.len(), h.s.idem.len(), len(h.s.recent))
	}
	check("committed")
	h.reload()
	check("reloaded")
}

// TestCommittedOutOfOrder checks that Committed is monotonic: an older
// index reported late changes nothing.
func TestCommittedOutOfOrder(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MessageCache = 1 })
	h.create("alice", protocol.TypeStandard, nil)
	h.manual = true
	sendN(h, 3)
	pending := h.pending
	h.commit()
	n := h.s.msgs.len()
	h.s.Committed(pending[0].index)
	if h.s.msgs.len() != n || h.s.Pending() {
		t.Errorf("a late Committed changed the state")
	}
}
