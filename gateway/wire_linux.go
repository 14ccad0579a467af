package gateway

import (
	"net"
	"syscall"
	"unsafe"
)

// rawWriter writes to a socket's file descriptor without waiting:
// writev(2) on the non-blocking socket Go's poller holds, once.
type rawWriter interface {
	tryWrite(bufs [][]byte, scratch *iovecs) (int, error)
}

// iovecs is a writer's reusable iovec array.
type iovecs []syscall.Iovec

type fdWriter struct{ rc syscall.RawConn }

// newRawWriter returns conn's raw writer (TCP and Unix sockets), else
// nil (a TLS connection: its records are written by crypto/tls).
func newRawWriter(conn net.Conn) rawWriter {
	var rc syscall.RawConn
	var err error
	switch c := conn.(type) {
	case *net.TCPConn:
		rc, err = c.SyscallConn()
	case *net.UnixConn:
		rc, err = c.SyscallConn()
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	return fdWriter{rc}
}

func (f fdWriter) tryWrite(bufs [][]byte, scratch *iovecs) (int, error) {
	iov := (*scratch)[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
	}
	defer func() {
		clear(iov) // let the frames go
		*scratch = iov[:0]
	}()
	if len(iov) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	// The callback returns true: one attempt, never a wait for the
	// socket (the pool's writers serve every session).
	err := f.rc.Write(func(fd uintptr) bool {
		for {
			var r uintptr
			var e syscall.Errno
			if len(iov) == 1 { // a live room's usual write: one shared event
				r, _, e = syscall.Syscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(iov[0].Base)), uintptr(iov[0].Len))
			} else {
				r, _, e = syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
			}
			if e == syscall.EINTR {
				continue
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno == syscall.EAGAIN:
		return 0, nil
	case errno != 0:
		return 0, errno
	}
	return n, nil
}
