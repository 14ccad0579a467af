//go:build linux

package client

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
)

// A shard is one goroutine and its epoll instance. Its connections'
// sockets are registered level-triggered under an id of their own (never
// the fd, which the system reuses once a socket is closed): a ready
// socket is read once per round and, if data is left, is ready again the
// next. The goroutine does not block a thread in epoll_wait: the epoll
// descriptor is itself waited on by Go's poller (epoll descriptors are
// pollable), so the shard parks like any goroutine reading a socket and
// wakes when one of its connections is ready, then takes every ready
// one with non-blocking epoll_waits.
//
// A plain TCP socket handed to a shard leaves Go's own poller (add:
// the descriptor is duplicated and the net.Conn closed, wsfd_linux.go),
// so a segment that arrives wakes one epoll instance, not two; writes
// and the close then go through the duplicate. The shard closes it only
// after taking it out of its epoll instance (CloseNow on a polled
// connection shuts the socket down, which fails a waiting write, and
// tells the shard through its wake pipe), and the close waits for a
// write in progress, so a reused descriptor is never read or written as
// the old connection's.
type pollShard struct {
	epfd   int
	file   *os.File // epfd, as Go's poller waits on it
	raw    syscall.RawConn
	wake   [2]int // a pipe: a byte in it wakes the goroutine
	events []syscall.EpollEvent
	done   chan struct{} // closed when run returns

	mu       sync.Mutex // guards the fields below
	entries  map[uint64]*pollEntry
	nextID   uint64
	incoming []*pollEntry // added, not in epoll yet
	closing  []*pollEntry // closed by CloseNow
	stopping bool
	woken    bool // a wake byte is in the pipe
}

// pollEntry is one connection of a shard.
type pollEntry struct {
	id    uint64
	conn  *wsConn
	fd    int
	onEnd func(error)
	// The shard goroutine's own:
	added bool // in the epoll instance
	ended bool
}

// wakeID is the wake pipe's id; connections' ids start at 1.
const wakeID = 0

// pollBatch is how many ready connections one epoll_wait takes.
const pollBatch = 256

func (p *Poller) start(n int) error {
	for range n {
		s, err := newPollShard()
		if err != nil {
			for _, s := range p.shards {
				s.stop()
			}
			p.shards = nil
			return err
		}
		p.shards = append(p.shards, s)
		go s.run()
	}
	return nil
}

func newPollShard() (s *pollShard, err error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("client: poller: %w", os.NewSyscallError("epoll_create1", err))
	}
	s = &pollShard{epfd: epfd, events: make([]syscall.EpollEvent, pollBatch), done: make(chan struct{}),
		entries: make(map[uint64]*pollEntry), nextID: wakeID + 1, wake: [2]int{-1, -1}}
	defer func() {
		if err != nil {
			s.closeFDs()
		}
	}()
	if err := syscall.Pipe2(s.wake[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("client: poller: %w", os.NewSyscallError("pipe2", err))
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setEventID(&ev, wakeID)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, s.wake[0], &ev); err != nil {
		return nil, fmt.Errorf("client: poller: %w", os.NewSyscallError("epoll_ctl", err))
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		return nil, fmt.Errorf("client: poller: %w", err)
	}
	s.file = os.NewFile(uintptr(epfd), "client-poller")
	if s.raw, err = s.file.SyscallConn(); err != nil {
		return nil, fmt.Errorf("client: poller: %w", err)
	}
	return s, nil
}

