package gateway

import (
	"slices"
	"sync"
	"time"
)

// writerPool writes the gateway's sessions' queued frames. A session with
// something to write waits in the pool's queue (once, however much it
// has: its outbox is busy until a writer finds it empty); one of a fixed
// number of writer goroutines takes it and writes everything it has
// queued, as few writes as it can (one writev(2) of many messages), and
// never waits for a socket: what a full socket does not take now is
// finished by a goroutine of that session's own (writeRest), which hands
// it back to the pool once written. So an idle session costs no writer
// goroutine, a fan-out to thousands of sessions wakes a few goroutines
// instead of thousands, and a slow client holds up nobody else. A
// session given a reply while it waits behind a fan-out goes to the
// front (promote).
type writerPool struct {
	g *Gateway

	mu   sync.Mutex // guards the fields below
	cond sync.Cond
	// ring is a FIFO of sessions to write: n of them from head, of which
	// promote may have taken some out (nil); taken counts the places
	// taken from it so far (the place of ring[head]).
	ring    []*session
	head, n int
	taken   uint64
	// urgent are sessions with a reply to write, moved out of the ring
	// or a held window (promote): taken before the ring.
	urgent  []*session
	workers int
	waiting int // workers waiting for a session
	stopped bool
	// held are sessions queued for later (addAt), and timer the wake-up
	// for the earliest of them.
	held    []heldSessions
	timer   *time.Timer
	timerAt time.Time

	wg   sync.WaitGroup // workers
	rest sync.WaitGroup // writeRest goroutines

	spare sync.Pool // *worker, for writeNow
}

// Bounds of one write: messages (iovecs) and rounds of writes a worker
// gives one session before it goes to the back of the queue.
const (
	maxIov      = 256
	writeRounds = 4
)

func newWriterPool(g *Gateway, workers int) *writerPool {
	p := &writerPool{g: g, ring: make([]*session, 64), workers: workers}
	p.cond.L = &p.mu
	for range workers {
		p.wg.Go(p.work)
	}
	return p
}

// add queues a session whose outbox said to wake it.
func (p *writerPool) add(s *session) {
	if p == nil {
		return // a test's gateway without writers
	}
	p.mu.Lock()
	p.pushLocked(s)
	if p.waiting > 0 {
		p.cond.Signal()
	}
	p.mu.Unlock()
}

// writeNow writes what s has queued on the calling goroutine, as a
// worker would, instead of queueing s and waking a worker: for a reply
// that a goroutine of the session's own is already running to send (the
// connect's), it saves a hand-off between goroutines. The caller must
// have been told to wake s (its outbox was idle).
func (p *writerPool) writeNow(s *session) {
	if p == nil {
		return
	}
	p.mu.Lock()
	stopped := p.stopped
	p.mu.Unlock()
	if stopped {
		return // as add's queue would: nobody writes any more
	}
	w, _ := p.spare.Get().(*worker)
	if w == nil {
		w = &worker{p: p}
	}
	w.serve(s)
	w.flush()
	p.spare.Put(w)
}

// addAll queues many sessions at once (a fan-out's).
func (p *writerPool) addAll(ss []*session) {
	if p == nil || len(ss) == 0 {
		return
	}
	p.mu.Lock()
	for _, s := range ss {
		p.pushLocked(s)
	}
	switch {
	case p.waiting > 1 && len(ss) > 1:
		p.cond.Broadcast()
	case p.waiting > 0:
		p.cond.Signal()
	}
	p.mu.Unlock()
}

// heldSessions wait until at to be queued (promote may have taken some
// out: nil).
type heldSessions struct {
	at       time.Time
	sessions []*session
}

// poolPlace is where a session waits in the pool (session.wait): its
// place in the ring + 1 (ring), or in the held window of time at (index
// i); zero when it waits in neither (idle, being written, or urgent).
type poolPlace struct {
	ring uint64
	at   time.Time
	i    int
}

// promote moves s, which has a reply queued, to the front of the pool
// when it waits in the ring or a held window: a fan-out queues thousands
// of sessions at once, and the reply's sender would otherwise wait for
// its turn among them. A session being written takes the reply with its
// next take; an idle one was added by the reply itself. Every session
// still waits in one place at a time, so one writer at a time writes it.
func (p *writerPool) promote(s *session) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w := s.wait
	switch {
	case p.stopped:
		return
	case w.ring != 0:
		p.ring[(p.head+int(w.ring-1-p.taken))%len(p.ring)] = nil
	case !w.at.IsZero():
		k := slices.IndexFunc(p.held, func(h heldSessions) bool { return h.at.Equal(w.at) })
		if k < 0 {
			return // not held after all (cannot happen: release moves them to the ring)
		}
		p.held[k].sessions[w.i] = nil
	default:
		return
	}
	s.wait = poolPlace{}
	p.urgent = append(p.urgent, s)
	if p.waiting > 0 {
		p.cond.Signal()
	}
}

// addAt queues sessions at the time at (a live channel's coalescing
// window, see hub.Events): what they are sent meanwhile goes out in the
// same write.
func (p *writerPool) addAt(ss []*session, at time.Time) {
	if p == nil || len(ss) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	k := 0
	for k < len(p.held) && !p.held[k].at.Equal(at) {
		k++
	}
	if k == len(p.held) {
		p.held = append(p.held, heldSessions{at: at})
		if p.timer == nil || at.Before(p.timerAt) {
			p.armLocked(at)
		}
	}
	h := &p.held[k]
	for _, s := range ss {
		s.wait = poolPlace{at: at, i: len(h.sessions)}
		h.sessions = append(h.sessions, s)
	}
}

