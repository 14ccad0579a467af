package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Lag is a slow link, for fault injection (Partition.SetLag): what
// crosses it arrives late, as over a congested or far-away network.
type Lag struct {
	// Delay is how late everything arrives, each way. Jitter adds up to
	// that much more to each piece, at random; a stream's bytes still
	// arrive in order.
	Delay, Jitter time.Duration
	// Loss is the fraction of gossip packets dropped, each way. Streams
	// lose nothing: TCP would send again, which shows as delay.
	Loss float64
}

// maxLag bounds a Lag's delay and jitter.
const maxLag = 10 * time.Second

// Check says what is wrong with l, if anything.
func (l Lag) Check() error {
	switch {
	case l.Delay < 0 || l.Delay > maxLag:
		return fmt.Errorf("delay %s is not within 0 and %s", l.Delay, maxLag)
	case l.Jitter < 0 || l.Jitter > maxLag:
		return fmt.Errorf("jitter %s is not within 0 and %s", l.Jitter, maxLag)
	case !(l.Loss >= 0 && l.Loss < 1): // NaN too
		return fmt.Errorf("loss %v is not within 0 and 1 (1 itself is a partition)", l.Loss)
	}
	return nil
}

// late returns one piece's delay.
func (l Lag) late() time.Duration {
	if l.Jitter > 0 {
		return l.Delay + rand.N(l.Jitter+1)
	}
	return l.Delay
}

// lost draws whether one packet is dropped.
func (l Lag) lost() bool { return l.Loss > 0 && rand.Float64() < l.Loss }

// lineBytes bounds the bytes a delay line holds: a writer waits (as on a
// full socket) until the line has room.
const lineBytes = 4 << 20

// A delayLine is one direction of a lagged connection: pieces of the
// stream, each due at a time, in order. One side puts, the other takes.
type delayLine struct {
	mu       sync.Mutex
	q        []piece
	size     int       // bytes in q
	due      time.Time // the last piece's due time
	deadline time.Time // the putting (writing) or taking (reading) caller's
	err      error     // the stream's end, given after what is queued
	closed   bool      // given up: no more puts, takes see net.ErrClosed
	moved    chan struct{}
}

type piece struct {
	b  []byte
	at time.Time
}

func newDelayLine() *delayLine { return &delayLine{moved: make(chan struct{})} }

// signal wakes whoever waits on the line (l.mu held).
func (l *delayLine) signal() {
	close(l.moved)
	l.moved = make(chan struct{})
}

// setDeadline is the caller's deadline for its side of the line.
func (l *delayLine) setDeadline(t time.Time) {
	l.mu.Lock()
	l.deadline = t
	l.signal()
	l.mu.Unlock()
}

// close gives the line up: queued pieces are dropped.
func (l *delayLine) close() {
	l.mu.Lock()
	l.closed, l.q, l.size = true, nil, 0
	l.signal()
	l.mu.Unlock()
}

// end ends the stream after what is queued (the taker then gets err).
func (l *delayLine) end(err error) {
	l.mu.Lock()
	l.err = err
	l.signal()
	l.mu.Unlock()
}

// put queues a copy of b, due d from now but not before the pieces ahead
// of it; it waits while the line is full, until the line is closed, ended
// or (obey: the line's deadline binds) its deadline passes.
func (l *delayLine) put(b []byte, d time.Duration, obey bool) error {
	for {
		l.mu.Lock()
		switch {
		case l.closed:
			l.mu.Unlock()
			return net.ErrClosed
		case l.err != nil:
			err := l.err
			l.mu.Unlock()
			return err
		case obey && passed(l.deadline):
			l.mu.Unlock()
			return os.ErrDeadlineExceeded
		case l.size == 0 || l.size+len(b) <= lineBytes:
			at := time.Now().Add(d)
			if at.Before(l.due) {
				at = l.due
			}
			l.q = append(l.q, piece{b: append([]byte(nil), b...), at: at})
			l.size += len(b)
			l.due = at
			l.signal()
			l.mu.Unlock()
			return nil
		}
		moved, until := l.moved, time.Time{}
		if obey {
			until = l.deadline
		}
		l.mu.Unlock()
		await(moved, until)
	}
}

