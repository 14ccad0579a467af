package main

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-chat/switchboard/protocol"
)

// closeCode reads r until the server closes it and returns the code.
func (r *rawConn) closeCode() websocket.StatusCode {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := r.conn.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// TestFramesAfterLogoutAreNotRun: logout and a send in one WebSocket
// message: the logout is answered, the session closes, and the send is
// never run.
func TestFramesAfterLogoutAreNotRun(t *testing.T) {
	n := testNode(t)
	ctx := ctxT(t)
	r := rawDial(t, n)
	r.connect("alice")
	r.write(`{"id":2,"op":"channel.create","args":{"id":"room","type":"standard"}}`)
	if m := r.reply(); m["result"] == nil {
		t.Fatalf("create: %v", m)
	}
	r.write(`{"id":3,"op":"logout"}` + "\n" +
		`{"id":4,"op":"message.send","args":{"channel":"room","client_id":"after-logout","text":"too late"}}`)
	if m := r.reply(); m["id"] != 3.0 || m["result"] == nil {
		t.Fatalf("logout: %v", m)
	}
	if code := r.closeCode(); code != websocket.StatusNormalClosure {
		t.Fatalf("closed with %d, want 1000", code)
	}
	// Once the session is gone its read loop has handled every frame.
	waitFor(t, 10*time.Second, "the session to end", func() bool { return n.gw.Sessions() == 0 })
	alice := dial(t, n, "alice")
	h, err := alice.History(ctx, protocol.HistoryArgs{Channel: "room"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range h.Messages {
		if m.ClientID == "after-logout" {
			t.Fatalf("a send after logout was run: %+v", m)
		}
	}
}
