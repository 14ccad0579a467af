package main

import (
	"encoding/json"
	"errors"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// call makes a request that must succeed.
func call[T any](t *testing.T, c *client.Client, op string, args any) T {
	t.Helper()
	var out T
	if err := c.Call(ctxT(t), op, args, &out); err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	return out
}

// callCode makes a request that must fail, and returns its code.
func callCode(t *testing.T, c *client.Client, op string, args any) protocol.Code {
	t.Helper()
	err := c.Call(ctxT(t), op, args, nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%s: %v, want a coded error", op, err)
	}
	return pe.Code
}

// eventData waits for the next event named name and decodes its data.
func eventData[T any](t *testing.T, c *client.Client, name string) (client.Event, T) {
	t.Helper()
	e := nextEvent(t, c, name)
	var v T
	if err := json.Unmarshal(e.Data, &v); err != nil {
		t.Fatalf("%s data %s: %v", name, e.Data, err)
	}
	return e, v
}

func setup(t *testing.T, n *Node, ch, typ string, users ...string) []*client.Client {
	t.Helper()
	ctx := ctxT(t)
	var out []*client.Client
	for i, u := range users {
		c := dial(t, n, u)
		if i == 0 {
			if _, _, err := c.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: ch, Type: typ, Members: users[1:]}); err != nil {
				t.Fatal(err)
			}
		} else if _, err := c.Join(ctx, ch); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func TestThreadsE2E(t *testing.T) {
	n := testNode(t)
	cs := setup(t, n, "t", protocol.TypeStandard, "alice", "bob")
	alice, bob := cs[0], cs[1]
	ctx := ctxT(t)
	parent, err := alice.Send(ctx, sendArgs("t", "parent"))
	if err != nil {
		t.Fatal(err)
	}
	reply, err := bob.Send(ctx, protocol.SendArgs{Channel: "t", Text: "reply", ParentID: parent.ID})
	if err != nil {
		t.Fatal(err)
	}
	if reply.ParentID != parent.ID || reply.Segment != 2 {
		t.Fatalf("reply %+v", reply)
	}
	e, nw := eventData[protocol.MessageResult](t, alice, protocol.EventMessageNew)
	if nw.Message.ID != parent.ID {
		t.Fatalf("first message.new %+v", nw.Message)
	}
	_, nw = eventData[protocol.MessageResult](t, alice, protocol.EventMessageNew)
	up, upd := eventData[protocol.MessageResult](t, alice, protocol.EventMessageUpdated)
	if nw.Message.ID != reply.ID || upd.Message.ID != parent.ID || upd.Message.ReplyCount != 1 || up.Seq != e.Seq+2 {
		t.Fatalf("reply %+v then parent %+v (seq %d after %d)", nw.Message, upd.Message, up.Seq, e.Seq)
	}
	if code := callCode(t, bob, protocol.OpMessageSend, protocol.SendArgs{Channel: "t", ClientID: "rr", Text: "x", ParentID: reply.ID}); code != protocol.CodeBadRequest {
		t.Fatalf("reply to a reply: %s", code)
	}
	if _, err := alice.Send(ctx, sendArgs("t", "top")); err != nil {
		t.Fatal(err)
	}
	th, err := alice.History(ctx, protocol.HistoryArgs{Channel: "t", ParentID: parent.ID})
	if err != nil || len(th.Messages) != 1 || th.Messages[0].ID != reply.ID || th.HasMore {
		t.Fatalf("thread %+v %v", th, err)
	}
	top, err := alice.History(ctx, protocol.HistoryArgs{Channel: "t", TopLevel: true})
	if err != nil || len(top.Messages) != 2 || top.Messages[0].ReplyCount != 1 {
		t.Fatalf("top level %+v %v", top, err)
	}
}

func TestReactionsE2E(t *testing.T) {
	n := testNode(t)
	cs := setup(t, n, "r", protocol.TypeStandard, "alice", "bob")
	alice, bob := cs[0], cs[1]
	ctx := ctxT(t)
	m, err := alice.Send(ctx, sendArgs("r", "react to me"))
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, bob, protocol.EventMessageNew)
	r := call[protocol.MessageResult](t, bob, protocol.OpReactionAdd, protocol.ReactionArgs{Channel: "r", MessageID: m.ID, Name: "👍"})
	if !slices.Equal(r.Message.MyReactions, []string{"👍"}) || r.Message.Reactions["👍"] != 1 {
		t.Fatalf("add result %+v", r.Message)
	}
	e, ev := eventData[protocol.ReactionEvent](t, alice, protocol.EventReactionUpdated)
	if e.Seq == 0 || ev.User != "bob" || ev.Name != "👍" || !ev.Added || ev.Message.Reactions["👍"] != 1 || ev.Message.MyReactions != nil {
		t.Fatalf("event seq %d %+v", e.Seq, ev)
	}
	call[protocol.MessageResult](t, alice, protocol.OpReactionAdd, protocol.ReactionArgs{Channel: "r", MessageID: m.ID, Name: "👍"})
	call[protocol.MessageResult](t, alice, protocol.OpReactionAdd, protocol.ReactionArgs{Channel: "r", MessageID: m.ID, Name: "🎉"})
	for user, c := range map[string]*client.Client{"alice": alice, "bob": bob} {
		h, err := c.History(ctx, protocol.HistoryArgs{Channel: "r"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{"alice": {"🎉", "👍"}, "bob": {"👍"}}[user]
		got := h.Messages[0]
		if !maps.Equal(got.Reactions, map[string]int64{"👍": 2, "🎉": 1}) || !slices.Equal(got.MyReactions, want) {
			t.Errorf("%s sees %v mine %v", user, got.Reactions, got.MyReactions)
		}
	}
	call[protocol.MessageResult](t, bob, protocol.OpReactionRemove, protocol.ReactionArgs{Channel: "r", MessageID: m.ID, Name: "👍"})
	for {
		_, ev = eventData[protocol.ReactionEvent](t, alice, protocol.EventReactionUpdated)
		if !ev.Added {
			break
		}
	}
	if ev.User != "bob" || ev.Message.Reactions["👍"] != 1 {
		t.Fatalf("remove event %+v", ev)
	}
	if code := callCode(t, bob, protocol.OpReactionAdd, protocol.ReactionArgs{Channel: "r", MessageID: m.ID, Name: strings.Repeat("x", 65)}); code != protocol.CodeTooLong {
		t.Errorf("long name: %s", code)
	}
	eve := dial(t, n, "eve")
	if code := callCode(t, eve, protocol.OpReactionAdd, protocol.ReactionArgs{Channel: "r", MessageID: m.ID, Name: "x"}); code != protocol.CodeNotMember {
		t.Errorf("non-member: %s", code)
	}
}

func TestMentionsReadStateAndListE2E(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	cs := setup(t, n, "older", protocol.TypeStandard, "alice", "bob")
	alice, bob := cs[0], cs[1]
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "newer", Type: protocol.TypeStandard, Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, sendArgs("newer", "in newer")); err != nil {
		t.Fatal(err)
	}
	// last_activity has millisecond precision: let the clock move on so the
	// next message is strictly newer.
	for start := time.Now().UnixMilli(); time.Now().UnixMilli() <= start+1; {
		runtime.Gosched()
	}
	// The older channel gets the newest message, with a mention of bob.
	m, err := alice.Send(ctx, protocol.SendArgs{Channel: "older", Text: "@bob look", Mentions: []string{"bob", "stranger"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Mentions, []string{"bob"}) {
		t.Fatalf("mentions %v: non-members are dropped", m.Mentions)
	}
	list := call[protocol.ChannelsListResult](t, bob, protocol.OpChannelsList, protocol.ChannelsListArgs{})
	if len(list.Channels) != 2 || list.Channels[0].ID != "older" || list.Channels[1].ID != "newer" {
		t.Fatalf("order %v", []string{list.Channels[0].ID, list.Channels[1].ID})
	}
	older := list.Channels[0]
	if *older.UnreadCount != 1 || !*older.Mentioned || older.LastMessage == nil || older.LastMessage.ID != m.ID || older.Member.LastMentionedSegment != m.Segment {
		t.Fatalf("older for bob: unread %d mentioned %v last %+v member %+v", *older.UnreadCount, *older.Mentioned, older.LastMessage, older.Member)
	}
	if *list.Channels[1].UnreadCount != 1 || *list.Channels[1].Mentioned {
		t.Errorf("newer for bob: unread %d mentioned %v", *list.Channels[1].UnreadCount, *list.Channels[1].Mentioned)
	}
	// bob reads: alice, watching, hears it; the flag and count clear.
	r := call[protocol.MemberResult](t, bob, protocol.OpReadMark, protocol.ReadMarkArgs{Channel: "older"})
	if r.Member.ReadSegment != m.Segment || r.Member.UnreadCount != 0 {
		t.Fatalf("read.mark %+v", r.Member)
	}
	e, rd := eventData[protocol.ReadEvent](t, alice, protocol.EventRead)
	if e.Seq != 0 || e.Channel != "older" || rd.User != "bob" || rd.Segment != m.Segment {
		t.Fatalf("read event %+v %+v", e, rd)
	}
	// Marking an older segment never moves back.
	r = call[protocol.MemberResult](t, bob, protocol.OpReadMark, protocol.ReadMarkArgs{Channel: "older", Segment: ptr(uint64(0))})
	if r.Member.ReadSegment != m.Segment {
		t.Fatalf("read_segment moved back to %d", r.Member.ReadSegment)
	}
	list = call[protocol.ChannelsListResult](t, bob, protocol.OpChannelsList, protocol.ChannelsListArgs{})
	if *list.Channels[0].UnreadCount != 0 || *list.Channels[0].Mentioned {
		t.Fatalf("after reading: unread %d mentioned %v", *list.Channels[0].UnreadCount, *list.Channels[0].Mentioned)
	}
}

func TestPayloadsFavoritesAndSearchE2E(t *testing.T) {
	n := testNode(t)
	cs := setup(t, n, "p", protocol.TypeStandard, "alice", "bob")
	alice, bob := cs[0], cs[1]
	ctx := ctxT(t)
	m, err := alice.Send(ctx, protocol.SendArgs{Channel: "p", Type: protocol.MessageJSON, Data: json.RawMessage(`{"card": {"n": 1}}`),
		Metadata: json.RawMessage(`{"k":"v"}`), Tags: []string{"t1"}, Text: "a card about Zebras"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != "json" || string(m.Data) != `{"card":{"n":1}}` || string(m.Metadata) != `{"k":"v"}` || m.Tags[0] != "t1" {
		t.Fatalf("json message %+v", m)
	}
	big := json.RawMessage(`{"x":"` + strings.Repeat("y", 9000) + `"}`)
	if code := callCode(t, alice, protocol.OpMessageSend, protocol.SendArgs{Channel: "p", ClientID: "big", Data: big}); code != protocol.CodeTooLarge {
		t.Errorf("big data: %s", code)
	}
	if code := callCode(t, alice, protocol.OpMessageSend, protocol.SendArgs{Channel: "p", ClientID: "j", Type: "json", Text: "no data"}); code != protocol.CodeBadRequest {
		t.Errorf("json without data: %s", code)
	}
	for i := 0; i < 5; i++ {
		if _, err := alice.Send(ctx, sendArgs("p", "zebra "+itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	call[struct{}](t, bob, protocol.OpMessageFavorite, map[string]any{"channel": "p", "message_id": m.ID, "on": true})
	hb, _ := bob.History(ctx, protocol.HistoryArgs{Channel: "p"})
	ha, _ := alice.History(ctx, protocol.HistoryArgs{Channel: "p"})
	if hb.Messages[0].Favorite == nil || !*hb.Messages[0].Favorite || ha.Messages[0].Favorite == nil || *ha.Messages[0].Favorite {
		t.Fatalf("favorite: bob %v alice %v", hb.Messages[0].Favorite, ha.Messages[0].Favorite)
	}
	// Search pages newest first, two at a time, with next_before.
	var found []uint64
	args := protocol.HistoryArgs{Channel: "p", Search: "ZEBRA", Limit: ptr(2)}
	for {
		h, err := bob.History(ctx, args)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range slices.Backward(h.Messages) {
			found = append(found, m.Segment)
		}
		if !h.HasMore {
			break
		}
		args.Before = h.NextBefore
	}
	if !slices.Equal(found, []uint64{6, 5, 4, 3, 2, 1}) {
		t.Fatalf("search found %v", found)
	}
}

func TestTypingE2E(t *testing.T) {
	n := testNode(t, func(c *Config) { c.TypingTTL = 1200 * time.Millisecond })
	cs := setup(t, n, "ty", protocol.TypeStandard, "alice", "bob")
	alice, bob := cs[0], cs[1]
	call[struct{}](t, bob, protocol.OpTypingStart, protocol.ChannelRef{Channel: "ty"})
	e, te := eventData[protocol.TypingEvent](t, alice, protocol.EventTyping)
	if e.Seq != 0 || te.User != "bob" || !te.Active {
		t.Fatalf("typing %+v %+v", e, te)
	}
	// bob stops renewing: the channel says so by itself.
	start := time.Now()
	_, te = eventData[protocol.TypingEvent](t, alice, protocol.EventTyping)
	if te.User != "bob" || te.Active || time.Since(start) < time.Second {
		t.Fatalf("lapse %+v after %v", te, time.Since(start))
	}
	call[struct{}](t, bob, protocol.OpTypingStart, protocol.ChannelRef{Channel: "ty"})
	_, te = eventData[protocol.TypingEvent](t, alice, protocol.EventTyping)
	if !te.Active {
		t.Fatal("second start")
	}
	// Sending ends typing (held back until a second after the last event).
	if _, err := bob.Send(ctxT(t), sendArgs("ty", "done")); err != nil {
		t.Fatal(err)
	}
	if _, te = eventData[protocol.TypingEvent](t, alice, protocol.EventTyping); te.Active {
		t.Fatal("send did not end typing")
	}

	// Live channels have typing off unless turned on.
	ls := setup(t, n, "live", protocol.TypeLive, "host", "viewer")
	host, viewer := ls[0], ls[1]
	call[struct{}](t, viewer, protocol.OpTypingStart, protocol.ChannelRef{Channel: "live"})
	if _, err := viewer.Send(ctxT(t), sendArgs("live", "hi")); err != nil {
		t.Fatal(err)
	}
	for e := range host.Events() {
		if e.Name == protocol.EventTyping {
			t.Fatal("typing event in a live channel")
		}
		if e.Name == protocol.EventMessageNew {
			break
		}
	}
	call[protocol.ChannelResult](t, host, protocol.OpChannelUpdate, map[string]any{"channel": "live", "typing_events": true})
	call[struct{}](t, viewer, protocol.OpTypingStart, protocol.ChannelRef{Channel: "live"})
	if _, te = eventData[protocol.TypingEvent](t, host, protocol.EventTyping); te.User != "viewer" || !te.Active {
		t.Fatalf("after enabling: %+v", te)
	}
}

// TestResumeRichE2E: edits, deletes, reaction changes and thread updates
// made while a client was away all arrive through since_seq, in order.
func TestResumeRichE2E(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	cs := setup(t, n, "rr", protocol.TypeStandard, "alice", "bob")
	alice, bob := cs[0], cs[1]
	m1, _ := alice.Send(ctx, sendArgs("rr", "one"))
	m2, err := alice.Send(ctx, sendArgs("rr", "two"))
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, bob, protocol.EventMessageNew)
	nextEvent(t, bob, protocol.EventMessageNew)
	since, _ := bob.LastSeq("rr")
	bob.Close()

	call[protocol.MessageResult](t, alice, protocol.OpMessageEdit, map[string]any{"channel": "rr", "message_id": m1.ID, "text": "one, edited"})
	call[protocol.MessageResult](t, alice, protocol.OpReactionAdd, protocol.ReactionArgs{Channel: "rr", MessageID: m1.ID, Name: "+1"})
	call[protocol.MessageResult](t, alice, protocol.OpReactionAdd, protocol.ReactionArgs{Channel: "rr", MessageID: m1.ID, Name: "ok"})
	call[protocol.MessageResult](t, alice, protocol.OpReactionRemove, protocol.ReactionArgs{Channel: "rr", MessageID: m1.ID, Name: "+1"})
	call[protocol.MessageResult](t, alice, protocol.OpMessageDelete, protocol.MessageRef{Channel: "rr", MessageID: m2.ID})
	if _, err := alice.Send(ctx, protocol.SendArgs{Channel: "rr", Text: "re", ParentID: m1.ID}); err != nil {
		t.Fatal(err)
	}

	bob2 := dial(t, n, "bob")
	w, err := bob2.Watch(ctx, "rr", &since)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{protocol.EventMessageUpdated, protocol.EventReactionUpdated, protocol.EventReactionUpdated,
		protocol.EventReactionUpdated, protocol.EventMessageDeleted, protocol.EventMessageNew, protocol.EventMessageUpdated}
	var got []string
	var last protocol.ReactionEvent
	for i, raw := range w.Events {
		var e client.Event
		_ = json.Unmarshal(raw, &e)
		if e.Seq != since+uint64(i)+1 {
			t.Fatalf("event %d seq %d after %d", i, e.Seq, since)
		}
		got = append(got, e.Name)
		if e.Name == protocol.EventReactionUpdated {
			last = protocol.ReactionEvent{}
			_ = json.Unmarshal(e.Data, &last)
		}
	}
	if !slices.Equal(got, want) || w.Reset || w.EventsHasMore {
		t.Fatalf("replayed %v, want %v", got, want)
	}
	if last.Added || last.Name != "+1" || !maps.Equal(last.Message.Reactions, map[string]int64{"ok": 1}) {
		t.Fatalf("last reaction event %+v: %+v", last, last.Message)
	}
}
