package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// The WebSocket library (coder/websocket) does the upgrade, and reads:
// it unmasks, reassembles and bounds client messages and answers control
// frames. It does not write the session's messages: its Write frames and
// flushes one message per call and waits for the socket, and it cannot
// send bytes framed elsewhere. So the session takes the connection's
// write side over at the hijack, without changing the library:
//
//   - the connection is captured (wire) for the writer pool, which writes
//     messages framed once per gateway (wsframe.go);
//   - the library's buffered writer, through which it writes its own
//     frames (a pong, the answer to a client's close frame, the close
//     frame of a protocol error), writes into the session's outbox
//     (controlWriter), so they go out in order with everything else;
//   - closing the connection, which the library does after answering a
//     client's close frame, asks the writer to close it once those
//     frames are written (hijackedConn).
//
// The hijacked reader is replaced by a small one too (readBufBytes).

// readBufBytes is the read buffer of a session's connection. net/http
// hands a hijacked connection its 4 KiB read buffer, which a session would
// hold for its whole life; client frames are small, and a larger one is
// simply read in more than one call, so a smaller buffer saves memory on
// every idle session.
const readBufBytes = 512

// controlBufBytes is the library's write buffer: a whole control frame
// (at most 127 bytes from a server) fits, so each arrives in one write.
const controlBufBytes = 128

// sessionHijacker wraps a ResponseWriter so that the WebSocket library's
// Hijack hands the session's write side to it.
type sessionHijacker struct {
	http.ResponseWriter
	hj http.Hijacker
	s  *session
}

func (h sessionHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := h.hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	// net/http flushed the 101 response before handing the connection
	// over; its 4 KiB write buffer is not used again.
	r, err := smallReader(conn, brw.Reader)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	h.s.wire = newWire(conn)
	w := bufio.NewWriterSize(controlWriter{h.s}, controlBufBytes)
	return hijackedConn{Conn: conn, s: h.s}, bufio.NewReadWriter(r, w), nil
}

// smallReader returns a readBufBytes reader over conn holding what br
// has buffered (bytes the client sent right after its request), or br
// itself when it is that small already (UpgradeListener's) or, rarely,
// when they do not fit.
func smallReader(conn net.Conn, br *bufio.Reader) (*bufio.Reader, error) {
	n := br.Buffered()
	if n > readBufBytes || br.Size() <= readBufBytes {
		return br, nil
	}
	r := bufio.NewReaderSize(conn, readBufBytes)
	if n > 0 {
		// The library takes over what is buffered (not what is behind the
		// reader), so the bytes go into the new buffer.
		b, _ := br.Peek(n)
		r.Reset(io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn))
		if _, err := r.Peek(n); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// withSession returns w wrapped when it can hijack, else w (the upgrade
// then fails).
func withSession(w http.ResponseWriter, s *session) http.ResponseWriter {
	if hj, ok := w.(http.Hijacker); ok {
		return sessionHijacker{ResponseWriter: w, hj: hj, s: s}
	}
	return w
}

// controlWriter takes the WebSocket library's writes: its control
// frames, queued on the session's outbox.
type controlWriter struct{ s *session }

func (c controlWriter) Write(p []byte) (int, error) {
	if c.s.out.control(bytes.Clone(p)) { // p is the library's buffer
		c.s.g.writers.add(c.s)
	}
	return len(p), nil
}

// hijackedConn is the connection as the library sees it: closing it
// closes it once what is queued (the library's last frames) is written.
type hijackedConn struct {
	net.Conn
	s *session
}

func (c hijackedConn) Close() error {
	if c.s.out.shutdown() {
		c.s.g.writers.add(c.s)
	}
	return nil
}
