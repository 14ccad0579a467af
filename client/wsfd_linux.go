//go:build linux

package client

import (
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A socket handed to a Poller leaves Go's own poller: it would otherwise
// be registered in two epoll instances, and every segment that arrives
// would wake both (the sender's write pays for the wake-ups too). The
// poller duplicates the descriptor, closes the net.Conn (Go takes its
// descriptor out of its poller and closes it; the socket lives on
// through the duplicate, non-blocking as before), and from then on the
// connection writes and closes through an fdConn.

// fdConn is a non-blocking socket outside Go's poller. A write that
// finds the send buffer full waits for room with poll(2); shutdown wakes
// it. Close never races a write onto a reused descriptor: both hold wmu.
type fdConn struct {
	wmu sync.Mutex // serializes Write and Close
	mu  sync.Mutex // guards fd and down, so shutdown never hits a reused descriptor
	fd  int        // -1 once closed
	// down is set once the socket was shut down: writes fail.
	down bool
}

// detachFD takes conn's socket out of Go's poller (see above); conn.wmu
// and conn.mu are held, conn is open and no one reads it. It returns the
// duplicate descriptor, or false when the socket is not a plain TCP one
// or could not be duplicated (conn is then left as it was).
func (c *wsConn) detachFD() (int, bool) {
	if _, ok := c.nc.(*net.TCPConn); !ok || c.raw == nil {
		return -1, false
	}
	fd := -1
	var derr error
	if err := c.raw.Control(func(f uintptr) {
		fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || derr != nil || fd < 0 {
		return -1, false
	}
	_ = c.nc.Close() // Go deregisters and closes its descriptor; the duplicate keeps the socket
	c.rwc, c.nc, c.raw = &fdConn{fd: fd}, nil, nil
	return fd, true
}

// Read reads like a blocking read (unused while a Poller reads the
// connection, which it does until the connection ends).
func (f *fdConn) Read(p []byte) (int, error) {
	for {
		f.mu.Lock()
		fd, down := f.fd, f.down
		f.mu.Unlock()
		if fd < 0 || down {
			return 0, net.ErrClosed
		}
		n, err := syscall.Read(fd, p)
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			if err := f.wait(fd, unix.POLLIN); err != nil {
				return 0, err
			}
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		default:
			return n, nil
		}
	}
}

// Write writes all of p, waiting for room in the send buffer as needed.
func (f *fdConn) Write(p []byte) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	fd := f.fd // Close changes it only under wmu
	written := 0
	for written < len(p) {
		if fd < 0 {
			return written, net.ErrClosed
		}
		n, err := syscall.Write(fd, p[written:])
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			if err := f.wait(fd, unix.POLLOUT); err != nil {
				return written, err
			}
		case err != nil:
			if f.isDown() {
				return written, net.ErrClosed
			}
			return written, os.NewSyscallError("write", err)
		default:
			written += n
		}
	}
	return written, nil
}

// wait waits for fd to be ready for events, or to be shut down. The
// caller keeps fd open (it holds wmu, or reads it as its only reader).
func (f *fdConn) wait(fd int, events int16) error {
	for {
		if f.isDown() {
			return net.ErrClosed
		}
		// A shutdown socket polls ready (POLLHUP), so shutdown wakes
		// this wait; the next round sees down.
		pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
		if _, err := unix.Poll(pfd, -1); err != nil && err != unix.EINTR {
			return os.NewSyscallError("poll", err)
		}
		if pfd[0].Revents != 0 {
			if f.isDown() {
				return net.ErrClosed
			}
			return nil
		}
	}
}

func (f *fdConn) isDown() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

// shutdown shuts the socket down (once): waiting writes and reads wake
// and fail, and the server sees the connection end.
func (f *fdConn) shutdown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd >= 0 && !f.down {
		f.down = true
		_ = syscall.Shutdown(f.fd, syscall.SHUT_RDWR)
	}
}

// Close shuts the socket down, waits for a write in progress to let go
// of it, and closes it.
func (f *fdConn) Close() error {
	f.shutdown()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd < 0 {
		return nil
	}
	err := syscall.Close(f.fd)
	f.fd = -1
	if err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
