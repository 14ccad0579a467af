package gateway

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// takingWriter is a raw writer whose socket takes at most n bytes a
// write; it keeps what was written.
type takingWriter struct {
	n   int
	got *bytes.Buffer
}

func (w takingWriter) tryWrite(bufs [][]byte, _ *iovecs) (int, error) {
	total := 0
	for _, b := range bufs {
		k := min(w.n-total, len(b))
		w.got.Write(b[:k])
		total += k
	}
	return total, nil
}

// TestHeldHeadGoesFirst: a wire holding the handshake's 101 writes it
// before the first frame, in the same write; a write that took only part
// of it reports none of the frame's bytes written and keeps the rest of
// the head for the next; later writes carry no head. A waiting write
// (writeAll, as writeRest's and the drain's) carries it too.
func TestHeldHeadGoesFirst(t *testing.T) {
	ln := loopbackListener(t)
	a, peer := tcpPair(t, ln)
	const head = "HTTP/1.1 101 Switching Protocols\r\n\r\n"
	got := new(bytes.Buffer)
	w := new(wire)
	w.init(a)
	w.fd, w.head = takingWriter{n: 10, got: got}, []byte(head)
	if n, err := w.tryWrite([][]byte{[]byte("reply")}, nil); n != 0 || err != nil || string(w.head) != head[10:] {
		t.Fatalf("a write taking 10 bytes: n %d (%v), head left %q", n, err, w.head)
	}
	w.fd = takingWriter{n: 1 << 20, got: got}
	if n, err := w.tryWrite([][]byte{[]byte("reply"), []byte("\n")}, nil); n != 6 || err != nil || w.head != nil {
		t.Fatalf("the next write: n %d (%v), head left %q", n, err, w.head)
	}
	if n, _ := w.tryWrite([][]byte{[]byte("event")}, nil); n != 5 {
		t.Fatalf("a later write: n %d", n)
	}
	if got.String() != head+"reply\nevent" {
		t.Fatalf("written %q", got)
	}

	w2 := new(wire)
	w2.init(a)
	w2.head = []byte(head)
	if err := w2.writeAll([][]byte{[]byte("close")}, 5*time.Second); err != nil || w2.head != nil {
		t.Fatalf("writeAll: %v, head left %q", err, w2.head)
	}
	b := make([]byte, len(head)+5)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(peer, b); err != nil || string(b) != head+"close" {
		t.Fatalf("the peer read %q (%v)", b, err)
	}
}
