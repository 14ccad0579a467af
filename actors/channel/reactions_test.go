package channel

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

func (h *harness) react(c Caller, op, msgID, name string) protocol.Message {
	h.t.Helper()
	return ok[messageResult](h, c, op, map[string]any{"channel": channelID, "message_id": msgID, "name": name}).Message
}

// reactionEvent decodes the only event of eff, which must be reaction.updated.
func reactionEvent(t *testing.T, eff *Effects) protocol.ReactionEvent {
	t.Helper()
	if len(eff.Events) != 1 {
		t.Fatalf("%d events, want one reaction.updated", len(eff.Events))
	}
	f := decodeFrame(t, eff.Events[0].Frame)
	if f.Event != protocol.EventReactionUpdated || f.Seq == 0 {
		t.Fatalf("event %s seq %d", f.Event, f.Seq)
	}
	var ev protocol.ReactionEvent
	if err := json.Unmarshal(f.Data, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestReactions(t *testing.T) {
	for _, manual := range []bool{false, true} {
		t.Run(fmt.Sprint("pending=", manual), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.MessageCache = 1; c.Rich.AuxCache = 1 })
			h.manual = manual
			h.create("alice", protocol.TypeStandard, nil)
			h.join(caller("bob"), nil)
			m := h.send("alice", "m", "hello")
			h.send("alice", "other", "unrelated")

			eff := h.do(caller("bob"), protocol.OpReactionAdd, map[string]any{"channel": channelID, "message_id": m.ID, "name": "👍"})
			if eff.Err != nil {
				t.Fatal(eff.Err)
			}
			ev := reactionEvent(t, eff)
			if ev.User != "bob" || ev.Name != "👍" || !ev.Added || ev.Message.Reactions["👍"] != 1 || len(ev.Message.MyReactions) != 0 {
				t.Fatalf("event %+v (events carry no per-caller fields)", ev)
			}
			var res messageResult
			_ = json.Unmarshal(eff.Result, &res)
			if !slices.Equal(res.Message.MyReactions, []string{"👍"}) {
				t.Errorf("bob's reply my_reactions %v", res.Message.MyReactions)
			}
			// The same reaction again changes nothing and announces nothing.
			if eff := h.do(caller("bob"), protocol.OpReactionAdd, map[string]any{"channel": channelID, "message_id": m.ID, "name": "👍"}); eff.Err != nil || len(eff.Events) != 0 || eff.Entry != nil {
				t.Fatalf("repeated add: err %v, %d events, entry %v", eff.Err, len(eff.Events), eff.Entry != nil)
			}
			h.react(caller("alice"), protocol.OpReactionAdd, m.ID, "👍")
			h.react(caller("alice"), protocol.OpReactionAdd, m.ID, "party")

			check := func(when string) {
				t.Helper()
				for user, mine := range map[string][]string{"alice": {"party", "👍"}, "bob": {"👍"}, "carol": nil} {
					msgs := userMessages(h.history(caller(user), nil).Messages)
					got := msgs[0]
					if !maps.Equal(got.Reactions, map[string]int64{"👍": 2, "party": 1}) || !slices.Equal(got.MyReactions, mine) {
						t.Errorf("%s: %s sees reactions %v mine %v, want mine %v", when, user, got.Reactions, got.MyReactions, mine)
					}
					if len(msgs[1].MyReactions) != 0 || len(msgs[1].Reactions) != 0 {
						t.Errorf("%s: the other message shows %v / %v", when, msgs[1].Reactions, msgs[1].MyReactions)
					}
				}
				j := h.join(caller("bob"), nil)
				if mine := userMessages(j.Messages)[0].MyReactions; !slices.Equal(mine, []string{"👍"}) {
					t.Errorf("%s: join page my_reactions %v", when, mine)
				}
			}
			check("live")
			h.commit()
			h.reload()
			check("after restart")

			eff = h.do(caller("alice"), protocol.OpReactionRemove, map[string]any{"channel": channelID, "message_id": m.ID, "name": "party"})
			if ev := reactionEvent(t, eff); ev.Added || ev.Message.Reactions["party"] != 0 || ev.Message.Reactions["👍"] != 2 {
				t.Fatalf("remove event %+v", ev)
			}
			// Removing what one does not have changes nothing.
			if eff := h.do(caller("carol"), protocol.OpReactionRemove, map[string]any{"channel": channelID, "message_id": m.ID, "name": "👍"}); eff.Err == nil {
				t.Fatalf("carol is no member: %s", eff.Result)
			}
			if eff := h.do(caller("bob"), protocol.OpReactionRemove, map[string]any{"channel": channelID, "message_id": m.ID, "name": "party"}); eff.Err != nil || eff.Entry != nil {
				t.Fatalf("removing an absent reaction: %v %v", eff.Err, eff.Entry != nil)
			}
			h.react(caller("bob"), protocol.OpReactionRemove, m.ID, "👍")
			got := h.react(caller("alice"), protocol.OpReactionRemove, m.ID, "👍")
			if len(got.Reactions) != 0 || got.MyReactions == nil || len(got.MyReactions) != 0 {
				t.Errorf("no reactions left (want {} and []): %+v", got)
			}
			h.reload()
			if hist := userMessages(h.history(caller("alice"), nil).Messages); len(hist[0].Reactions) != 0 || hist[0].MyReactions == nil || len(hist[0].MyReactions) != 0 {
				t.Errorf("after removing all: %+v", hist[0])
			}
		})
	}
}

