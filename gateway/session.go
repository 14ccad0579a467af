package gateway

import (
	"bufio"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-chat/switchboard/protocol"
)

// session is one client connection. It has one goroutine, its read loop
// (ServeHTTP starts it and returns; the gateway joins it on Close), which
// decodes frames and routes requests. What the session sends goes to its
// outbox, and the gateway's writer pool (writers.go) writes it; one timer
// enforces the auth timeout and pings. The read loop ending ends the
// session: whatever ends a session closes its connection, or makes the
// client close it (a close frame).
type session struct {
	g  *Gateway
	id string
	// br reads the client's frames (wsread.go); wire writes the
	// session's (writers.go).
	br   *bufio.Reader
	wire wire
	out  *outbox

	// ctx ends with the session (the outbox closing or dying, the read
	// loop ending): the read loop's waits (connect, a full inflight) end.
	ctx    context.Context
	cancel context.CancelFunc

	// timer runs tick: the auth timeout, then pings.
	timer *time.Timer
	start time.Time
	// lastPing is when tick last pinged (tick's own); pingSent when the
	// ping not yet answered was sent (unix ns; 0: none).
	lastPing time.Time
	pingSent atomic.Int64

	// inflight bounds outstanding requests; the read loop blocks (stops
	// reading the socket) while it is full.
	inflight chan struct{}

	authed atomic.Bool
	// ip is the client's address; unauthed is set while the session
	// counts among the gateway's unauthenticated connections (guarded by
	// the gateway's mu).
	ip       string
	unauthed bool
	// Set once by connect, before authed; read after authed.
	user  string
	name  string
	image string
	admin bool

	// grants are the session's join-token permissions (joins.go).
	grants grants

	// requests bounds the session's request rate (nil: no bound); set by
	// connect, used by the frames' handler, one frame at a time.
	requests *rate.Limiter

	// counted is set once the session's end has been counted (finish).
	counted atomic.Bool

	// wait is where the session waits in the writer pool, if it does
	// (guarded by the pool's mu; see writerPool.promote).
	wait poolPlace
}

