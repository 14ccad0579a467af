package gateway

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/switchboard-chat/switchboard/protocol"
)

// session is one client connection. It has two goroutines: the read loop,
// on the session's own goroutine (ServeHTTP starts it and returns; the
// gateway joins it on Close), decodes frames and routes requests; the
// write loop, on a goroutine run starts and joins, drains the outbound
// queue, packing queued frames into one WebSocket message, and pings.
// Either loop ending ends the session.
type session struct {
	g    *Gateway
	id   string
	conn *websocket.Conn
	out  *outbox

	ctx    context.Context
	cancel context.CancelFunc
	// wtimer bounds each write: armed before a write, stopped after; when
	// it fires it closes the connection, which fails the write. One timer
	// per session instead of a context and a timer per write.
	wtimer *time.Timer

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

	// counted is set once the session's end has been counted (finish).
	counted atomic.Bool
}

func newSession(g *Gateway, conn *websocket.Conn) *session {
	s := &session{
		g:        g,
		id:       randomID(),
		conn:     conn,
		out:      newOutbox(g.cfg.QueueFrames, g.cfg.QueueBytes),
		inflight: make(chan struct{}, g.cfg.Limits.MaxInflight),
	}
	s.ctx, s.cancel = context.WithCancel(g.ctx)
	return s
}

// run serves the session until either loop ends.
func (s *session) run() {
	authTimer := time.AfterFunc(s.g.cfg.AuthTimeout, func() {
		if !s.authed.Load() {
			s.out.close(reasonAuthTimeout)
		}
	})
	defer authTimer.Stop()
	s.wtimer = time.AfterFunc(time.Hour, func() {
		s.finish(reasonLabel(s.writeFailure()))
		s.conn.CloseNow()
	})
	s.wtimer.Stop()
	defer s.wtimer.Stop()
	// Ending the session (either loop, or the gateway closing) closes the
	// connection, which also unblocks a write in progress.
	defer context.AfterFunc(s.ctx, func() { s.conn.CloseNow() })()
	var wg sync.WaitGroup
	wg.Go(s.writeLoop)
	s.readLoop()
	wg.Wait()
	// Neither loop said why: the gateway's context ended under them.
	why := reasonShutdown
	if closed, r := s.out.state(); closed {
		why = r
	}
	s.finish(reasonLabel(why))
}

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

var readBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readLoop reads messages and handles their frames in order.
func (s *session) readLoop() {
	defer s.cancel()
	for {
		_, r, err := s.conn.Reader(s.ctx)
		if err != nil {
			s.ended(err)
			return
		}
		buf := readBufs.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(r)
		if err != nil {
			readBufs.Put(buf)
			s.ended(err)
			return
		}
		if m := s.g.cfg.Metrics; m.BytesIn != nil {
			m.BytesIn(buf.Len())
		}
		n := 0
		protocol.SplitFrames(buf.Bytes(), func(frame []byte) {
			n++
			s.handleFrame(frame)
		})
		if m := s.g.cfg.Metrics; m.FramesIn != nil {
			m.FramesIn(n)
		}
		if buf.Cap() <= 64<<10 {
			readBufs.Put(buf)
		}
	}
}

// ended records why the read loop stopped. Once the server has decided to
// end the session (its outbox is closed: logout, slow consumer, drain...)
// that is the reason, whatever the read loop saw of the close; a
// cancelled context means another path ended the session and says why.
func (s *session) ended(err error) {
	if closed, why := s.out.state(); closed {
		s.finish(reasonLabel(why))
		return
	}
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code == websocket.StatusMessageTooBig:
		s.finish("frame_too_large")
	case errors.As(err, &ce):
		s.finish("client_closed")
	case errors.Is(err, context.Canceled):
	default:
		// EOF, a reset, a broken frame: the connection ended without a
		// close handshake.
		s.finish("connection_lost")
	}
}

// writeLoop writes queued frames, newline-separated, as few messages as
// MaxWriteBytes allows; pings; and closes the connection with the outbox's
// reason once it is closed.
func (s *session) writeLoop() {
	defer s.cancel()
	ping := time.NewTicker(s.g.cfg.PingInterval)
	defer ping.Stop()
	var frames [][]byte
	for {
		select {
		case <-s.ctx.Done():
			s.conn.CloseNow()
			return
		case <-ping.C:
			ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.PingTimeout)
			err := s.conn.Ping(ctx)
			cancel()
			if err != nil {
				s.close(reasonPingTimeout)
				return
			}
		case <-s.out.wake:
			var closed bool
			var reason closeReason
			frames, closed, reason = s.out.take(frames[:0])
			err := s.write(frames)
			clear(frames)
			if cap(frames) > 64 {
				frames = nil // don't keep a burst's slice for an idle session
			}
			if err != nil {
				s.close(s.writeFailure())
				return
			}
			if closed {
				s.close(reason)
				return
			}
		}
	}
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

// writeBufs hold packed messages while they are written; idle sessions
// hold none.
var writeBufs = sync.Pool{New: func() any { return new([]byte) }}

// write packs frames into messages of at most MaxWriteBytes (a single
// larger frame goes alone) and writes them.
func (s *session) write(frames [][]byte) error {
	max := s.g.cfg.MaxWriteBytes
	bp := writeBufs.Get().(*[]byte)
	buf := *bp
	defer func() {
		if cap(buf) <= 4*max { // don't pool a huge frame's buffer
			*bp = buf[:0]
			writeBufs.Put(bp)
		}
	}()
	for i := 0; i < len(frames); {
		buf = buf[:0]
		n := 0
		for i < len(frames) && (n == 0 || len(buf)+1+len(frames[i]) <= max) {
			if n > 0 {
				buf = append(buf, '\n')
			}
			buf = append(buf, frames[i]...)
			n++
			i++
		}
		// No deadline on the context (coder/websocket then arms nothing
		// per write): wtimer bounds the write, and the session's end
		// closes the connection under it.
		s.wtimer.Reset(s.g.cfg.WriteTimeout)
		err := s.conn.Write(context.Background(), websocket.MessageText, buf)
		s.wtimer.Stop()
		if err != nil {
			return err
		}
		if m := s.g.cfg.Metrics; m.FramesOut != nil {
			m.FramesOut(n, len(buf))
		}
	}
	return nil
}

// close ends the session with a close frame carrying r. The outbox is
// closed first: no further frame of the session runs (handleFrame). A
// client that never authenticated gets closeGrace to answer the close
// frame, not the library's five seconds: an idle socket must not hold
// its place that long.
func (s *session) close(r closeReason) {
	s.out.close(r)
	s.finish(reasonLabel(r))
	if !s.authed.Load() {
		// Ending the session's context ends the read under the close
		// handshake, which then closes the connection.
		t := time.AfterFunc(closeGrace, s.cancel)
		defer t.Stop()
	}
	s.conn.Close(r.code, r.text)
	s.cancel()
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

// send queues a frame for the client.
func (s *session) send(frame []byte) {
	if why := s.out.push(frame); why != "" {
		if m := s.g.cfg.Metrics; m.QueueDrop != nil {
			m.QueueDrop(why)
		}
	}
}

func (s *session) replyResult(id []byte, result []byte) {
	if id == nil {
		return
	}
	s.send(protocol.AppendResult(nil, id, result))
}

func (s *session) replyError(id []byte, e *protocol.Error) {
	s.send(protocol.AppendError(nil, id, e))
}
