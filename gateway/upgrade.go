package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/switchboard-chat/switchboard/cluster/workers"
)

// The public listener's WebSocket upgrades skip net/http's per-connection
// machinery (conn.serve: its context, request and header parsing into
// fresh maps, and a 4 KiB read buffer and a 4 KiB write buffer that a
// hijacked connection never gives back). UpgradeListener reads each new
// connection's request head itself, with a pooled buffer and under the
// server's header timeout; a real upgrade request for the WebSocket path
// goes straight to the upgrade handler with a minimal ResponseWriter
// (upgradeWriter), and every other connection — another path or method,
// a request without Upgrade: websocket, HTTP/2 prior knowledge, a head
// larger than the buffer, anything it cannot parse — goes to the
// http.Server unchanged, the bytes already read replayed first.
//
// Plaintext listeners only: a TLS listener keeps net/http's path (the
// handshake, client certificates and ALPN stay with crypto/tls and
// net/http).

// headBufBytes bounds the request head the fast path reads; a larger one
// (a browser's cookies, say) goes to the http.Server, whose own bound
// applies.
const headBufBytes = 4 << 10

var headBufs = sync.Pool{New: func() any { b := make([]byte, headBufBytes); return &b }}

var headReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, headBufBytes) }}

// UpgradeListener wraps ln, the listener an http.Server serves: upgrade
// requests for path (GET, HTTP/1.1, Upgrade: websocket, no body) are
// served by h without the server; Accept returns every other connection.
// headerTimeout bounds the head's reading, as the server's
// ReadHeaderTimeout does (a connection handed over then has the server's
// own timeout again, so a slow head is cut within twice it).
//
// Heads are read and upgrades served on pool's kept goroutines (their
// stacks grown by net/http's parser and the handshake: a new goroutine's
// would grow, and be copied, on every connection); the session then runs
// on a goroutine of its own. The caller closes pool after the listener.
func UpgradeListener(ln net.Listener, path string, h http.Handler, headerTimeout time.Duration, pool *workers.Pool) net.Listener {
	l := &upgradeListener{Listener: ln, prefix: "GET " + path, h: h, timeout: headerTimeout,
		handoff: make(chan accepted), done: make(chan struct{}), sniffing: make(map[net.Conn]struct{}),
		sniffers: pool}
	go l.accept()
	return l
}

type accepted struct {
	c   net.Conn
	err error
}

type upgradeListener struct {
	net.Listener
	prefix  string // "GET /v1/ws"
	h       http.Handler
	timeout time.Duration

	handoff chan accepted // to Accept
	done    chan struct{} // closed by Close
	once    sync.Once

	mu       sync.Mutex // guards sniffing
	sniffing map[net.Conn]struct{}
	wg       sync.WaitGroup // sniff goroutines
	sniffers *workers.Pool  // reads heads and serves upgrades
}