// take waits for the first piece to be due and returns it, still queued
// (consume drops what was used), or the stream's end once nothing is
// queued; it waits until the line is closed or (obey: the line's deadline
// binds) its deadline passes.
func (l *delayLine) take(obey bool) ([]byte, error) {
	for {
		l.mu.Lock()
		var until time.Time
		switch {
		case l.closed:
			l.mu.Unlock()
			return nil, net.ErrClosed
		case obey && passed(l.deadline):
			l.mu.Unlock()
			return nil, os.ErrDeadlineExceeded
		case len(l.q) > 0:
			if until = l.q[0].at; !passed(until) {
				break
			}
			b := l.q[0].b
			l.mu.Unlock()
			return b, nil
		case l.err != nil:
			err := l.err
			l.mu.Unlock()
			return nil, err
		}
		moved := l.moved
		if obey && !l.deadline.IsZero() && (until.IsZero() || l.deadline.Before(until)) {
			until = l.deadline
		}
		l.mu.Unlock()
		await(moved, until)
	}
}

// consume drops the first n bytes of the first piece (taken by take).
func (l *delayLine) consume(n int) {
	l.mu.Lock()
	if len(l.q) > 0 { // not closed meanwhile
		l.size -= n
		if l.q[0].b = l.q[0].b[n:]; len(l.q[0].b) == 0 {
			l.q[0] = piece{}
			l.q = l.q[1:]
		}
		l.signal()
	}
	l.mu.Unlock()
}

// idle reports whether nothing is queued.
func (l *delayLine) idle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.q) == 0
}

// passed reports whether t is set and past.
func passed(t time.Time) bool { return !t.IsZero() && !time.Now().Before(t) }

// await waits for moved to close, or until until (zero: no bound).
func await(moved <-chan struct{}, until time.Time) {
	if until.IsZero() {
		<-moved
		return
	}
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-moved:
	case <-t.C:
	}
}

// lagOf returns the lag of the link to addr, if it has one.
func (p *Partition) lagOf(addr string) (Lag, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.lags[addr]
	return l.Lag, ok
}

// lagged is one address's lag, and whose address it is.
type lagged struct {
	node string
	Lag
}

// SetLag makes this node's (self's) links to the named members of v slow,
// at every address v knows for them, replacing any lag they had. It
// fails, changing nothing, when a name is not another member or l is out
// of bounds. Told to both sides, each direction of every link is slowed
// once: a connection's dialler delays what it sends and what it receives,
// and a gossip packet's sender delays (or drops) it.
func (p *Partition) SetLag(v *View, self string, names []string, l Lag) error {
	if err := l.Check(); err != nil {
		return err
	}
	addrs, err := memberAddrs(v, self, names)
	if err != nil {
		return err
	}
	for name, as := range addrs {
		p.setLag(name, as, l)
	}
	return nil
}

// setLag lags node's link at every address in addrs.
func (p *Partition) setLag(node string, addrs []string, l Lag) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range addrs {
		if a != "" {
			p.lags[a] = lagged{node: node, Lag: l}
		}
	}
}

// EndLag ends every lag; what is in flight still arrives late.
func (p *Partition) EndLag() {
	p.mu.Lock()
	clear(p.lags)
	p.mu.Unlock()
}

// NodeLag is a lagged node, as Lags lists it.
type NodeLag struct {
	Node string
	Lag
}

