package gateway

import (
	"bufio"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestCoalesceWindow: a channel's first events in a while are written at
// once; events within a window of the last write wait for the window's
// end, and join a write already due.
func TestCoalesceWindow(t *testing.T) {
	h := &hub{g: &Gateway{cfg: Config{CoalesceWindow: 5 * time.Millisecond}}, flushes: map[string]time.Time{}}
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	for i, c := range []struct {
		ch        string
		now, want time.Time
	}{
		{"live", ms(0), time.Time{}}, // quiet before: at once
		{"live", ms(1), ms(5)},       // within the window: at its end
		{"live", ms(3), ms(5)},       // joins that write
		{"live", ms(7), ms(10)},      // 2 ms after the last write
		{"other", ms(8), time.Time{}},
		{"live", ms(30), time.Time{}}, // quiet again
		{"", ms(31), time.Time{}},     // not a channel's events
	} {
		if got := h.coalesce(c.ch, c.now); !got.Equal(c.want) {
			t.Fatalf("step %d (%s at %v): %v, want %v", i, c.ch, c.now.Sub(t0), got.Sub(t0), c.want.Sub(t0))
		}
	}
	h.g.cfg.CoalesceWindow = -1
	if got := h.coalesce("live", ms(31)); !got.IsZero() {
		t.Fatalf("with no window: %v", got)
	}
}

// TestHeldSessionsAreWrittenWhenDue: sessions queued for later are not
// written before their time, and are once it has come, with what they
// were sent meanwhile.
func TestHeldSessionsAreWrittenWhenDue(t *testing.T) {
	h := newWriteHarness(t, nil)
	s, peer := h.session(false)
	if s.queue(frameMessage(protocol.FrameText, []byte("1"))) {
		h.g.writers.addAt([]*session{s}, time.Now().Add(time.Hour))
	}
	if s.queue(frameMessage(protocol.FrameText, []byte("2"))) {
		t.Fatal("a held session was woken again")
	}
	p := h.g.writers
	p.mu.Lock()
	if len(p.held) != 1 || p.n != 0 {
		t.Fatalf("%d held, %d queued", len(p.held), p.n)
	}
	p.held[0].at = time.Now() // its time has come
	p.mu.Unlock()
	p.release()
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := readMessages(bufio.NewReader(peer), 2)
	if err != nil || got[0] != "1" || got[1] != "2" {
		t.Fatalf("read %q, %v", got, err)
	}
}
