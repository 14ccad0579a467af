//go:build linux

package client

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"
)

// TestPolledSocketLeavesGosPoller: a connection handed to a Poller is
// written, read and closed on a duplicate of its socket outside Go's
// poller. Concurrent writes, some larger than the socket's send buffer
// (they wait for room with poll(2)), reach the server whole and in each
// writer's order and their echoes come back through the poller; a write
// waiting on a server that stopped reading fails as soon as CloseNow is
// called, and the poller then ends the connection and closes the socket.
func TestPolledSocketLeavesGosPoller(t *testing.T) {
	t.Parallel()
	stopReading := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{subprotocol}})
		if err != nil {
			return
		}
		defer conn.CloseNow()
		conn.SetReadLimit(-1)
		for {
			_, msg, err := conn.Read(r.Context())
			if err != nil {
				return
			}
			if string(msg) == "stop" {
				<-stopReading // the client's writes fill the socket
				return
			}
			if err := conn.Write(r.Context(), websocket.MessageText, msg); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	defer close(stopReading)
	ctx := testCtx(t)
	conn, _, err := dialWS(ctx, dialClient(nil), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		echoes = map[string]int{} // writer → next message number
		bad    error
		count  atomic.Int64
	)
	conn.onMsg = func(m []byte) {
		mu.Lock()
		defer mu.Unlock()
		var who string
		var k, size int
		if _, err := fmt.Sscanf(string(m), "%s %d %d", &who, &k, &size); err != nil || len(m) != size || k != echoes[who] {
			bad = fmt.Errorf("echo %.40q (%d bytes) out of order or cut (writer %q at %d)", m, len(m), who, echoes[who])
		}
		echoes[who]++
		count.Add(1)
	}
	ended := make(chan error, 1)
	p := newPoller(t, 1)
	if !p.shard().add(conn, func(err error) { ended <- err }) {
		t.Fatal("the poller did not take the connection")
	}
	f, ok := conn.rwc.(*fdConn)
	if !ok || conn.nc != nil {
		t.Fatalf("a polled connection is still a net.Conn (%T)", conn.rwc)
	}

	const writers, each = 3, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := range each {
				size := 100 + k*37
				if k%10 == 9 {
					size = 3 << 20 // more than a loopback send buffer takes at once
				}
				msg := fmt.Appendf(nil, "w%d %d %d ", w, k, size)
				msg = append(msg, bytes.Repeat([]byte{'x'}, size-len(msg))...)
				if err := conn.Write(ctx, msg); err != nil {
					t.Errorf("write %d of writer %d: %v", k, w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "the echoes", func() bool { return count.Load() == writers*each })
	mu.Lock()
	if bad != nil {
		t.Fatal(bad)
	}
	mu.Unlock()

	// The server stops reading: a large write waits for room until
	// CloseNow.
	if err := conn.Write(ctx, []byte("stop")); err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() { werr <- conn.Write(context.Background(), make([]byte, 32<<20)) }()
	fd := polledFD(t, conn)
	waitFor(t, "a full send buffer", func() bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, _ := unix.Poll(pfd, 0)
		return n == 0
	})
	conn.CloseNow()
	if err := <-werr; err == nil {
		t.Fatal("a write waiting on a closed connection succeeded")
	}
	<-ended
	<-conn.readDone
	f.mu.Lock()
	closedFD := f.fd
	f.mu.Unlock()
	if closedFD != -1 {
		t.Fatalf("the socket (fd %d) is still open after the poller ended the connection", closedFD)
	}
	if err := conn.Write(ctx, []byte("late")); err == nil {
		t.Fatal("a write after CloseNow succeeded")
	}
}

// polledFD is the descriptor a Poller reads conn on: a duplicate of the
// dialled socket's, outside Go's poller (wsfd_linux.go).
func polledFD(t *testing.T, conn *wsConn) int {
	t.Helper()
	f, ok := conn.rwc.(*fdConn)
	if !ok || conn.nc != nil || conn.raw != nil {
		t.Fatalf("a polled connection is still a net.Conn (%T)", conn.rwc)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fd
}
