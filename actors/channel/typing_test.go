package channel

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// typingEvents decodes eff's typing events as "user:on" / "user:off".
func typingEvents(t *testing.T, eff *Effects) []string {
	t.Helper()
	return unsequenced(t, eff, protocol.EventTyping, func(te protocol.TypingEvent) string {
		if te.Active {
			return te.User + ":on"
		}
		return te.User + ":off"
	})
}

func (h *harness) typing(user, op string) []string {
	h.t.Helper()
	eff := h.do(caller(user), op, map[string]any{"channel": channelID})
	if eff.Err != nil {
		h.t.Fatalf("%s: %v", op, eff.Err)
	}
	if eff.Entry != nil {
		h.t.Fatalf("%s wrote an entry", op)
	}
	return typingEvents(h.t, eff)
}

// tickAt advances the clock to at and delivers the tick the adapter would.
func (h *harness) tickAt(at time.Time) []string {
	h.t.Helper()
	h.now = at
	eff := h.do(Caller{}, OpTick, nil)
	if eff.Err != nil {
		h.t.Fatal(eff.Err)
	}
	return typingEvents(h.t, eff)
}

func TestTyping(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	h.join(caller("bob"), nil)
	start, stop := protocol.OpTypingStart, protocol.OpTypingStop
	want := func(got []string, w ...string) {
		t.Helper()
		if !slices.Equal(got, w) {
			t.Fatalf("typing events %v, want %v", got, w)
		}
	}
	if _, ok := h.s.NextWake(); ok {
		t.Fatal("a wake-up with nobody typing")
	}
	want(h.typing("alice", start), "alice:on")
	// Renewals within the TTL say nothing more and push the lapse back.
	h.tick(2 * time.Second)
	want(h.typing("alice", start))
	if at, _ := h.s.NextWake(); !at.Equal(h.now.Add(6 * time.Second)) {
		t.Fatalf("next wake %v, want the renewed lapse", at.Sub(t0))
	}
	want(h.typing("alice", stop), "alice:off")
	if !slices.Equal(h.s.Typing(), nil) {
		t.Errorf("typing set %v after stop", h.s.Typing())
	}

	// Coalescing: a start within a second of the stop is held back, and
	// announced when the second is up.
	h.tick(300 * time.Millisecond)
	want(h.typing("alice", start))
	at, ok := h.s.NextWake()
	if !ok || !at.Equal(h.now.Add(700*time.Millisecond)) {
		t.Fatalf("next wake %v", at.Sub(h.now))
	}
	want(h.tickAt(at), "alice:on")
	// A stop and a start within the second cancel out: nothing is said.
	h.tick(200 * time.Millisecond)
	want(h.typing("alice", stop))
	h.tick(200 * time.Millisecond)
	want(h.typing("alice", start))
	want(h.tickAt(h.now.Add(time.Second)))
	if !slices.Equal(h.s.Typing(), []string{"alice"}) {
		t.Errorf("typing set %v", h.s.Typing())
	}

	// A start lapses TypingTTL after the last renewal, announced by a tick.
	at, _ = h.s.NextWake()
	want(h.tickAt(at.Add(-time.Millisecond)))
	want(h.tickAt(at), "alice:off")
	if _, ok := h.s.NextWake(); ok {
		h.tickAt(h.now.Add(time.Second))
	}
	if _, ok := h.s.NextWake(); ok || len(h.s.rich.typing) != 0 {
		t.Errorf("lapsed typist kept: %v", h.s.rich.typing)
	}

	// Sending a message ends one's typing.
	h.tick(5 * time.Second)
	want(h.typing("bob", start), "bob:on")
	h.tick(2 * time.Second)
	eff := h.do(caller("bob"), protocol.OpMessageSend, map[string]any{"channel": channelID, "client_id": "x", "text": "done"})
	if got := typingEvents(t, eff); !slices.Equal(got, []string{"bob:off"}) {
		t.Errorf("send: typing events %v", got)
	}
	// Stopping when not typing is fine and silent.
	want(h.typing("carol", stop))
	h.fail(caller("carol"), start, map[string]any{"channel": channelID}, protocol.CodeNotMember)
}

