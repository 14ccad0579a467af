package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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
	conns := make(chan *readingConn, 1)
	var d net.Dialer
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		rc := &readingConn{Conn: conn}
		conns <- rc
		return rc, nil
	}}}
	c, err := Dial(ctx, Options{URLs: []string{"ws" + strings.TrimPrefix(srv.URL, "http")}, UserID: "alice",
		NoReconnect: true, CloseTimeout: 100 * time.Millisecond, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	// The bound holds while the read loop waits in a read, as a client in
	// use does (see Close); on a loaded machine it may not be back there
	// yet right after connect.
	rc := <-conns
	waitFor(t, "the read loop to wait in a read", func() bool { return rc.reading.Load() != 0 })
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

// readingConn counts the reads in progress on a connection.
type readingConn struct {
	net.Conn
	reading atomic.Int32
}

func (c *readingConn) Read(p []byte) (int, error) {
	c.reading.Add(1)
	defer c.reading.Add(-1)
	return c.Conn.Read(p)
}