// closeFDs closes the epoll descriptor and the pipe.
func (s *pollShard) closeFDs() {
	if s.file != nil {
		s.file.Close()
	} else {
		syscall.Close(s.epfd)
	}
	for _, fd := range s.wake {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
}

func setEventID(ev *syscall.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}

func eventID(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// add hands conn to the shard, which reads it from now on; onEnd gets
// why the connection ended, on the shard's goroutine. It reports false
// (and the caller reads conn itself) when the shard is stopping or conn
// is closed.
func (s *pollShard) add(conn *wsConn, onEnd func(error)) bool {
	// No write may be on the socket while it leaves Go's poller.
	conn.wmu.Lock()
	defer conn.wmu.Unlock()
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return false
	}
	conn.mu.Lock()
	if conn.closed.Load() {
		conn.mu.Unlock()
		s.mu.Unlock()
		return false
	}
	fd, ok := conn.detachFD()
	if !ok {
		conn.mu.Unlock()
		s.mu.Unlock()
		return false
	}
	e := &pollEntry{id: s.nextID, conn: conn, fd: fd, onEnd: onEnd}
	s.nextID++
	conn.rawReading = true
	conn.wake = func() { s.closed(e) }
	conn.mu.Unlock()
	s.entries[e.id] = e
	s.incoming = append(s.incoming, e)
	s.wakeLocked()
	s.mu.Unlock()
	return true
}

// closed tells the shard that e's connection was closed (CloseNow).
func (s *pollShard) closed(e *pollEntry) {
	s.mu.Lock()
	s.closing = append(s.closing, e)
	s.wakeLocked()
	s.mu.Unlock()
}

// wakeLocked wakes the shard's goroutine; s.mu is held.
func (s *pollShard) wakeLocked() {
	if s.woken {
		return
	}
	s.woken = true
	_, _ = syscall.Write(s.wake[1], []byte{1})
}

// stop ends every connection of the shard and its goroutine, and waits
// for it.
func (s *pollShard) stop() {
	s.mu.Lock()
	s.stopping = true
	s.wakeLocked()
	s.mu.Unlock()
	<-s.done
	s.closeFDs()
}

func (s *pollShard) run() {
	defer close(s.done)
	var incoming, closing []*pollEntry
	err := s.raw.Read(func(uintptr) bool {
		for {
			n, err := syscall.EpollWait(s.epfd, s.events, 0)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				s.endAll(os.NewSyscallError("epoll_wait", err))
				return true
			}
			for i := range s.events[:n] {
				id := eventID(&s.events[i])
				if id == wakeID {
					var stop bool
					incoming, closing, stop = s.woke(incoming[:0], closing[:0])
					if stop {
						s.endAll(net.ErrClosed)
						return true
					}
					continue
				}
				s.mu.Lock()
				e := s.entries[id]
				s.mu.Unlock()
				if e == nil || e.ended {
					continue // ended earlier in this batch
				}
				if done, err := e.conn.readFD(e.fd); done {
					s.end(e, err)
				}
			}
			if n < len(s.events) {
				return false // nothing more is ready: wait for Go's poller
			}
		}
	})
	if err != nil {
		s.endAll(err)
	}
}

// woke takes what add, closed and stop left for the goroutine: new
// connections are parsed as far as their buffers go (the connect reply
// may have come with events) and put in the epoll instance; closed ones
// end. It reports stop when the shard is stopping.
func (s *pollShard) woke(incoming, closing []*pollEntry) ([]*pollEntry, []*pollEntry, bool) {
	var b [64]byte
	for {
		if n, _ := syscall.Read(s.wake[0], b[:]); n < len(b) {
			break
		}
	}
	s.mu.Lock()
	s.woken = false
	incoming = append(incoming, s.incoming...)
	closing = append(closing, s.closing...)
	clear(s.incoming)
	clear(s.closing)
	s.incoming, s.closing = s.incoming[:0], s.closing[:0]
	stop := s.stopping
	s.mu.Unlock()
	for _, e := range incoming {
		if e.ended {
			continue
		}
		c := e.conn
		if c.w > c.r {
			if err := c.parse(); err != nil {
				s.end(e, c.ended(err))
				continue
			}
		}
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
		setEventID(&ev, e.id)
		if err := syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_ADD, e.fd, &ev); err != nil {
			s.end(e, os.NewSyscallError("epoll_ctl", err))
			continue
		}
		e.added = true
	}
	for _, e := range closing {
		s.end(e, net.ErrClosed)
	}
	clear(incoming)
	clear(closing)
	return incoming, closing, stop
}

// end takes e out of the shard and the epoll instance, then closes its
// socket and hands err on. Only the shard's goroutine calls it.
func (s *pollShard) end(e *pollEntry, err error) {
	if e.ended {
		return
	}
	e.ended = true
	s.mu.Lock()
	delete(s.entries, e.id)
	s.mu.Unlock()
	if e.added {
		// The socket is still open (only end closes it), so its
		// descriptor is still e's; ENOENT or EBADF would mean it was
		// never added, and is harmless.
		if derr := syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_DEL, e.fd, nil); derr != nil &&
			!errors.Is(derr, syscall.ENOENT) && !errors.Is(derr, syscall.EBADF) {
			err = errors.Join(err, os.NewSyscallError("epoll_ctl", derr))
		}
		e.added = false
	}
	c := e.conn
	c.mu.Lock()
	c.rawReading = false
	c.wake = nil
	c.mu.Unlock()
	c.finish()
	e.onEnd(err)
}

// endAll ends every connection of the shard (it stops, or its epoll
// instance failed) and refuses new ones.
func (s *pollShard) endAll(err error) {
	s.mu.Lock()
	s.stopping = true
	var all []*pollEntry
	for _, e := range s.entries {
		all = append(all, e)
	}
	s.mu.Unlock()
	for _, e := range all {
		s.end(e, err)
	}
}