func (p *writerPool) armLocked(at time.Time) {
	if p.timer != nil {
		p.timer.Stop()
	}
	p.timerAt = at
	p.timer = time.AfterFunc(time.Until(at), p.release)
}

// release queues the held sessions whose time has come.
func (p *writerPool) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = nil
	if p.stopped {
		return
	}
	now := time.Now()
	var next time.Time
	kept := p.held[:0]
	woke := false
	for _, h := range p.held {
		if h.at.After(now) {
			kept = append(kept, h)
			if next.IsZero() || h.at.Before(next) {
				next = h.at
			}
			continue
		}
		for _, s := range h.sessions {
			if s != nil {
				p.pushLocked(s)
			}
		}
		woke = true
	}
	clear(p.held[len(kept):])
	p.held = kept
	if woke {
		p.cond.Broadcast()
	}
	if !next.IsZero() {
		p.armLocked(next)
	}
}

func (p *writerPool) pushLocked(s *session) {
	if p.n == len(p.ring) {
		grown := make([]*session, 2*len(p.ring))
		k := copy(grown, p.ring[p.head:])
		copy(grown[k:], p.ring[:p.head])
		p.ring, p.head = grown, 0
	}
	p.ring[(p.head+p.n)%len(p.ring)] = s
	s.wait = poolPlace{ring: p.taken + uint64(p.n) + 1}
	p.n++
}

// next takes sessions to write into dst: a share of the queue (at most
// cap(dst)), waiting for one. It returns none once the pool is stopped
// and empty.
func (p *writerPool) next(dst []*session) []*session {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(dst) == 0 {
		// The ring's places of promoted sessions are empty: a turn may
		// find nothing but those, and then waits again.
		for p.n == 0 && len(p.urgent) == 0 {
			if p.stopped {
				return dst
			}
			p.waiting++
			p.cond.Wait()
			p.waiting--
		}
		dst = p.takeLocked(dst)
	}
	return dst
}

// takeLocked takes a turn's sessions into dst: the urgent ones first,
// leaving room for one of the ring's (so that a stream of replies cannot
// hold the ring up), then a share of the ring.
func (p *writerPool) takeLocked(dst []*session) []*session {
	u := min(len(p.urgent), cap(dst))
	if p.n > 0 && u == cap(dst) && u > 1 {
		u--
	}
	dst = append(dst, p.urgent[:u]...)
	clear(p.urgent[:u])
	if p.urgent = p.urgent[u:]; len(p.urgent) == 0 {
		p.urgent = nil // taken from the front: no copy of the rest per turn
	}
	k := min(p.n, max(1, p.n/p.workers), cap(dst)-len(dst))
	for k > 0 && p.n > 0 {
		s := p.ring[p.head]
		p.ring[p.head] = nil
		p.head = (p.head + 1) % len(p.ring)
		p.n--
		p.taken++
		if s == nil {
			continue // promoted
		}
		s.wait = poolPlace{}
		dst = append(dst, s)
		k--
	}
	if p.n == 0 && len(p.ring) > 1024 {
		p.ring, p.head = make([]*session, 64), 0 // a burst's queue goes
	}
	return dst
}

// stop ends the workers once the queue is empty, and waits for them and
// for every writeRest. Sessions must be over (their connections closed).
func (p *writerPool) stop() {
	p.mu.Lock()
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
	}
	p.held = nil
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
	p.rest.Wait()
}

// worker is one writer goroutine's state: what it reuses from write to
// write, and the counts it reports to the metrics in bulk.
type worker struct {
	p       *writerPool
	batch   [][]byte
	iov     iovecs
	frames  int
	bytes   int
	pending []*session
}

func (p *writerPool) work() {
	w := &worker{p: p, pending: make([]*session, 0, 32)}
	for {
		w.pending = p.next(w.pending[:0])
		if len(w.pending) == 0 {
			return
		}
		for i, s := range w.pending {
			w.serve(s)
			w.pending[i] = nil
		}
		w.flush()
	}
}

// flush reports the frames and bytes written since the last flush.
func (w *worker) flush() {
	if m := w.p.g.cfg.Metrics; m.FramesOut != nil && w.frames > 0 {
		m.FramesOut(w.frames, w.bytes)
	}
	w.frames, w.bytes = 0, 0
}

// serve writes what s has queued, a few rounds, then puts it back in the
// queue if it has more.
func (w *worker) serve(s *session) {
	cfg := &w.p.g.cfg
	for range writeRounds {
		var frames int
		var act takeAction
		w.batch, frames, act = s.out.take(w.batch[:0], cfg.MaxWriteBytes, maxIov)
		switch act {
		case takeIdle:
			return
		case takeShut:
			s.wire.close()
			return
		}
		size := 0
		for _, b := range w.batch {
			size += len(b)
		}
		n, err := s.wire.tryWrite(w.batch, &w.iov)
		if err != nil {
			clear(w.batch)
			s.writeFailed()
			return
		}
		w.frames += frames
		w.bytes += size
		if n < size {
			// The socket is full (or this connection's writes wait):
			// the session's own goroutine finishes, and hands it back.
			rest := remainder(w.batch, n)
			clear(w.batch)
			w.p.rest.Add(1)
			go func() {
				defer w.p.rest.Done()
				s.writeRest(rest, act)
			}()
			return
		}
		clear(w.batch)
		if act == takeClose {
			s.closeSent()
		}
	}
	w.p.add(s)
}
