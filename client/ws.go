package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// The client speaks the client side of RFC 6455 itself (ws.go: the
// connection, writes and the close handshake; wsread.go: the frame
// reader; wsdial.go: the upgrade). It needs little of a general
// WebSocket library — text messages, pings, the close handshake, no
// extensions — and a load generator reading thousands of connections
// pays for every layer a message passes: a library's per-message reader
// machinery, and a context with its timer per read. Here a connection
// reads into one buffer of its own, hands each message on as a slice of
// it, and waits for data without a second read when the socket allows
// (wsraw_unix.go).

// CloseError is the close frame the server ended a connection with: a
// dropped connection's error (reconnect logs it) wraps one when the
// server closed it.
type CloseError struct {
	Code   int
	Reason string
}

func (e CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("client: connection closed by the server: status %d", e.Code)
	}
	return fmt.Sprintf("client: connection closed by the server: status %d: %s", e.Code, e.Reason)
}

// ErrProtocol is wrapped by the error of a connection the server broke
// the WebSocket protocol on; the client closes it with 1002 (1009 for a
// message over the read limit).
var ErrProtocol = errors.New("client: WebSocket protocol error")

// protocolError is a broken frame: the connection closes with code.
type protocolError struct {
	code int
	msg  string
}

func (e *protocolError) Error() string { return ErrProtocol.Error() + ": " + e.msg }
func (e *protocolError) Unwrap() error { return ErrProtocol }

// closeWait bounds how long Close waits for the server to answer its
// close frame (the client's own CloseTimeout is usually shorter).
const closeWait = 5 * time.Second

// readLimit bounds a message the client reads.
const readLimit = 64 << 20

// wsConn is one client WebSocket connection. Its read side belongs to
// whoever reads it (one read loop, or a Poller); writes may come from any
// goroutine.
type wsConn struct {
	rwc io.ReadWriteCloser // the upgraded connection (an *fdConn once a Poller reads it)
	nc  net.Conn           // rwc as a net.Conn (nil: not one)
	raw syscall.RawConn    // nc's socket when it is a plain one (nil: read with Read)

	reader // the read side (wsread.go)

	// done closes with the connection (CloseNow).
	done   chan struct{}
	closed atomic.Bool
	// readDone closes when the reading ends (see serve).
	readDone chan struct{}
	// closeSent is set once a close frame was sent (or given up on).
	closeSent atomic.Bool
	// pongs receives a signal for each pong (buffered: the latest counts).
	pongs chan struct{}

	mu sync.Mutex // guards the fields below
	// rawReading is set while a raw read holds the socket: closing it
	// then would wait for the read to return (internal/poll), so
	// CloseNow wakes it instead and the reader closes the socket.
	rawReading bool
	// wake, when set, is how CloseNow tells the Poller that reads the
	// connection (poller_linux.go).
	wake func()
	// sockClosed is set once rwc was closed.
	sockClosed bool
	// pendingPong is the payload of the latest ping not answered yet
	// (pongBusy: a goroutine is writing it).
	pendingPong []byte
	hasPong     bool
	pongBusy    bool

	wmu  sync.Mutex // serializes writes; guards wbuf
	wbuf []byte
}

func newWSConn(rwc io.ReadWriteCloser, nc net.Conn, buffered []byte) *wsConn {
	c := &wsConn{
		rwc:      rwc,
		nc:       nc,
		done:     make(chan struct{}),
		readDone: make(chan struct{}),
		pongs:    make(chan struct{}, 1),
	}
	c.reader.init(buffered)
	if nc != nil {
		c.raw = rawConnOf(nc)
	}
	return c
}

// Write sends p as one text message. A write that ctx ends before it is
// done fails the connection (a frame may be half written).
func (c *wsConn) Write(ctx context.Context, p []byte) error {
	return c.writeFrame(ctx, protocol.FrameText, p)
}

func (c *wsConn) writeFrame(ctx context.Context, op byte, p []byte) (err error) {
	if ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, c.CloseNow)
		defer func() {
			if !stop() && err != nil {
				err = ctx.Err()
			}
		}()
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(op, p)
}

// writeLocked writes one masked frame; c.wmu is held.
func (c *wsConn) writeLocked(op byte, p []byte) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	c.wbuf = appendFrame(c.wbuf[:0], op, p, rand.Uint32())
	_, err := c.rwc.Write(c.wbuf)
	if cap(c.wbuf) > keptWriteBuffer {
		c.wbuf = nil
	}
	if err != nil {
		c.CloseNow() // a frame may be half written: the stream is lost
		return err
	}
	return nil
}

// keptWriteBuffer bounds the write buffer a connection keeps between
// writes.
const keptWriteBuffer = 16 << 10