// Lags returns the lagged nodes, sorted by name.
func (p *Partition) Lags() []NodeLag {
	p.mu.Lock()
	defer p.mu.Unlock()
	byNode := map[string]Lag{}
	for _, l := range p.lags {
		byNode[l.node] = l.Lag
	}
	out := make([]NodeLag, 0, len(byNode))
	for n, l := range byNode {
		out = append(out, NodeLag{Node: n, Lag: l})
	}
	slices.SortFunc(out, func(a, b NodeLag) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// The lagged side of a faultConn: its dialler delays both directions, so
// that a request and its answer on one connection are each late once.
// A connection opened before its link lagged starts delaying at its next
// read or write; one that lagged goes on through its delay lines (with no
// delay) after the lag ends, so that its bytes stay in order.

// Write sends b now, or queues it on the write line when the link lags
// (or lagged).
func (c *faultConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	l, closed := c.writeLine()
	switch {
	case closed:
		return 0, net.ErrClosed
	case l == nil:
		return c.Conn.Write(b)
	}
	lag, _ := c.p.lagOf(c.addr)
	if err := l.put(b, lag.late(), true); err != nil {
		return 0, err
	}
	return len(b), nil
}

// writeLine returns the write line, starting it (and its flusher) when
// the link lags; nil: write directly. closed: the conn was closed.
func (c *faultConn) writeLine() (l *delayLine, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, true
	}
	c.startLine(&c.wline, c.wdeadline, c.Conn.SetWriteDeadline, c.flush)
	return c.wline, false
}

// startLine starts *line (c.mu held), unless it runs already or the link
// does not lag: it takes the caller's deadline, which no longer binds the
// connection (the flusher's writes and the pump's reads are not the
// caller's), and run drives it.
func (c *faultConn) startLine(line **delayLine, deadline time.Time, setDirect func(time.Time) error, run func(*delayLine)) {
	if *line != nil {
		return
	}
	if lag, ok := c.p.lagOf(c.addr); !ok || lag.Delay+lag.Jitter == 0 {
		return
	}
	l := newDelayLine()
	l.deadline = deadline
	setDirect(time.Time{})
	*line = l
	go run(l)
}

// flush writes the write line's pieces to the connection as they fall
// due; when the conn is closed (Close) and the line is empty, it closes
// the connection.
func (c *faultConn) flush(l *delayLine) {
	for {
		b, err := l.take(false)
		if err != nil { // closed: the connection was closed at once
			return
		}
		if _, err := c.Conn.Write(b); err != nil {
			l.close() // the next Write fails
			c.Conn.Close()
			return
		}
		l.consume(len(b))
		if c.closingAndIdle(l) {
			c.Conn.Close()
			return
		}
	}
}

// closingAndIdle reports whether the conn was closed and l has nothing left.
func (c *faultConn) closingAndIdle(l *delayLine) bool {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	return closed && l.idle()
}

// Read reads directly, or from the read line when the link lags (or
// lagged); Reads are one at a time, as on any stream.
func (c *faultConn) Read(b []byte) (int, error) {
	l := c.readLine()
	if l == nil {
		return c.Conn.Read(b)
	}
	p, err := l.take(true)
	if err != nil {
		return 0, err
	}
	n := copy(b, p)
	l.consume(n)
	return n, nil
}

// readLine returns the read line, starting it (and its pump) when the
// link lags; nil: read directly.
func (c *faultConn) readLine() *delayLine {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.startLine(&c.rline, c.rdeadline, c.Conn.SetReadDeadline, c.pump)
	}
	return c.rline
}

// pump reads the connection into the read line, each piece due when the
// link's lag says, until the connection ends or the line is closed.
func (c *faultConn) pump(l *delayLine) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Conn.Read(buf)
		if n > 0 {
			lag, _ := c.p.lagOf(c.addr)
			if l.put(buf[:n], lag.late(), false) != nil {
				return
			}
		}
		if err != nil {
			l.end(err)
			return
		}
	}
}

func (c *faultConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *faultConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(t, &c.rdeadline, &c.rline, c.Conn.SetReadDeadline)
}

func (c *faultConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(t, &c.wdeadline, &c.wline, c.Conn.SetWriteDeadline)
}

// setDeadline records one side's deadline and sets it where that side
// waits: on its delay line once it has one, else on the connection.
func (c *faultConn) setDeadline(t time.Time, mine *time.Time, line **delayLine, direct func(time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	*mine = t
	if *line != nil {
		(*line).setDeadline(t)
		return nil
	}
	return direct(t)
}

// lingerAfterClose bounds how long a closed conn's queued bytes may take
// to go out before the connection is closed anyway.
const lingerAfterClose = 2*maxLag + 5*time.Second

// Close closes the conn: at once when nothing is queued to go out, else
// (as TCP does) once the write line has sent what it holds, within
// lingerAfterClose. Reads end at once.
func (c *faultConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closed = true
	wl, rl := c.wline, c.rline
	c.mu.Unlock()
	c.p.forget(c)
	if rl != nil {
		rl.close()
	}
	if wl == nil || wl.idle() { // else the flusher closes it (closingAndIdle)
		if wl != nil {
			wl.close()
		}
		return c.Conn.Close()
	}
	time.AfterFunc(lingerAfterClose, c.abort)
	return nil
}

// abort closes the connection at once, dropping what its lines hold (a
// cut).
func (c *faultConn) abort() {
	c.mu.Lock()
	c.closed = true
	wl, rl := c.wline, c.rline
	c.mu.Unlock()
	c.p.forget(c)
	for _, l := range []*delayLine{wl, rl} {
		if l != nil {
			l.close()
		}
	}
	c.Conn.Close()
}
