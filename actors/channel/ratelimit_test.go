package channel

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestRateLimit(t *testing.T) {
	h := modChannel(t)
	ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, args("rate_limit", map[string]any{"count": 3, "window_ms": 1000}))
	start := h.now
	h.mustSend(caller("bob"), "b1")
	h.tick(100 * time.Millisecond)
	h.mustSend(caller("carol"), "c1")
	h.mustSend(caller("bob"), "b2")
	// From all senders together: the fourth within the window waits for
	// the first to leave it.
	h.sendFails(caller("carol"), "c2", protocol.CodeRateLimited, 900)
	// Moderators are exempt, and do not use up the budget.
	h.mustSend(caller("mod"), "m1")
	h.mustSend(caller("alice"), "a1")
	h.now = start.Add(time.Second - time.Millisecond)
	h.sendFails(caller("carol"), "c2", protocol.CodeRateLimited, 1)
	h.now = start.Add(time.Second) // exactly one window after the first
	h.mustSend(caller("carol"), "c2")
	h.sendFails(caller("bob"), "b3", protocol.CodeRateLimited, 100)
	// A resend of an accepted message is not a new send.
	ok[messageResult](h, caller("carol"), protocol.OpMessageSend, args("client_id", "c2", "text", "again"))

	// Lowering the count applies at once; turning it off lifts it.
	ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, args("rate_limit", map[string]any{"count": 1, "window_ms": 5000}))
	h.sendFails(caller("bob"), "b3", protocol.CodeRateLimited, 5000)
	ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, args("rate_limit", map[string]any{"count": 0, "window_ms": 0}))
	for i := range 10 {
		h.mustSend(caller("bob"), fmt.Sprint("free", i))
	}
	h.fail(caller("alice"), protocol.OpChannelUpdate, args("rate_limit", map[string]any{"count": maxRateCount + 1, "window_ms": 10}), protocol.CodeBadRequest)
}

func TestRateLimitStateIsBounded(t *testing.T) {
	h := modChannel(t)
	ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, args("rate_limit", map[string]any{"count": 5, "window_ms": 10}))
	for i := range 50 {
		h.tick(10 * time.Millisecond)
		h.mustSend(caller("bob"), fmt.Sprint("b", i))
	}
	if n := len(h.s.mod.limits.sends.buf); n != 5 {
		t.Errorf("rate limit keeps %d times, want 5", n)
	}
}

func TestSlowMode(t *testing.T) {
	h := modChannel(t)
	ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, args("slow_mode_ms", 2000))
	start := h.now
	h.mustSend(caller("bob"), "b1")
	// Per user: bob waits, carol does not.
	h.sendFails(caller("bob"), "b2", protocol.CodeRateLimited, 2000)
	h.sendFails(session("bob", "bob-phone", "gw2"), "b2", protocol.CodeRateLimited, 2000)
	h.mustSend(caller("carol"), "c1")
	h.mustSend(caller("mod"), "m1")
	h.mustSend(caller("mod"), "m2")
	h.now = start.Add(1999 * time.Millisecond)
	h.sendFails(caller("bob"), "b2", protocol.CodeRateLimited, 1)
	// A member's last send is in their record: a restart keeps it.
	h.reload()
	h.join(caller("bob"), nil)
	h.sendFails(caller("bob"), "b2", protocol.CodeRateLimited, 1)
	h.now = start.Add(2 * time.Second)
	h.mustSend(caller("bob"), "b2")
}

func TestSlowModeLiveViewersInMemoryBounded(t *testing.T) {
	t.Parallel() // CPU-bound on its own harness: shares nothing
	h := newHarness(t)
	h.create("alice", protocol.TypeLive, nil)
	ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, args("slow_mode_ms", 1000))
	for i := range 100 {
		h.join(caller(fmt.Sprint("v", i)), nil)
		h.mustSend(caller(fmt.Sprint("v", i)), "x")
	}
	h.sendFails(caller("v7"), "y", protocol.CodeRateLimited, 1000)
	if n := len(h.s.mod.limits.last); n != 100 {
		t.Fatalf("slow mode tracks %d users, want 100", n)
	}
	// Users whose wait is over are forgotten on the next send.
	h.tick(time.Second + time.Millisecond)
	h.mustSend(caller("v7"), "y")
	if n, o := len(h.s.mod.limits.last), len(h.s.mod.limits.order); n != 1 || o != 1 {
		t.Errorf("slow mode tracks %d users (%d queued), want 1", n, o)
	}
}

// TestTypingDuringSlowMode: waiting for one's slow-mode turn does not stop
// one typing (the next message); being muted does.
func TestTypingDuringSlowMode(t *testing.T) {
	h := modChannel(t)
	ok[protocol.ChannelResult](h, caller("alice"), protocol.OpChannelUpdate, args("slow_mode_ms", 2000))
	h.mustSend(caller("bob"), "b1")
	h.sendFails(caller("bob"), "b2", protocol.CodeRateLimited, 2000)
	ok[struct{}](h, caller("bob"), protocol.OpTypingStart, args())
	ok[protocol.MemberResult](h, caller("mod"), protocol.OpMemberMute, args("user", "bob", "duration_min", 0))
	h.fail(caller("bob"), protocol.OpTypingStart, args(), protocol.CodeMuted)
}
