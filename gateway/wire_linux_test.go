package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
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

	s.wire.close()
	if _, err := s.wire.tryWrite([][]byte{chunk}, &scratch); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a write to a closed connection: %v, want net.ErrClosed", err)
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
	var w wire
	w.init(c)
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

// loopbackListener listens on a free loopback port until the test ends.
func loopbackListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// tcpPair returns the two ends of a loopback TCP connection: the one
// accepted from ln, and the dialler's.
func tcpPair(t *testing.T, ln net.Listener) (accepted, dialled net.Conn) {
	t.Helper()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		got <- c
	}()
	dialled, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialled.Close() })
	if accepted = <-got; accepted == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { accepted.Close() })
	return accepted, dialled
}

// TestClosedWireNeverWritesToTheNextConnection: the raw writer writes on
// a descriptor number; once its wire is closed, that number goes to the
// next connection accepted, and a write through the old wire must fail
// rather than reach the new connection's client.
func TestClosedWireNeverWritesToTheNextConnection(t *testing.T) {
	ln := loopbackListener(t)
	a, _ := tcpPair(t, ln)
	w := new(wire)
	w.init(a)
	var scratch iovecs
	if n, err := w.tryWrite([][]byte{[]byte("hello")}, &scratch); err != nil || n != 5 {
		t.Fatalf("raw write: %d %v", n, err)
	}
	w.close()
	// One end or the other of the next connection (the dialler's socket
	// is made first) is given a's descriptor number.
	b, client := tcpPair(t, ln)
	reused := false
	for _, c := range []net.Conn{b, client} {
		if f := newRawWriter(c); f != nil && f.(fdWriter).fd == w.fd.(fdWriter).fd {
			reused = true
		}
	}
	if !reused {
		t.Logf("neither end of the next connection got descriptor %d: the check below holds all the same", w.fd.(fdWriter).fd)
	}
	if _, err := w.tryWrite([][]byte{[]byte("someone else's event")}, &scratch); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a write through the closed wire: %v, want net.ErrClosed", err)
	}
	for _, c := range []net.Conn{b, client} {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := c.Read(make([]byte, 64)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("an end of the next connection read %d bytes (%v)", n, err)
		}
	}
}

// blockingWriter is a raw writer whose write waits until released.
type blockingWriter struct{ in, release chan struct{} }

func (b blockingWriter) tryWrite(bufs [][]byte, _ *iovecs) (int, error) {
	b.in <- struct{}{}
	<-b.release
	return len(bufs[0]), nil
}

// TestWireCloseWaitsForTheWriteUnderWay: a close asked for during a raw
// write leaves the connection open until the write ends, then the writer
// closes it; no write starts meanwhile.
func TestWireCloseWaitsForTheWriteUnderWay(t *testing.T) {
	ln := loopbackListener(t)
	a, _ := tcpPair(t, ln)
	w := new(wire)
	w.init(a)
	bw := blockingWriter{in: make(chan struct{}), release: make(chan struct{})}
	w.fd = bw
	done := make(chan error, 1)
	go func() {
		_, err := w.tryWrite([][]byte{[]byte("x")}, nil)
		done <- err
	}()
	<-bw.in // the write is under way
	w.close()
	if err := a.SetDeadline(time.Time{}); err != nil {
		t.Fatalf("the connection was closed under the write: %v", err)
	}
	if _, err := w.tryWrite([][]byte{[]byte("y")}, nil); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a write after the close was asked for: %v, want net.ErrClosed", err)
	}
	close(bw.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := a.SetDeadline(time.Time{}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after the write the connection is not closed: %v", err)
	}
	w.close() // again: harmless
}

// The raw writer's send(2) falls back to write(2) on a descriptor that is
// not a socket, one buffer or several, and a socket whose peer is gone
// is an error to it, not a signal.
func TestRawWriteOnAPipeAndAClosedPeer(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fd := fdWriter{w.Fd()}
	var scratch iovecs
	for _, bufs := range [][][]byte{{[]byte("one")}, {[]byte("two,"), []byte("three")}} {
		if n, err := fd.tryWrite(bufs, &scratch); err != nil || n != len(bytes.Join(bufs, nil)) {
			t.Fatalf("a pipe took %d bytes of %q: %v", n, bufs, err)
		}
	}
	got := make([]byte, 12)
	if _, err := io.ReadFull(r, got); err != nil || string(got) != "onetwo,three" {
		t.Fatalf("the pipe gave %q (%v)", got, err)
	}

	ln := loopbackListener(t)
	accepted, dialled := tcpPair(t, ln)
	dialled.Close()
	raw := newRawWriter(accepted)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The first send after the peer's close is taken (and answered by
		// a reset); a later one fails.
		if _, err := raw.tryWrite([][]byte{[]byte("x")}, &scratch); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a closed peer never failed")
		}
		time.Sleep(time.Millisecond)
	}
}
