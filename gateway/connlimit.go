package gateway

import (
	"container/list"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// ConnLimit is a listener that holds at most a fixed number of its
// connections open at once: WebSocket sessions, HTTP API connections
// and those still sending their request head alike. Every connection is
// a file descriptor, and so is every file the node's storage opens: a
// crowd of idle connections must not take the descriptors Pebble needs
// (the node would then fail to open a table) nor leave accept(2)
// failing with EMFILE. At the limit, an HTTP keep-alive connection idle
// between requests (HTTPState tells which) is closed to make room: the
// one idle longest. With none, a new connection is accepted and closed —
// on a plaintext listener after a 503 `unavailable` answer to its
// request — so that its client learns now, not at its dial timeout, to
// try later or another node.
type ConnLimit struct {
	net.Listener
	max    int64
	answer bool // a refused connection is told why (plaintext HTTP)
	log    *slog.Logger

	open     atomic.Int64
	refused  atomic.Uint64
	evicted  atomic.Uint64
	refusers atomic.Int32 // goroutines answering refused connections
	logged   atomic.Int64 // unix nanoseconds of the last refusal logged

	mu     sync.Mutex
	idle   list.List                  // HTTP connections idle between requests, longest idle first
	idleAt map[net.Conn]*list.Element // their places in idle
}

// connRefusalRetry is the retry hint of a refused connection.
const connRefusalRetry = time.Second

// LimitConnections limits ln to max open connections. answer says the
// listener is plaintext HTTP, so a refused connection can be told why;
// on a TLS listener it is closed without a word.
func LimitConnections(ln net.Listener, max int, answer bool, log *slog.Logger) *ConnLimit {
	l := &ConnLimit{Listener: ln, max: int64(max), answer: answer, log: log, idleAt: make(map[net.Conn]*list.Element)}
	return l
}

// Open is how many of the listener's connections are open.
func (l *ConnLimit) Open() int64 { return l.open.Load() }

// Max is the limit.
func (l *ConnLimit) Max() int64 { return l.max }

// Refused is how many connections were refused at the limit.
func (l *ConnLimit) Refused() uint64 { return l.refused.Load() }

// Evicted is how many idle HTTP connections were closed to make room.
func (l *ConnLimit) Evicted() uint64 { return l.evicted.Load() }

// HTTPState is the http.Server's ConnState hook of the listener's
// server: it keeps the connections idle between requests in the order
// they went idle.
func (l *ConnLimit) HTTPState(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.idleAt[c]; ok {
		l.idle.Remove(e)
		delete(l.idleAt, c)
	}
	if st == http.StateIdle {
		l.idleAt[c] = l.idle.PushBack(c)
	}
}

// evictIdle closes the HTTP connection idle longest, if there is one,
// and reports whether it did. Its socket is closed under any TLS (a TLS
// close would first write an alert, and could wait for a peer that does
// not read); the server's goroutine reading it sees the close and ends.
func (l *ConnLimit) evictIdle() bool {
	l.mu.Lock()
	e := l.idle.Front()
	if e == nil {
		l.mu.Unlock()
		return false
	}
	c := l.idle.Remove(e).(net.Conn)
	delete(l.idleAt, c)
	l.mu.Unlock()
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	_ = c.Close()
	l.evicted.Add(1)
	return true
}

// Accept returns the next connection that fits, refusing those that do
// not.
func (l *ConnLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.admit() {
			return l.track(c), nil
		}
		l.refuse(c)
	}
}

// admit counts a new connection if it fits, first closing an idle HTTP
// connection if that makes it fit (the close uncounts it at once).
func (l *ConnLimit) admit() bool {
	if l.take() {
		return true
	}
	return l.evictIdle() && l.take()
}

func (l *ConnLimit) take() bool {
	if l.open.Add(1) <= l.max {
		return true
	}
	l.open.Add(-1)
	return false
}

// refuse closes c, a connection past the limit. On a plaintext listener
// it is first told why, after its request head — a client that finds an
// answer waiting before it has sent its request takes it for a broken
// connection (Go's HTTP client does) — by at most refusersMax goroutines
// at once, each for at most refuseWait: a flood past that is closed
// without a word. Those few descriptors come out of what the limit
// keeps for the rest of the node.
func (l *ConnLimit) refuse(c net.Conn) {
	n := l.refused.Add(1)
	if l.answer && l.refusers.Add(1) <= refusersMax {
		go func() {
			defer l.refusers.Add(-1)
			l.tellWhy(c)
		}()
	} else {
		if l.answer {
			l.refusers.Add(-1)
		}
		_ = c.Close()
	}
	now := time.Now().UnixNano()
	if last := l.logged.Load(); now-last >= int64(30*time.Second) && l.logged.CompareAndSwap(last, now) && l.log != nil {
		l.log.Warn("refusing connections: the listener is at its connection limit (--max-connections)",
			"open", l.open.Load(), "max", l.max, "refused_total", n)
	}
}

const (
	refusersMax = 64
	refuseWait  = 2 * time.Second
)

// tellWhy reads c's request head (what arrives within refuseWait, up to
// headBufBytes), answers it 503 unavailable, and closes c after the
// client has had the answer: its write side first, then whatever else
// the client sends is read and dropped until it closes too or the time
// is up, so that unread bytes do not make the close a reset that could
// overtake the answer.
func (l *ConnLimit) tellWhy(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refuseWait))
	bp := headBufs.Get().(*[]byte)
	defer headBufs.Put(bp)
	buf, n := *bp, 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		from := max(0, n-3)
		n += m
		if headEnd(buf[from:n]) > 0 {
			break
		}
		if err != nil {
			return // gone, or silent: nothing to answer
		}
	}
	w := &upgradeWriter{c: c, timeout: refuseWait}
	e := protocol.Errorf(protocol.CodeUnavailable, "server at its connection limit: reconnect later or elsewhere")
	e.RetryAfterMS = connRefusalRetry.Milliseconds()
	writeHTTPError(w, 0, e)
	if w.respond() != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}
}

// track returns c counted until its first Close. A TCP connection stays
// a *net.TCPConn underneath (limitedTCP embeds it), so its file
// descriptor and vectored writes are still reachable (wire_linux.go).
func (l *ConnLimit) track(c net.Conn) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		return &limitedTCP{TCPConn: tc, l: l}
	}
	return &limitedConn{Conn: c, l: l}
}

func (l *ConnLimit) release(closed *atomic.Bool) {
	if closed.CompareAndSwap(false, true) {
		l.open.Add(-1)
	}
}

type limitedTCP struct {
	*net.TCPConn
	l      *ConnLimit
	closed atomic.Bool
}

func (c *limitedTCP) Close() error {
	c.l.release(&c.closed)
	return c.TCPConn.Close()
}

type limitedConn struct {
	net.Conn
	l      *ConnLimit
	closed atomic.Bool
}

func (c *limitedConn) Close() error {
	c.l.release(&c.closed)
	return c.Conn.Close()
}
