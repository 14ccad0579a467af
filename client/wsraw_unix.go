//go:build unix

package client

import (
	"io"
	"net"
	"os"
	"syscall"
)

// A plain socket is read through its syscall.RawConn: one RawConn.Read
// call reads, parses and hands on what came, and waits in Go's poller
// for more without leaving the call. net.Conn.Read would, after each
// read that returned data, read again only to learn there is no more
// (EAGAIN) before it parks: two reads per wake-up where one does. A read
// that left data in the socket (it filled the buffer) reads again at
// once; one that did not has drained it, so the next edge the poller
// reports is new data.

// rawConnOf returns nc's socket for reading, or nil when nc is not a
// plain socket.
func rawConnOf(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// readRaw reads on the socket until an error or stop.
func (c *wsConn) readRaw() error {
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.rawReading = true
	c.mu.Unlock()
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		done, e := c.readFD(int(fd))
		rerr = e
		return done
	})
	c.mu.Lock()
	c.rawReading = false
	c.mu.Unlock()
	if c.closed.Load() {
		c.closeSocket()
		return net.ErrClosed
	}
	if rerr != nil {
		return rerr
	}
	return err // the poller's: the connection was closed, or a deadline
}

// readFD reads what the socket holds and parses it; done reports that
// the reading ends (err says why, nil for stop), !done that the socket
// is drained and the caller waits for more.
func (c *wsConn) readFD(fd int) (done bool, err error) {
	for {
		if c.closed.Load() {
			return true, net.ErrClosed
		}
		p := c.space()
		n, err := syscall.Read(fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false, nil
		case err != nil:
			return true, os.NewSyscallError("read", err)
		case n == 0:
			return true, io.ErrUnexpectedEOF // no close frame came first
		}
		c.w += n
		if err := c.parse(); err != nil {
			return true, c.ended(err)
		}
		if c.stop {
			return true, nil
		}
		if n < len(p) {
			return false, nil
		}
	}
}