func TestTypingLiveAndConfigurable(t *testing.T) {
	h := newHarness(t)
	c := h.create("host", protocol.TypeLive, nil)
	if c.Channel.TypingEvents == nil || *c.Channel.TypingEvents {
		t.Fatalf("live channel typing_events %v, want false", c.Channel.TypingEvents)
	}
	h.join(caller("viewer"), nil)
	if got := h.typing("viewer", protocol.OpTypingStart); len(got) != 0 {
		t.Fatalf("typing in a live channel: %v", got)
	}
	r := ok[protocol.ChannelResult](h, caller("host"), protocol.OpChannelUpdate, map[string]any{"channel": channelID, "typing_events": true})
	if !*r.Channel.TypingEvents {
		t.Fatal("update did not turn typing on")
	}
	h.reload()
	h.join(caller("viewer"), nil)
	if got := h.typing("viewer", protocol.OpTypingStart); !slices.Equal(got, []string{"viewer:on"}) {
		t.Fatalf("after enabling: %v", got)
	}
	h2 := newHarness(t)
	c = h2.create("alice", protocol.TypeStandard, map[string]any{"typing_events": false})
	if *c.Channel.TypingEvents {
		t.Fatal("create with typing_events false")
	}
}

func TestTypingBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Rich.MaxTypists = 3 })
	h.create("alice", protocol.TypeStandard, nil)
	var on int
	for i := 0; i < 5; i++ {
		u := fmt.Sprint("u", i)
		h.join(caller(u), nil)
		on += len(h.typing(u, protocol.OpTypingStart))
	}
	if on != 3 || len(h.s.rich.typing) != 3 {
		t.Fatalf("%d announced, %d tracked; want 3", on, len(h.s.rich.typing))
	}
	// Once the first lapse, room is made for others.
	at, _ := h.s.NextWake()
	if got := h.tickAt(at); len(got) != 3 {
		t.Fatalf("lapse: %v", got)
	}
	h.tick(time.Second)
	if got := h.typing("u4", protocol.OpTypingStart); !slices.Equal(got, []string{"u4:on"}) {
		t.Fatalf("after the lapse: %v", got)
	}
}

func TestFavorites(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Rich.MaxFavorites = 2 })
	h.create("alice", protocol.TypeStandard, nil)
	h.join(caller("bob"), nil)
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, h.send("alice", fmt.Sprint("c", i), "x").ID)
	}
	fav := func(user, id string, on bool) *Effects {
		return h.do(caller(user), protocol.OpMessageFavorite, map[string]any{"channel": channelID, "message_id": id, "on": on})
	}
	for _, id := range ids[:2] {
		if eff := fav("bob", id, true); eff.Err != nil || len(eff.Events) != 0 {
			t.Fatalf("favorite: %v, %d events", eff.Err, len(eff.Events))
		}
	}
	if eff := fav("bob", ids[0], true); eff.Err != nil || eff.Entry != nil {
		t.Fatalf("favorite again: %v", eff.Err)
	}
	h.fail(caller("bob"), protocol.OpMessageFavorite, map[string]any{"channel": channelID, "message_id": ids[2], "on": true}, protocol.CodeTooLarge)
	h.fail(caller("bob"), protocol.OpMessageFavorite, map[string]any{"channel": channelID, "message_id": ids[2]}, protocol.CodeBadRequest)
	h.reload()
	favs := func(user string) []bool {
		var out []bool
		for _, m := range userMessages(h.history(caller(user), nil).Messages) {
			out = append(out, m.Favorite != nil && *m.Favorite)
		}
		return out
	}
	if got := favs("bob"); !slices.Equal(got, []bool{true, true, false, false}) {
		t.Errorf("bob's favorites %v", got)
	}
	if got := favs("alice"); !slices.Equal(got, []bool{false, false, false, false}) {
		t.Errorf("alice sees bob's favorites: %v", got)
	}
	fav("bob", ids[0], false)
	if eff := fav("bob", ids[3], true); eff.Err != nil {
		t.Fatalf("room after unfavorite: %v", eff.Err)
	}
	if got := favs("bob"); !slices.Equal(got, []bool{false, true, false, true}) {
		t.Errorf("bob's favorites %v", got)
	}
	// A single message's view shows it too (the reply of an edit).
	m := ok[messageResult](h, caller("alice"), protocol.OpMessageEdit, map[string]any{"channel": channelID, "message_id": ids[1], "text": "y"}).Message
	if m.Favorite == nil || *m.Favorite {
		t.Error("alice's edit shows bob's favorite")
	}
	h.fail(caller("eve"), protocol.OpMessageFavorite, map[string]any{"channel": channelID, "message_id": "9-00", "on": true}, protocol.CodeNotFound)
}