// newSession makes a session whose connection is not there yet:
// ServeHTTP attaches it once the handshake is done.
func newSession(g *Gateway) *session {
	s := &session{
		g:        g,
		id:       randomID(),
		out:      newOutbox(g.cfg.QueueFrames, g.cfg.QueueBytes),
		inflight: make(chan struct{}, g.cfg.Limits.MaxInflight),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.out.onEnd = s.cancel
	return s
}

// Close handshake bounds: how long the server waits for the client's
// close frame after sending its own, and how long an ended session's
// last frames (a close frame) may take to go out.
const (
	closeWait      = 5 * time.Second
	closeFlushWait = time.Second
)

// run serves the session until its read loop ends.
func (s *session) run(first []byte) {
	s.start = time.Now()
	s.lastPing = s.start
	s.timer = time.AfterFunc(min(s.g.cfg.AuthTimeout, s.g.cfg.PingInterval), s.tick)
	if first != nil { // the connect offered in the upgrade
		s.holdReplies(first)
		s.handleMessage(first)
	}
	s.readLoop()
	s.timer.Stop()
	s.cancel()
	// The client closed or went away, or the close handshake the server
	// began is over: write what is still queued (a close frame), then
	// close the connection.
	if s.out.shutdown() {
		s.g.writers.add(s)
	}
	t := time.NewTimer(closeFlushWait)
	select {
	case <-s.out.waitDead():
	case <-t.C:
		s.kill()
	}
	t.Stop()
	s.wire.close()
	// The read loop did not say why: the gateway's context ended.
	why := reasonShutdown
	if closed, r := s.out.state(); closed {
		why = r
	}
	s.finish(reasonLabel(why))
}

// holdReplies holds the session's writes back while the frames a client
// packed after connect in its upgrade's offer are answered, for at most
// maxHold: the 101, connect's reply and theirs (a live viewer's join)
// then go out in one write, which the client reads at once.
func (s *session) holdReplies(offer []byte) {
	n := 0
	protocol.SplitFrames(offer, func([]byte) { n++ })
	if n < 2 {
		return
	}
	s.out.hold(n)
	time.AfterFunc(maxHold, func() {
		if s.out.release() {
			s.g.writers.add(s)
		}
	})
}

// maxHold bounds how long holdReplies holds a session's first replies:
// past it, what is answered goes out, and the rest as it comes.
const maxHold = 50 * time.Millisecond

// tick runs on the session's timer. Until connect it ends a session that
// has not connected within AuthTimeout; it pings every PingInterval and
// ends a session whose pong has not come PingTimeout after its ping.
func (s *session) tick() {
	cfg := &s.g.cfg
	now := time.Now()
	authed := s.authed.Load()
	if !authed && now.Sub(s.start) >= cfg.AuthTimeout {
		s.end(reasonAuthTimeout)
		return
	}
	var next time.Duration
	if sent := s.pingSent.Load(); sent != 0 {
		left := cfg.PingTimeout - now.Sub(time.Unix(0, sent))
		if left <= 0 {
			s.end(reasonPingTimeout)
			return
		}
		next = left
	} else if due := cfg.PingInterval - now.Sub(s.lastPing); due > 0 {
		next = due
	} else {
		s.lastPing = now
		s.pingSent.Store(now.UnixNano())
		s.queueControl(pingMessage)
		next = cfg.PingTimeout
	}
	if !authed {
		next = min(next, cfg.AuthTimeout-now.Sub(s.start))
	}
	s.timer.Reset(next)
}

// ponged: the client's pong came; the ping is answered.
func (s *session) ponged() { s.pingSent.Store(0) }

// finish counts the session's end, once, under the first reason given:
// a server-side end gives its reason before it closes the connection, so
// the read loop's view of that close (an echoed close frame, a closed
// connection) is not counted again.
func (s *session) finish(reason string) {
	if s.counted.CompareAndSwap(false, true) {
		if m := s.g.cfg.Metrics; m.Disconnect != nil {
			m.Disconnect(reason)
		}
	}
}

// readBufs hold messages being read. A session takes one only once a
// frame has begun to arrive, and gives it back once the message is
// handled: an idle session holds none.
var readBufs = sync.Pool{New: func() any { return new([]byte) }}

// keptReadBuf bounds the buffers readBufs keeps.
const keptReadBuf = 64 << 10

// readLoop reads messages and has their frames handled in order, on a
// handler (handlers.go), so that its own stack stays small. Reads have no
// deadline: closing the connection ends them.
func (s *session) readLoop() {
	for {
		if _, err := s.br.Peek(1); err != nil {
			s.ended(err)
			return
		}
		bp := readBufs.Get().(*[]byte)
		msg, err := s.readMessage(*bp)
		if err != nil {
			readBufs.Put(bp)
			s.ended(err)
			return
		}
		if msg != nil {
			if m := s.g.cfg.Metrics; m.BytesIn != nil {
				m.BytesIn(len(msg))
			}
			s.handleMessage(msg)
			if cap(msg) > keptReadBuf {
				continue // let it go; the pool makes another
			}
			*bp = msg[:0]
		}
		readBufs.Put(bp)
	}
}

// handleMessage has msg's frames handled, on a handler, and returns once
// they have been.
func (s *session) handleMessage(msg []byte) {
	n := s.g.handlers.handle(s, msg)
	if m := s.g.cfg.Metrics; m.FramesIn != nil {
		m.FramesIn(n)
	}
}

// ended records why the read loop stopped. Once the server has decided to
// end the session (its outbox is closed: logout, slow consumer, drain...)
// that is the reason, whatever the read loop saw of the close.
func (s *session) ended(err error) {
	if closed, why := s.out.state(); closed {
		s.finish(reasonLabel(why))
		return
	}
	var ce *closeError
	var fe *frameError
	switch {
	case errors.As(err, &fe) && fe.code == protocol.CloseMessageTooBig:
		s.finish("frame_too_large")
	case errors.As(err, &ce):
		s.finish("client_closed")
	default:
		// EOF, a reset, a broken frame, a connection closed under the
		// read (a failed write, a fault): the connection ended without
		// a close handshake. A failed write has counted itself already.
		s.finish("connection_lost")
	}
}

// writeRest finishes a write the socket did not take at once, waiting at
// most WriteTimeout, and hands the session back to the writer pool. It
// runs on its own goroutine (writers.go).
func (s *session) writeRest(rest [][]byte, act takeAction) {
	if err := s.wire.writeAll(rest, s.g.cfg.WriteTimeout); err != nil {
		s.writeFailed()
		return
	}
	if act == takeClose {
		s.closeSent()
	}
	s.g.writers.add(s)
}

// closeSent: the server's close frame is written. The client answers with
// its own, and the read loop ends; one that does not answer is cut off
// after closeWait (closeGrace before it authenticated) — a slow consumer
// at once: it reads what its socket holds, the close frame last, and will
// not answer sooner.
func (s *session) closeSent() {
	if _, why := s.out.state(); why == reasonSlow {
		s.kill()
		return
	}
	wait := closeWait
	if !s.authed.Load() {
		wait = closeGrace // an idle socket must not hold its place that long
	}
	time.AfterFunc(wait, s.kill)
}

// writeFailed ends a session whose write failed or timed out.
func (s *session) writeFailed() {
	s.finish(reasonLabel(s.writeFailure()))
	s.kill()
}

// writeFailure is why a failed or timed-out write ends the session: a
// write that failed because the client stopped reading (the queue
// overflowed meanwhile) is a slow consumer.
func (s *session) writeFailure() closeReason {
	if closed, why := s.out.state(); closed && why == reasonSlow {
		return reasonSlow
	}
	return reasonWriteFailed
}

// kill closes the connection at once: nothing queued is written, the read
// loop ends.
func (s *session) kill() {
	s.out.kill()
	if s.wire.conn != nil {
		s.wire.close()
	}
}

// end ends the session with reason r: what is queued is written, then a
// close frame carrying r, and the client closes the connection. No
// further frame of the session runs (handleFrame).
func (s *session) end(r closeReason) { s.endAfter(nil, r) }

// endAfter is end with msg (unless nil) as the last message the client
// gets before the close frame (a logout's reply).
func (s *session) endAfter(msg []byte, r closeReason) {
	if closed, _ := s.out.state(); !closed {
		s.finish(reasonLabel(r)) // the first reason is the one counted
	}
	if s.out.closeAfter(msg, r) {
		s.g.writers.add(s)
	}
}

// closeGrace is how long an unauthenticated client has to answer the
// server's close frame.
const closeGrace = 500 * time.Millisecond

func reasonLabel(r closeReason) string {
	switch r {
	case reasonSlow:
		return "slow_consumer"
	case reasonDrain:
		return "drain"
	case reasonLogout:
		return "logout"
	case reasonShutdown:
		return "shutdown"
	case reasonPingTimeout:
		return "ping_timeout"
	case reasonWriteFailed:
		return "write_failed"
	case reasonAuthTimeout:
		return "auth_timeout"
	case reasonResync:
		return "resync"
	case reasonFull:
		return "session_limit"
	}
	return "other"
}

// send queues a frame for the client (framed here: one session's own).
func (s *session) send(frame []byte) {
	s.sendMessage(frameMessage(protocol.FrameText, frame))
}

// queueControl queues a control frame (a ping, a pong, a close) ahead
// of the session's data messages.
func (s *session) queueControl(f []byte) {
	if s.out.control(f) {
		s.g.writers.add(s)
	}
}

// sendMessage queues a framed message (wsframe.go), which may be shared
// with other sessions.
func (s *session) sendMessage(msg []byte) {
	if s.queue(msg) {
		s.g.writers.add(s)
	}
}

// queue queues a framed message and reports whether the session must be
// handed to the writer pool (a fan-out hands its sessions over at once).
func (s *session) queue(msg []byte) bool {
	why, wake := s.out.push(msg)
	if why != "" {
		if m := s.g.cfg.Metrics; m.QueueDrop != nil {
			m.QueueDrop(why)
		}
	}
	return wake
}

func (s *session) replyResult(id []byte, result []byte) {
	if id == nil {
		return
	}
	s.sendReply(resultMessage(id, result))
}

// sendReply queues a reply. A session waiting in the writer pool behind
// a fan-out (its events queued for thousands of sessions) moves to the
// front: a sender's acknowledgement does not wait for a whole room's
// deliveries, only its own session's queue, written in order.
func (s *session) sendReply(msg []byte) {
	if s.queue(msg) {
		s.g.writers.add(s)
		return
	}
	s.g.writers.promote(s)
}

func resultMessage(id, result []byte) []byte {
	return frameInPlace(protocol.AppendResult(newFrameBuf(len(id)+len(result)+len(`{"id":,"result":}`)), id, result))
}

// replyResultNow sends a result from a goroutine that runs for this
// session alone (connect's handler): it writes it itself when the
// session has nothing else queued, rather than waking a writer.
func (s *session) replyResultNow(id []byte, result []byte) {
	if id == nil {
		return
	}
	if s.queue(resultMessage(id, result)) {
		s.g.writers.writeNow(s)
	}
}

func (s *session) replyError(id []byte, e *protocol.Error) {
	s.sendReply(frameInPlace(protocol.AppendError(newFrameBuf(len(id)+len(e.Message)+64), id, e)))
}
