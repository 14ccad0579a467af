package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// What a new user of the product tripped over, over WebSocket: unknown
// args are refused (naming the arg), unknown users are not_found where
// they would become members, a distinct conversation can be reopened, and
// read.mark takes the message_id shape.

func wantCode(t *testing.T, err error, code protocol.Code, what string) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

func TestUnknownArgsAreRefusedOverWebSocket(t *testing.T) {
	n := testNode(t)
	r := rawDial(t, n)
	r.connect("alice")
	for frame, arg := range map[string]string{
		`{"id":2,"op":"channel.create","args":{"id":"c","type":"standard","nme":"typo"}}`:     "nme",
		`{"id":3,"op":"message.send","args":{"channel":"c","client_id":"x","Text":"hi"}}`:     "Text",
		`{"id":4,"op":"me","args":{"verbose":true}}`:                                          "verbose",
		`{"id":5,"op":"presence.watch","args":{"users":["bob"],"since":1}}`:                   "since",
		`{"id":6,"op":"channel.update","args":{"channel":"c","rate_limit":{"per_second":1}}}`: "rate_limit.per_second",
		`{"id":7,"op":"logout","args":{"now":true}}`:                                          "now",
		`{"id":8,"op":"messages.history","args":{"channel":"c","page":2}}`:                    "page",
	} {
		r.write(frame)
		m := r.reply()
		msg, _ := m["error"].(map[string]any)["message"].(string)
		if errCode(m) != "bad_request" || !strings.Contains(msg, `"`+arg+`"`) {
			t.Errorf("%s: %v, want bad_request naming %s", frame, m, arg)
		}
	}
	// Nothing was created, and the session is still good.
	r.write(`{"id":9,"op":"channel.get","args":{"channel":"c"}}`)
	if m := r.reply(); errCode(m) != "not_found" {
		t.Fatalf("a refused create made the channel: %v", m)
	}
}

func TestReadMarkToAMessage(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	alice, bob := dial(t, n, "alice"), dial(t, n, "bob")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "c", Type: protocol.TypePrivate, Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	var sent []*protocol.Message
	for _, text := range []string{"one", "two", "three"} {
		m, err := alice.Send(ctx, protocol.SendArgs{Channel: "c", Text: text})
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	var r protocol.MemberResult
	if err := bob.Call(ctx, protocol.OpReadMark, protocol.ReadMarkArgs{Channel: "c", MessageID: sent[1].ID}, &r); err != nil {
		t.Fatal(err)
	}
	if r.Member.ReadSegment != sent[1].Segment || r.Member.UnreadCount != 1 {
		t.Fatalf("read up to %s: %+v, want read_segment %d and 1 unread", sent[1].ID, r.Member, sent[1].Segment)
	}
	wantCode(t, bob.Call(ctx, protocol.OpReadMark, protocol.ReadMarkArgs{Channel: "c", MessageID: "99-0000000000000000"}, nil), protocol.CodeNotFound, "an unknown message")
	seg := uint64(3)
	wantCode(t, bob.Call(ctx, protocol.OpReadMark, protocol.ReadMarkArgs{Channel: "c", MessageID: sent[2].ID, Segment: &seg}, nil), protocol.CodeBadRequest, "both")
}

func TestUnknownUsersAreNotMembers(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	alice := dial(t, n, "alice")
	dial(t, n, "bob") // bob exists: he connected
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "c", Type: protocol.TypePrivate}); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{protocol.OpMembersAdd, protocol.OpMembersInvite} {
		wantCode(t, alice.Call(ctx, op, protocol.MembersArgs{Channel: "c", Users: []string{"bob", "bbo"}}, nil), protocol.CodeNotFound, op+" of a typo")
	}
	_, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{Type: protocol.TypeConversation, Distinct: true, Members: []string{"bbo"}})
	wantCode(t, err, protocol.CodeNotFound, "a distinct conversation with a typo")
	var ml protocol.MembersListResult
	if err := alice.Call(ctx, protocol.OpMembersList, protocol.MembersListArgs{Channel: "c"}, &ml); err != nil || len(ml.Members) != 1 {
		t.Fatalf("members after refusals: %+v %v", ml.Members, err)
	}
	if err := alice.Call(ctx, protocol.OpMembersAdd, protocol.MembersArgs{Channel: "c", Users: []string{"bob"}}, nil); err != nil {
		t.Fatalf("adding a known user: %v", err)
	}
}

