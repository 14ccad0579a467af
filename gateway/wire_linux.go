package gateway

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawWriter writes to a socket's file descriptor without waiting:
// send(2) on the non-blocking socket Go's poller holds, once.
type rawWriter interface {
	tryWrite(bufs [][]byte, scratch *iovecs) (int, error)
}

// iovecs is a writer's reusable state for its writes: the iovec array,
// the last write's result, and the function that makes the write (made
// once, so a write allocates nothing).
type iovecs struct {
	iov   []unix.Iovec
	msg   unix.Msghdr
	n     int
	errno syscall.Errno
	fn    func(fd uintptr)
}

// fdWriter writes on a socket's descriptor number, taken once.
type fdWriter struct{ fd uintptr }

// newRawWriter returns conn's raw writer (a TCP or Unix socket, also one
// a ConnLimit counts), else nil (a TLS connection: its records are
// written by crypto/tls).
func newRawWriter(conn net.Conn) rawWriter {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	fd := ^uintptr(0)
	if rc.Control(func(d uintptr) { fd = d }) != nil || fd == ^uintptr(0) {
		return nil
	}
	return fdWriter{fd}
}

// tryWrite makes one send(2) of bufs on the descriptor. It
// holds nothing of the runtime's: not RawConn.Write, which would take the
// descriptor's write lock and reset its poller state for a wait that
// never comes (a tenth of a live room's node CPU), nor RawConn.Control,
// whose reference count on the descriptor cost about 4 % more (its
// atomics on a descriptor not touched since the last event). The wire
// keeps the descriptor open instead: it closes the connection only when
// no raw write is under way, and starts none once a close was asked for
// (wire.close). Writes to one connection are already one at a time (the
// outbox's busy flag), and a write that must wait is the session's own
// goroutine's (writeRest, through net.Conn.Write, which prepares the
// poller itself).
func (f fdWriter) tryWrite(bufs [][]byte, s *iovecs) (int, error) {
	iov := s.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
	}
	s.iov = iov
	defer func() {
		clear(s.iov) // let the frames go
		s.iov = s.iov[:0]
	}()
	if len(iov) == 0 {
		return 0, nil
	}
	if s.fn == nil {
		s.fn = s.write
	}
	s.n, s.errno = 0, 0
	s.fn(f.fd)
	switch {
	case s.errno == syscall.EAGAIN:
		return 0, nil
	case s.errno != 0:
		return 0, s.errno
	}
	return s.n, nil
}

// write writes s.iov to fd, once (retrying only an interrupted call).
// The socket is non-blocking, so the call never waits: it is made raw,
// without telling the scheduler (entersyscall and exitsyscall would be a
// few percent of a delivery's cost). It is a send(2) rather than a
// write(2): a socket's own call skips the file layer's work on each
// write (the position lock, the checks and notifications of a file), and
// MSG_NOSIGNAL makes a write to a closed connection an EPIPE without a
// signal. A descriptor that is not a socket (ENOTSOCK) is written as a
// file.
func (s *iovecs) write(fd uintptr) {
	for {
		r, e := s.send(fd)
		if e == syscall.ENOTSOCK {
			r, e = s.writeFile(fd) // a pipe or file, in a test
		}
		if e == syscall.EINTR {
			continue
		}
		s.n, s.errno = int(r), e
		return
	}
}

// send makes one sendto(2) (a live room's usual write: one shared event)
// or sendmsg(2) of s.iov.
func (s *iovecs) send(fd uintptr) (uintptr, syscall.Errno) {
	const flags = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
	if len(s.iov) == 1 {
		r, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(s.iov[0].Base)), uintptr(s.iov[0].Len), flags, 0, 0)
		return r, e
	}
	s.msg.Iov = &s.iov[0]
	s.msg.SetIovlen(len(s.iov))
	r, _, e := syscall.RawSyscall(syscall.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&s.msg)), flags)
	return r, e
}

// writeFile makes one write(2) or writev(2) of s.iov.
func (s *iovecs) writeFile(fd uintptr) (uintptr, syscall.Errno) {
	if len(s.iov) == 1 {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(s.iov[0].Base)), uintptr(s.iov[0].Len))
		return r, e
	}
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&s.iov[0])), uintptr(len(s.iov)))
	return r, e
}
