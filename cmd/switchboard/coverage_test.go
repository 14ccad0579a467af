package main

import (
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestTypingStopE2E: typing.stop ends typing at once for the watchers,
// long before the lapse would; a stop without a start sends nothing.
func TestTypingStopE2E(t *testing.T) {
	n := testNode(t, func(c *Config) { c.TypingTTL = time.Minute })
	cs := setup(t, n, "ts", protocol.TypeStandard, "alice", "bob")
	alice, bob := cs[0], cs[1]
	call[struct{}](t, bob, protocol.OpTypingStart, protocol.ChannelRef{Channel: "ts"})
	if _, te := eventData[protocol.TypingEvent](t, alice, protocol.EventTyping); te.User != "bob" || !te.Active {
		t.Fatalf("start: %+v", te)
	}
	call[struct{}](t, bob, protocol.OpTypingStop, protocol.ChannelRef{Channel: "ts"})
	if _, te := eventData[protocol.TypingEvent](t, alice, protocol.EventTyping); te.User != "bob" || te.Active {
		t.Fatalf("stop: %+v", te)
	}
	// A stop with nothing to stop is quiet: the next event alice sees is
	// the message.
	call[struct{}](t, bob, protocol.OpTypingStop, protocol.ChannelRef{Channel: "ts"})
	if _, err := bob.Send(ctxT(t), sendArgs("ts", "after")); err != nil {
		t.Fatal(err)
	}
	for e := range alice.Events() {
		if e.Name == protocol.EventTyping {
			t.Fatalf("typing event %s after a stop with nothing to stop", e.Data)
		}
		if e.Name == protocol.EventMessageNew {
			break
		}
	}
	if code := callCode(t, bob, protocol.OpTypingStop, protocol.ChannelRef{Channel: "nowhere"}); code != protocol.CodeNotFound {
		t.Errorf("stop in a missing channel: %s, want not_found", code)
	}
}

// TestChannelsListCursorE2E: paging with cursor walks every channel the
// user is in exactly once, newest activity first, and the last page has
// no cursor.
func TestChannelsListCursorE2E(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	alice := dial(t, n, "alice")
	var want []string // newest activity first
	for i := range 7 {
		id := "page-" + strconvItoa(i)
		if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: id, Type: protocol.TypeStandard}); err != nil {
			t.Fatal(err)
		}
		// last_activity has millisecond precision: move the clock on so
		// each channel's message is strictly newer than the last.
		for start := time.Now().UnixMilli(); time.Now().UnixMilli() <= start+1; {
			runtime.Gosched()
		}
		if _, err := alice.Send(ctx, sendArgs(id, "hi")); err != nil {
			t.Fatal(err)
		}
		want = append([]string{id}, want...)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatalf("no end to the pages: %v", got)
		}
		page := call[protocol.ChannelsListResult](t, alice, protocol.OpChannelsList, protocol.ChannelsListArgs{Cursor: cursor, Limit: 3})
		if len(page.Channels) > 3 {
			t.Fatalf("page of %d with limit 3", len(page.Channels))
		}
		for _, ch := range page.Channels {
			got = append(got, ch.ID)
		}
		if page.Cursor == "" {
			break
		}
		cursor = page.Cursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages walked %v, want %v", got, want)
	}
	if code := callCode(t, alice, protocol.OpChannelsList, protocol.ChannelsListArgs{Cursor: "not a cursor"}); code != protocol.CodeBadRequest {
		t.Errorf("a bad cursor: %s, want bad_request", code)
	}
	if code := callCode(t, alice, protocol.OpChannelsList, protocol.ChannelsListArgs{Limit: 101}); code != protocol.CodeBadRequest {
		t.Errorf("limit 101: %s, want bad_request", code)
	}
}
