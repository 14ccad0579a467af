package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// upgradeWriter is the ResponseWriter of an upgrade served by
// UpgradeListener: what the handshake (acceptWS) uses of one. A 101 goes out
// at Hijack (as net/http flushes it there); any other answer (a refusal)
// is written, with Connection: close, when the handler returns.
type upgradeWriter struct {
	c       net.Conn
	rest    []byte // what the client sent after its head
	timeout time.Duration

	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

func (w *upgradeWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header, 4)
	}
	return w.header
}

func (w *upgradeWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

// errBodyTooLarge: a refusal's text is short; a handler writing more is
// cut.
var errBodyTooLarge = errors.New("gateway: upgrade response body too large")

func (w *upgradeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.body.Len()+len(p) > headBufBytes {
		return 0, errBodyTooLarge
	}
	return w.body.Write(p)
}

// Hijack writes the 101 and hands the connection over with a reader
// holding what the client sent after its head.
func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, head, err := w.HijackHeld()
	if err != nil {
		return nil, nil, err
	}
	if err := w.write(head); err != nil {
		conn.Close() // taken over: nobody else closes it
		return nil, nil, err
	}
	return conn, rw, nil
}

// HijackHeld is Hijack without writing the 101: it returns it, for the
// connection's first write to carry (headHolder).
func (w *upgradeWriter) HijackHeld() (net.Conn, *bufio.ReadWriter, []byte, error) {
	if w.hijacked {
		return nil, nil, nil, http.ErrHijacked
	}
	if w.status != http.StatusSwitchingProtocols {
		return nil, nil, nil, errors.New("gateway: hijack without 101")
	}
	w.hijacked = true
	r, err := readerAfter(w.rest, w.c)
	if err != nil {
		w.c.Close()
		return nil, nil, nil, err
	}
	// Sessions write to the connection itself (wire.go); a small writer
	// serves any other handler.
	return w.c, bufio.NewReadWriter(r, bufio.NewWriterSize(w.c, 16)), w.head(nil), nil
}

// finish writes a handler's answer that did not upgrade, and closes the
// connection.
func (w *upgradeWriter) finish() {
	_ = w.respond()
	w.c.Close()
}

// respond writes a handler's answer that did not upgrade, with
// Connection: close.
func (w *upgradeWriter) respond() error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.Header().Set("Content-Length", strconv.Itoa(w.body.Len()))
	w.header.Set("Connection", "close")
	return w.write(w.head(w.body.Bytes()))
}

// head is the response: the status line, the headers and body.
func (w *upgradeWriter) head(body []byte) []byte {
	b := make([]byte, 0, 256+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(w.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(w.status)...)
	b = append(b, "\r\n"...)
	if w.status != http.StatusSwitchingProtocols {
		b = append(b, "Date: "...)
		b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
		b = append(b, "\r\n"...)
	}
	buf := bytes.NewBuffer(b)
	_ = w.Header().Write(buf)
	buf.WriteString("\r\n")
	buf.Write(body)
	return buf.Bytes()
}

// write writes b in one write, bounded by the header timeout.
func (w *upgradeWriter) write(b []byte) error {
	if err := w.c.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return err
	}
	if _, err := w.c.Write(b); err != nil {
		return err
	}
	return w.c.SetWriteDeadline(time.Time{})
}