// appendFrame appends one final, masked client frame.
func appendFrame(b []byte, op byte, p []byte, key uint32) []byte {
	b = protocol.AppendFrameHeader(b, op, len(p), true)
	b = binary.LittleEndian.AppendUint32(b, key)
	start := len(b)
	b = append(b, p...)
	protocol.MaskBytes(key, b[start:])
	return b
}

// Ping sends a ping and waits for a pong (any pong: one ping is
// outstanding at a time, as the watchdog sends them).
func (c *wsConn) Ping(ctx context.Context) error {
	select {
	case <-c.pongs: // a stale one
	default:
	}
	var p [4]byte
	binary.LittleEndian.PutUint32(p[:], rand.Uint32())
	if err := c.writeFrame(ctx, protocol.FramePing, p[:]); err != nil {
		return err
	}
	select {
	case <-c.pongs:
		return nil
	case <-c.done:
		return net.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pong answers a ping with its payload. The reader must not wait behind
// a writer: when another write holds the connection, one goroutine at a
// time writes the pong of the latest ping (RFC 6455 5.5.3 allows
// answering only the latest). Written inline, a pong of a few bytes waits
// only if the socket's send buffer is full, that is if the server has
// stopped reading the client's requests altogether.
func (c *wsConn) pong(p []byte) {
	if c.wmu.TryLock() {
		_ = c.writeLocked(protocol.FramePong, p)
		c.wmu.Unlock()
		return
	}
	c.mu.Lock()
	c.pendingPong = append(c.pendingPong[:0], p...)
	c.hasPong = true
	start := !c.pongBusy
	c.pongBusy = true
	c.mu.Unlock()
	if start {
		go c.writePongs()
	}
}

func (c *wsConn) writePongs() {
	var p []byte
	for {
		c.mu.Lock()
		if !c.hasPong {
			c.pongBusy = false
			c.mu.Unlock()
			return
		}
		p = append(p[:0], c.pendingPong...)
		c.hasPong = false
		c.mu.Unlock()
		c.wmu.Lock()
		err := c.writeLocked(protocol.FramePong, p)
		c.wmu.Unlock()
		if err != nil {
			c.mu.Lock()
			c.hasPong, c.pongBusy = false, false
			c.mu.Unlock()
			return
		}
	}
}

// sendClose writes a close frame once, without waiting behind another
// writer when wait is false (the reader's answer to the server's close,
// or its goodbye on a protocol error: the connection ends either way).
func (c *wsConn) sendClose(ctx context.Context, code int, reason string, wait bool) error {
	if !c.closeSent.CompareAndSwap(false, true) {
		return nil
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p = append(p, reason...)
	if wait {
		return c.writeFrame(ctx, protocol.FrameClose, p)
	}
	if !c.wmu.TryLock() {
		return nil
	}
	defer c.wmu.Unlock()
	return c.writeLocked(protocol.FrameClose, p)
}

// Close sends a close frame with code and reason, waits up to closeWait
// for the server's answer (the reader sees it and ends), then closes the
// socket.
func (c *wsConn) Close(code int, reason string) error {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	err := c.sendClose(ctx, code, reason, true)
	if err == nil {
		select {
		case <-c.readDone:
		case <-c.done:
		case <-ctx.Done():
		}
	}
	c.CloseNow()
	return err
}

// CloseNow closes the connection at once. While a raw read or a Poller
// holds the socket it only wakes the reader and waiting writers (a
// deadline in the past, or a shutdown and the poller's wake pipe), and
// the reader closes the socket as it lets go of it (see wsraw_unix.go,
// poller_linux.go, wsfd_linux.go).
func (c *wsConn) CloseNow() {
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return
	}
	c.closed.Store(true)
	close(c.done)
	reading, wake := c.rawReading, c.wake
	if !reading {
		c.sockClosed = true
	}
	c.mu.Unlock()
	if reading {
		if f, ok := c.rwc.(interface{ shutdown() }); ok {
			f.shutdown() // out of Go's poller: wakes a waiting write
		} else {
			_ = c.nc.SetDeadline(aLongTimeAgo) // wakes writers too
		}
		if wake != nil {
			wake()
		}
		return
	}
	_ = c.rwc.Close()
}

var aLongTimeAgo = time.Unix(1, 0)

// closeSocket closes the socket once the connection is closed and no raw
// read holds it.
func (c *wsConn) closeSocket() {
	c.mu.Lock()
	close := c.closed.Load() && !c.rawReading && !c.sockClosed
	if close {
		c.sockClosed = true
	}
	c.mu.Unlock()
	if close {
		_ = c.rwc.Close()
	}
}