func (l *upgradeListener) accept() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			// The server backs off on a temporary error before it asks
			// again; any other error ends its Serve.
			select {
			case l.handoff <- accepted{err: err}:
			case <-l.done:
				return
			}
			if isTemporary(err) {
				continue
			}
			return
		}
		l.mu.Lock()
		select {
		case <-l.done:
			l.mu.Unlock()
			c.Close()
			return
		default:
		}
		l.sniffing[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		l.sniffers.Schedule(func() { l.sniff(c) })
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// Accept returns the next connection for the http.Server.
func (l *upgradeListener) Accept() (net.Conn, error) {
	select {
	case a := <-l.handoff:
		return a.c, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, closes the connections whose heads are being
// read, and waits for their goroutines.
func (l *upgradeListener) Close() error {
	var err error
	l.once.Do(func() {
		l.mu.Lock()
		close(l.done)
		for c := range l.sniffing {
			c.Close()
		}
		l.mu.Unlock()
		err = l.Listener.Close()
		l.wg.Wait()
	})
	return err
}

func (l *upgradeListener) sniffed(c net.Conn) {
	l.mu.Lock()
	delete(l.sniffing, c)
	l.mu.Unlock()
	l.wg.Done()
}

// sniff reads c's request head and serves the upgrade, or hands c over.
func (l *upgradeListener) sniff(c net.Conn) {
	defer l.sniffed(c)
	bp := headBufs.Get().(*[]byte)
	defer headBufs.Put(bp)
	buf := *bp
	n, end, ok := l.readHead(c, buf)
	if !ok {
		c.Close() // as net/http does: a timeout or a read error ends it silently
		return
	}
	if end > 0 {
		if r := l.upgradeRequest(buf[:end]); r != nil {
			_ = c.SetReadDeadline(time.Time{})
			r.RemoteAddr = c.RemoteAddr().String()
			l.serve(c, r, buf[end:n])
			return
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	rc := &replayConn{Conn: c, buf: bytes.Clone(buf[:n])}
	select {
	case l.handoff <- accepted{c: rc}:
	case <-l.done:
		c.Close()
	}
}

// readHead reads into buf until the head ends (end > 0, its length), it
// is clear that it is not for the fast path or buf is full (end 0), or
// the timeout or a read error ends the connection (ok false).
func (l *upgradeListener) readHead(c net.Conn, buf []byte) (n, end int, ok bool) {
	if err := c.SetReadDeadline(time.Now().Add(l.timeout)); err != nil {
		return 0, 0, false
	}
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		from := max(0, n-3)
		n += m
		if m > 0 {
			if !l.maybeUpgrade(buf[:n]) {
				return n, 0, true
			}
			if i := headEnd(buf[from:n]); i > 0 {
				return n, from + i, true
			}
		}
		if err != nil {
			return n, 0, false
		}
	}
	return n, 0, true
}

// maybeUpgrade reports whether b, the start of a request, may still be a
// request line for the fast path's method and path.
func (l *upgradeListener) maybeUpgrade(b []byte) bool {
	p := l.prefix
	if len(b) <= len(p) {
		return string(b) == p[:len(b)]
	}
	return string(b[:len(p)]) == p && (b[len(p)] == ' ' || b[len(p)] == '?')
}

// headEnd returns the length of the head that b holds (through its empty
// line, CRLF or a bare LF as net/http accepts), or 0.
func headEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return 0
}

// upgradeRequest parses head with net/http's parser and returns the
// request when it is one the fast path serves, else nil (the server then
// answers it as before).
func (l *upgradeListener) upgradeRequest(head []byte) *http.Request {
	br := headReaders.Get().(*bufio.Reader)
	br.Reset(bytes.NewReader(head))
	r, err := http.ReadRequest(br)
	br.Reset(nil)
	headReaders.Put(br)
	if err != nil || r.Method != http.MethodGet || "GET "+r.URL.Path != l.prefix || r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.ContentLength != 0 ||
		len(r.TransferEncoding) > 0 || r.URL.IsAbs() || r.Header.Get("Expect") != "" ||
		!httpguts.HeaderValuesContainsToken(r.Header.Values("Upgrade"), "websocket") || !validHost(r) {
		return nil
	}
	return r
}

// validHost reports whether r, read by http.ReadRequest (which refuses
// more than one Host header), has a Host the http.Server would take: it
// answers 400 to a missing or malformed one.
func validHost(r *http.Request) bool {
	return r.Host != "" && httpguts.ValidHostHeader(r.Host)
}

// serve runs the upgrade handler on r; unless it hijacked c, its answer
// is written and c closed.
func (l *upgradeListener) serve(c net.Conn, r *http.Request, rest []byte) {
	w := &upgradeWriter{c: c, rest: rest, timeout: l.timeout}
	defer func() {
		if !w.hijacked {
			w.finish()
		}
	}()
	l.h.ServeHTTP(w, r)
}

// replayConn is a connection handed to the http.Server: its reads return
// what the head's reading took first.
type replayConn struct {
	net.Conn
	buf []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		if c.buf = c.buf[n:]; len(c.buf) == 0 {
			c.buf = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// ReadFrom keeps the connection's own ReadFrom (sendfile for a file's
// download) in reach of the server.
func (c *replayConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

// CloseWrite lets the server half-close as on the connection itself.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
