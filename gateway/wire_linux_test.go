package gateway

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestRawWriteNeverWaits drives the pool's raw writer on a real socket:
// it writes what the socket takes and returns at once when it is full
// (no write lock, no poller wait); the connection's own waiting Write
// still finishes the rest once the peer reads (the poller is armed by
// that Write, not by the raw one); and a closed connection is an error,
// not a write to whatever now has its descriptor number.
func TestRawWriteNeverWaits(t *testing.T) {
	t.Parallel()
	h := newWriteHarness(t, nil)
	s, peer := h.session(true)
	fd := s.wire.fd
	if fd == nil {
		t.Fatal("a TCP connection has no raw writer")
	}
	var scratch iovecs
	chunk := bytes.Repeat([]byte("x"), 1024)
	var sent []byte
	full := false
	for range 4096 { // 4 MB at most: a 4 KB socket is full long before
		n, err := fd.tryWrite([][]byte{chunk, chunk[:512]}, &scratch)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, append(chunk, chunk[:512]...)[:n]...)
		if n < len(chunk)+512 {
			full = true
			break
		}
	}
	if !full {
		t.Fatal("the socket never filled up")
	}
	if len(scratch.iov) != 0 {
		t.Errorf("the writer keeps %d iovecs (the frames would stay reachable)", len(scratch.iov))
	}
	if n, err := fd.tryWrite([][]byte{chunk}, &scratch); err != nil || n != 0 {
		t.Fatalf("a full socket took %d bytes (err %v), want 0 and no error", n, err)
	}

	// The rest goes through a waiting write, as writeRest's does.
	rest := bytes.Repeat([]byte("y"), 64<<10)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(sent)+len(rest))))
		got <- b
	}()
	if err := s.wire.writeAll([][]byte{rest}, 10*time.Second); err != nil {
		t.Fatalf("waiting write after a raw one found the socket full: %v", err)
	}
	if b := <-got; !bytes.Equal(b, append(sent, rest...)) {
		t.Fatalf("the peer read %d bytes, not the %d written in order", len(b), len(sent)+len(rest))
	}

	s.wire.conn.Close()
	if _, err := fd.tryWrite([][]byte{chunk}, &scratch); err == nil {
		t.Fatal("a write to a closed connection succeeded")
	}
}

// A connection a ConnLimit counts is still a socket to the writers: its
// raw writer exists, and a vectored write reaches the peer whole.
func TestConnLimitKeepsRawWrites(t *testing.T) {
	t.Parallel()
	l := newLimit(t, 4, true)
	accepted := acceptedConns(t, l)
	peer := dialLimit(t, l)
	c := nextAccepted(t, accepted)
	if _, ok := c.(*limitedTCP); !ok {
		t.Fatalf("accepted %T, want *limitedTCP", c)
	}
	w := newWire(c)
	if w.fd == nil {
		t.Fatal("a counted TCP connection has no raw writer")
	}
	var scratch iovecs
	if n, err := w.tryWrite([][]byte{[]byte("raw "), []byte("write ")}, &scratch); err != nil || n != 10 {
		t.Fatalf("raw write: %d %v", n, err)
	}
	if err := w.writeAll([][]byte{[]byte("and "), []byte("waiting")}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("raw write and waiting"))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "raw write and waiting" {
		t.Fatalf("peer read %q %v", got, err)
	}
}