func TestReactionRules(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.MaxReactionKinds = 2 })
	h.create("alice", protocol.TypeStandard, nil)
	m := h.send("alice", "m", "hello")
	args := func(id, name string) map[string]any {
		return map[string]any{"channel": channelID, "message_id": id, "name": name}
	}
	add := protocol.OpReactionAdd
	h.fail(caller("alice"), add, args(m.ID, ""), protocol.CodeBadRequest)
	h.fail(caller("alice"), add, args(m.ID, strings.Repeat("x", 65)), protocol.CodeTooLong)
	h.fail(caller("alice"), add, args(m.ID, "a\nb"), protocol.CodeBadRequest)
	h.fail(caller("alice"), add, args("9-0000000000000000", "x"), protocol.CodeNotFound)
	h.fail(caller("bob"), add, args(m.ID, "x"), protocol.CodeNotMember)
	h.react(caller("alice"), add, m.ID, "a")
	h.react(caller("alice"), add, m.ID, "b")
	h.fail(caller("alice"), add, args(m.ID, "c"), protocol.CodeTooLarge)
	h.react(caller("alice"), add, m.ID, "a") // an existing kind is fine
	h.join(caller("bob"), nil)
	h.react(caller("bob"), add, m.ID, "b")

	// A deleted message loses its reactions and takes no more.
	d := ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": m.ID}).Message
	if len(d.Reactions) != 0 {
		t.Errorf("deleted message keeps reactions %v", d.Reactions)
	}
	h.fail(caller("bob"), add, args(m.ID, "b"), protocol.CodeInvalidState)
	h.fail(caller("bob"), protocol.OpReactionRemove, args(m.ID, "b"), protocol.CodeInvalidState)
	if hist := userMessages(h.history(caller("bob"), nil).Messages); len(hist[0].MyReactions) != 0 {
		t.Errorf("deleted message shows my_reactions %v", hist[0].MyReactions)
	}
}

func TestReactionsLiveViewers(t *testing.T) {
	h := newHarness(t)
	h.create("host", protocol.TypeLive, nil)
	m := h.send("host", "m", "welcome")
	h.fail(caller("viewer"), protocol.OpReactionAdd, map[string]any{"channel": channelID, "message_id": m.ID, "name": "🔥"}, protocol.CodeNotMember)
	h.join(caller("viewer"), nil)
	got := h.react(caller("viewer"), protocol.OpReactionAdd, m.ID, "🔥")
	if got.Reactions["🔥"] != 1 || !slices.Equal(got.MyReactions, []string{"🔥"}) {
		t.Errorf("viewer's reaction %+v", got)
	}
}

// TestReactionsResume: reaction changes are persisted events, so a resume
// from since_seq replays them with the edits and deletes around them.
func TestReactionsResume(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	j := h.join(caller("bob"), nil)
	m := h.send("alice", "m", "hello")
	h.react(caller("alice"), protocol.OpReactionAdd, m.ID, "x")
	ok[messageResult](h, caller("alice"), protocol.OpMessageEdit, map[string]any{"channel": channelID, "message_id": m.ID, "text": "edited"})
	h.react(caller("alice"), protocol.OpReactionRemove, m.ID, "x")
	ok[messageResult](h, caller("alice"), protocol.OpMessageDelete, map[string]any{"channel": channelID, "message_id": m.ID})
	h.reload()
	since := j.Seq
	w := ok[watchResult](h, caller("bob"), protocol.OpChannelWatch, map[string]any{"channel": channelID, "since_seq": since})
	var names []string
	for _, raw := range w.Events {
		names = append(names, decodeFrame(t, raw).Event)
	}
	want := []string{protocol.EventMessageNew, protocol.EventReactionUpdated, protocol.EventMessageUpdated, protocol.EventReactionUpdated, protocol.EventMessageDeleted}
	if !slices.Equal(names, want) {
		t.Fatalf("replayed %v, want %v", names, want)
	}
}

// TestSendViewIsFree: the reply to a send costs no read of per-caller
// records (a message just made has no reactions or favorites), while a
// history page reads the caller's counters once.
func TestSendViewIsFree(t *testing.T) {
	h := newHarness(t)
	h.create("alice", protocol.TypeStandard, nil)
	h.send("alice", "m", "x")
	if _, ok := h.s.rich.aux.get(string(countKey("alice"))); ok {
		t.Fatal("a send read the sender's counters")
	}
	h.history(caller("alice"), nil)
	if _, ok := h.s.rich.aux.get(string(countKey("alice"))); !ok {
		t.Fatal("history did not read the caller's counters")
	}
}