// TestNoticesOnOneNode: a user's sessions hear of every channel they are
// put in or taken out of, whoever did it, without watching anything.
func TestNoticesOnOneNode(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	alice := dial(t, n, "alice")
	bob, bobPhone := dial(t, n, "bob"), dial(t, n, "bob")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "team", Type: protocol.TypePrivate}); err != nil {
		t.Fatal(err)
	}
	want := func(c *client.Client, name, reason string) map[string]any {
		t.Helper()
		d := nextNotice(t, c, name)
		if d["reason"] != reason {
			t.Fatalf("%s: %v, want reason %s", name, d, reason)
		}
		return d
	}
	steps := []struct {
		do     func() error
		event  string
		reason string
	}{
		{func() error {
			return alice.Call(ctx, protocol.OpMembersInvite, protocol.MembersArgs{Channel: "team", Users: []string{"bob"}}, nil)
		}, protocol.EventChannelAdded, protocol.ReasonInvited},
		{func() error { _, err := bobPhone.Join(ctx, "team"); return err }, protocol.EventChannelAdded, protocol.ReasonJoined},
		{func() error {
			return alice.Call(ctx, protocol.OpMemberKick, protocol.KickArgs{Channel: "team", User: "bob"}, nil)
		}, protocol.EventChannelRemoved, protocol.ReasonKicked},
		{func() error {
			return alice.Call(ctx, protocol.OpMembersAdd, protocol.MembersArgs{Channel: "team", Users: []string{"bob"}}, nil)
		}, protocol.EventChannelAdded, protocol.ReasonAdded},
		{func() error {
			return alice.Call(ctx, protocol.OpMembersRemove, protocol.MembersArgs{Channel: "team", Users: []string{"bob"}}, nil)
		}, protocol.EventChannelRemoved, protocol.ReasonRemoved},
		{func() error {
			return alice.Call(ctx, protocol.OpMembersAdd, protocol.MembersArgs{Channel: "team", Users: []string{"bob"}}, nil)
		}, protocol.EventChannelAdded, protocol.ReasonAdded},
		{func() error {
			return alice.Call(ctx, protocol.OpChannelDelete, protocol.ChannelRef{Channel: "team"}, nil)
		}, protocol.EventChannelRemoved, protocol.ReasonDeleted},
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		for _, c := range []*client.Client{bob, bobPhone} {
			d := want(c, s.event, s.reason)
			if s.event == protocol.EventChannelAdded {
				if ch, _ := d["channel"].(map[string]any); ch["id"] != "team" || ch["type"] != protocol.TypePrivate {
					t.Fatalf("step %d: channel %v", i, d["channel"])
				}
			} else if d["channel"] != "team" {
				t.Fatalf("step %d: channel %v", i, d["channel"])
			}
		}
	}
}

// TestNoticesReachAnotherNode: bob's session is on one node, the DM is
// opened over HTTP on the other; bob hears channel.added.
// Development auth also accepts X-Switchboard-User without a credential.
func TestNoticesReachAnotherNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	a, b := procCluster(t) // development auth: X-Switchboard-User alone names the caller
	ctx := ctxT(t)
	bob := procDial(t, b.url(), "bob")
	procDial(t, a.url(), "alice")
	sent := api{t: t, addr: a.addr, as: "alice"}.do("POST", "/v1/users/bob/messages", map[string]any{"text": "across"}, "/v1/users/{id}/messages").want(t, 201, "")
	d := nextNotice(t, bob, protocol.EventChannelAdded)
	if d["reason"] != protocol.ReasonCreated || d["channel"].(map[string]any)["id"] != sent.str("channel.id") {
		t.Fatalf("bob's notice: %v", d)
	}
	h, err := bob.History(ctx, protocol.HistoryArgs{Channel: sent.str("channel.id")})
	if err != nil || len(h.Messages) != 1 || h.Messages[0].Text != "across" {
		t.Fatalf("history %+v %v", h, err)
	}
}

// TestDistinctConversationReopens: either side that left comes back by
// creating the conversation again; the other side stays where it is.
func TestDistinctConversationReopens(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	alice, bob := dial(t, n, "alice"), dial(t, n, "bob")
	dm := protocol.ChannelCreateArgs{Type: protocol.TypeConversation, Distinct: true}
	dm.Members = []string{"bob"}
	var created protocol.ChannelCreateResult
	if err := alice.Call(ctx, protocol.OpChannelCreate, dm, &created); err != nil || !created.Created {
		t.Fatalf("create: %+v %v", created, err)
	}
	for _, leaver := range []*client.Client{alice, bob} {
		if err := leaver.Leave(ctx, created.Channel.ID); err != nil {
			t.Fatalf("leave: %v", err)
		}
		// The other side stays a member; the one that left is back.
		args := dm
		if leaver == bob {
			args.Members = []string{"alice"}
		}
		var again protocol.ChannelCreateResult
		if err := leaver.Call(ctx, protocol.OpChannelCreate, args, &again); err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if again.Created || again.Channel.ID != created.Channel.ID || again.Member.Membership != protocol.MembershipMember || again.Channel.MemberCount != 2 {
			t.Fatalf("reopen: %+v member %+v", again.Channel, again.Member)
		}
		if _, err := leaver.Send(ctx, protocol.SendArgs{Channel: created.Channel.ID, Text: "back"}); err != nil {
			t.Fatalf("send after reopening: %v", err)
		}
	}
	// Someone else cannot open it.
	eve := dial(t, n, "eve")
	wantCode(t, eve.Call(ctx, protocol.OpChannelJoin, protocol.WatchArgs{Channel: created.Channel.ID}, nil), protocol.CodeForbidden, "eve's join")
}
