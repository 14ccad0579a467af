package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestCloseIsBoundedWhenTheServerDoesNotAnswer: Close waits for the
// server's answer to its close frame for CloseTimeout, then drops the
// connection, rather than for the WebSocket library's own 5 s.
func TestCloseIsBoundedWhenTheServerDoesNotAnswer(t *testing.T) {
	release, done := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"switchboard.v1.json"}})
		if err != nil {
			return
		}
		defer conn.CloseNow()
		if _, _, err := conn.Read(r.Context()); err != nil { // connect
			return
		}
		if err := conn.Write(r.Context(), websocket.MessageText, []byte(`{"id":0,"result":{}}`)); err != nil {
			return
		}
		<-release // hung: reads nothing more, so never answers the close
	}))
	defer srv.Close()
	defer func() { close(release); <-done }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{URLs: []string{"ws" + strings.TrimPrefix(srv.URL, "http")}, UserID: "alice",
		NoReconnect: true, CloseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= 3*time.Second {
		t.Fatalf("Close took %s with a 100 ms CloseTimeout", took)
	}
	if _, ok := <-c.Events(); ok {
		t.Fatal("an event after Close")
	}
}
