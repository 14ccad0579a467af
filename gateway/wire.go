package gateway

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// wire is a session connection's write side. Writers write to it
// directly: a message is already framed (wsframe.go), and the pool's
// writers must never wait for a socket.
type wire struct {
	// conn is the connection as hijacked. Only close closes it: a raw
	// write uses its descriptor's number, which must not be closed (and
	// perhaps given to another connection) under the write.
	conn net.Conn
	// fd writes without waiting where the platform allows (wire_linux.go);
	// nil: every write waits, on its own goroutine (writeAll).
	fd rawWriter
	// state orders raw writes and the close: wireWriting while a raw
	// write is under way, wireClosing once a close was asked for.
	state atomic.Uint32
	// head is the handshake's 101 while it waits for the first write,
	// which carries it (a connect in the upgrade: its reply goes out
	// with the 101, in one segment). Writes are one at a time, and
	// only they touch it.
	head []byte
}

const (
	wireWriting = 1 << iota
	wireClosing
)

// init makes w conn's write side.
func (w *wire) init(conn net.Conn) { w.conn, w.fd = conn, newRawWriter(conn) }

// tryWrite writes as much of bufs as the socket takes now, without
// waiting, and returns how many bytes that was (0 when the socket is
// full, or when this platform cannot write without waiting). Once a close
// was asked for it writes nothing (net.ErrClosed); a close asked for
// during the write is made as it ends.
func (w *wire) tryWrite(bufs [][]byte, scratch *iovecs) (int, error) {
	if w.fd == nil {
		return 0, nil
	}
	for {
		st := w.state.Load()
		if st&wireClosing != 0 {
			return 0, net.ErrClosed
		}
		if w.state.CompareAndSwap(st, st|wireWriting) {
			break
		}
	}
	var n int
	var err error
	if w.head != nil {
		n, err = w.fd.tryWrite(append([][]byte{w.head}, bufs...), scratch)
		n = w.wroteHead(n)
	} else {
		n, err = w.fd.tryWrite(bufs, scratch)
	}
	if w.state.And(^uint32(wireWriting))&wireClosing != 0 {
		w.conn.Close() // asked for during the write: left to us
	}
	return n, err
}

// wroteHead takes the n bytes of a write that began with the held head
// off the head, and returns how many of the write's other bytes were
// written.
func (w *wire) wroteHead(n int) int {
	if n < len(w.head) {
		w.head = w.head[n:]
		return 0
	}
	n -= len(w.head)
	w.head = nil
	return n
}

// close closes the connection: at once, or as the raw write under way
// ends. No raw write starts after it. It may be called more than once.
func (w *wire) close() {
	if w.state.Or(wireClosing)&wireWriting == 0 {
		w.conn.Close()
	}
}

// writeBufs holds the bytes of a waiting write that is not a vectored
// one (a TLS connection's: one record, one syscall); idle sessions hold
// none.
var writeBufs = sync.Pool{New: func() any { return new([]byte) }}

// writeAll writes bufs whole, waiting at most d for the socket.
func (w *wire) writeAll(bufs [][]byte, d time.Duration) error {
	if err := w.conn.SetWriteDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	defer w.conn.SetWriteDeadline(time.Time{})
	if w.head != nil {
		bufs = append([][]byte{w.head}, bufs...)
		w.head = nil // written, or the connection fails
	}
	if _, ok := w.conn.(syscall.Conn); ok || len(bufs) == 1 { // a socket: one writev
		nb := net.Buffers(bufs)
		_, err := nb.WriteTo(w.conn)
		return err
	}
	bp := writeBufs.Get().(*[]byte)
	b := (*bp)[:0]
	for _, x := range bufs {
		b = append(b, x...)
	}
	_, err := w.conn.Write(b)
	if cap(b) <= 256<<10 {
		*bp = b[:0]
		writeBufs.Put(bp)
	}
	return err
}

// remainder returns what is left of bufs after its first n bytes, in a
// new slice (bufs belongs to a writer, which reuses it).
func remainder(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	rest := make([][]byte, len(bufs))
	copy(rest, bufs)
	if len(rest) > 0 {
		rest[0] = rest[0][n:]
	}
	return rest
}
