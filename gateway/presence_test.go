package gateway

import (
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestPresenceWatchReservesSlots: a watch whose replies have not arrived
// yet holds its slots, so watches sent back to back cannot together pass
// max_presence_watch; returned slots are free again.
func TestPresenceWatchReservesSlots(t *testing.T) {
	// No heartbeat comes within the test: it never reaches the cluster.
	g := &Gateway{cfg: Config{Metrics: &Metrics{}, PresenceInterval: time.Hour, Limits: protocol.Limits{MaxPresenceWatch: 3}}}
	p := newPresence(g)
	defer p.close()
	s := &session{g: g, id: "s1", out: newOutbox(16, 1<<20)}
	p.opened(s)

	first, perr := p.admit(s, []string{"a", "b"})
	if perr != nil || first != 2 {
		t.Fatalf("first watch: %d slots, %v", first, perr)
	}
	if _, perr := p.admit(s, []string{"c", "d"}); perr == nil || perr.Code != protocol.CodeTooLarge {
		t.Fatalf("second watch while the first is in flight: %v, want too_large", perr)
	}
	if n, perr := p.admit(s, []string{"c"}); perr != nil || n != 1 {
		t.Fatalf("a watch within the limit: %d slots, %v", n, perr)
	}
	// The first request is answered: one user existed and is watched now.
	p.added(s, "a", []byte(`{"user":{"id":"a","status":"online"}}`))
	p.reserve(s, -first)
	p.reserve(s, -1)
	if n, perr := p.admit(s, []string{"a", "x", "y"}); perr != nil || n != 2 {
		t.Fatalf("after the replies: %d slots, %v; want 2 (a is watched already)", n, perr)
	}
	if n, perr := p.admit(s, []string{"z"}); perr == nil {
		t.Fatalf("a fourth user admitted (%d slots)", n)
	}
	p.reserve(s, -2)
	if len(p.pending) != 0 {
		t.Errorf("pending %v after every slot came back", p.pending)
	}
}
