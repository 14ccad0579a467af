package gateway

import (
	"sync"

	"github.com/switchboard-chat/switchboard/protocol"
)

// outbox is a session's bounded outbound queue and the state of its
// connection's write side. Producers (the inbox goroutine fanning out
// events, reply callbacks, the read loop's control frames) never
// block: a push to a queue that is already full closes the outbox with a
// slow-consumer reason instead, and the session is disconnected.
//
// Full means maxFrames frames or maxBytes bytes queued. A frame that
// arrives while the queue is below both is taken whatever its size, so a
// reply larger than the whole queue (a page of 100 large messages) reaches
// a client that keeps up instead of disconnecting it, and then retrying it,
// forever. The queue so holds at most maxBytes plus one frame.
//
// Frames are whole WebSocket messages (wsframe.go), and may be shared
// between sessions (an event is framed once): nobody may modify them.
//
// The write side: a session with something to write is busy from the
// push that found it idle (which returns wake: hand it to the writer
// pool) until a writer finds nothing left (take). So one writer at a time
// writes a session's frames, in their order.
type outbox struct {
	maxFrames int
	maxBytes  int

	mu     sync.Mutex // guards the fields below
	frames [][]byte   // data messages
	bytes  int
	ctl    [][]byte // control frames, written before the data: pongs, pings, a close
	// closed: the server ends the session, for reason; what is queued is
	// still written (a logout's reply), then a close frame with reason.
	closed bool
	reason closeReason
	// closeSent: a close frame is queued or written (the server's, or
	// the answer to the client's); nothing follows it.
	closeSent bool
	// shut: close the connection once what is queued is written.
	shut bool
	// dead: the connection is closed; nothing is written any more.
	dead bool
	busy bool
	// held: the session is not handed to a writer until this many data
	// messages are queued (or release): the replies to the frames a
	// client packs in its upgrade's offer go out in one write (hold).
	held int
	// gone is closed once the connection is (made by waitDead).
	gone chan struct{}
	// onEnd runs once, outside the lock, when the outbox closes or dies.
	onEnd func()
	ended bool
}

func newOutbox(maxFrames, maxBytes int) *outbox {
	return &outbox{maxFrames: maxFrames, maxBytes: maxBytes}
}

// Why push dropped a frame (queue_drops_total's reasons).
const (
	dropSlow   = "slow_consumer" // this push found the queue full
	dropClosed = "closed"        // the outbox was closed already
)

// push queues one data message. It returns "" when it was queued, else
// why it was dropped (dropSlow, dropClosed), and whether the session must
// be handed to a writer.
func (o *outbox) push(msg []byte) (drop string, wake bool) {
	o.mu.Lock()
	if o.closed || o.closeSent || o.dead {
		o.mu.Unlock()
		return dropClosed, false
	}
	if len(o.frames) >= o.maxFrames || o.bytes >= o.maxBytes {
		o.closed, o.reason = true, reasonSlow
		clear(o.frames)
		o.frames, o.bytes = nil, 0
		wake = o.wakeLocked()
		end := o.endLocked()
		o.mu.Unlock()
		end()
		return dropSlow, wake
	}
	o.frames = append(o.frames, msg)
	o.bytes += len(msg)
	if o.held > len(o.frames) {
		o.mu.Unlock()
		return "", false
	}
	o.held = 0
	wake = o.wakeLocked()
	o.mu.Unlock()
	return "", wake
}

// hold holds the session's writes back until n data messages are
// queued; release ends the hold sooner. A control frame or a close ends
// it too.
func (o *outbox) hold(n int) {
	o.mu.Lock()
	o.held = min(n, o.maxFrames)
	o.mu.Unlock()
}

// release ends a hold and reports whether the session must be handed to
// a writer (something is queued).
func (o *outbox) release() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.held == 0 {
		return false
	}
	o.held = 0
	if len(o.frames) == 0 {
		return false
	}
	return o.wakeLocked()
}

// maxControl bounds the control frames queued at once: a client that
// pings without reading gets no more pongs.
const maxControl = 8

// control queues a control frame (a ping, a pong, a close) and reports
// whether the session must be handed to a writer. After a close frame
// nothing is queued; a ping or pong past maxControl frames waiting is
// dropped, a close frame never.
func (o *outbox) control(f []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	isClose := f[0]&0x0f == protocol.FrameClose
	if o.closeSent || o.dead || (!isClose && len(o.ctl) >= maxControl) {
		return false
	}
	o.ctl = append(o.ctl, f)
	o.closeSent = isClose
	o.held = 0
	return o.wakeLocked()
}

// wakeLocked marks the session busy and reports whether it was idle.
func (o *outbox) wakeLocked() bool {
	if o.busy || o.dead {
		return false
	}
	o.busy = true
	return true
}

// endLocked marks the outbox ended and returns what to run once the lock
// is released.
func (o *outbox) endLocked() func() {
	if o.ended || o.onEnd == nil {
		return func() {}
	}
	o.ended = true
	return o.onEnd
}

// close closes the outbox with a reason (the first reason wins) and
// reports whether the session must be handed to a writer (to write its
// close frame).
func (o *outbox) close(r closeReason) bool { return o.closeAfter(nil, r) }

// closeAfter is close with msg (unless nil) queued as the session's last
// data message in the same step, so nothing pushed after it (an event on
// its way) goes out before the close frame; the queue's bounds do not
// apply to it. An outbox closed already drops msg.
func (o *outbox) closeAfter(msg []byte, r closeReason) bool {
	o.mu.Lock()
	if msg != nil && !o.closed && !o.closeSent && !o.dead {
		o.frames = append(o.frames, msg)
		o.bytes += len(msg)
	}
	if !o.closed {
		o.closed, o.reason = true, r
	}
	o.held = 0
	wake := o.wakeLocked()
	end := o.endLocked()
	o.mu.Unlock()
	end()
	return wake
}

// shutdown asks for the connection to be closed once what is queued is
// written, and reports whether the session must be handed to a writer.
func (o *outbox) shutdown() bool {
	o.mu.Lock()
	o.shut = true
	wake := o.wakeLocked()
	o.mu.Unlock()
	return wake
}

// kill marks the connection closed: what is queued is dropped. It
// reports whether it was alive.
func (o *outbox) kill() bool {
	o.mu.Lock()
	was := !o.dead
	o.dieLocked()
	end := o.endLocked()
	o.mu.Unlock()
	end()
	return was
}

func (o *outbox) dieLocked() {
	if o.dead {
		return
	}
	o.dead = true
	clear(o.frames)
	clear(o.ctl)
	o.frames, o.ctl, o.bytes = nil, nil, 0
	if o.gone != nil {
		close(o.gone)
	}
}

// waitDead returns a channel closed once the connection is.
func (o *outbox) waitDead() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gone == nil {
		o.gone = make(chan struct{})
		if o.dead {
			close(o.gone)
		}
	}
	return o.gone
}

// state reports whether the outbox is closed, and why.
func (o *outbox) state() (bool, closeReason) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed, o.reason
}

// What take asks of the writer.
type takeAction int

const (
	takeIdle  takeAction = iota // nothing to write: the session is idle again
	takeWrite                   // write the batch
	takeClose                   // write the batch, which ends with the server's close frame
	takeShut                    // close the connection (the outbox is dead now)
)

// take appends what to write next to batch — control frames, then data
// messages up to maxBytes (at least one) and maxIov entries in all — and
// says what to do with it. Once the data is written, a closed outbox
// writes its close frame; then a shut one has its connection closed.
func (o *outbox) take(batch [][]byte, maxBytes, maxIov int) ([][]byte, int, takeAction) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dead {
		o.busy = false
		return batch, 0, takeIdle
	}
	start := len(batch)
	batch = append(batch, o.ctl...)
	clear(o.ctl)
	o.ctl = o.ctl[:0]
	if o.closeSent && len(o.frames) > 0 { // nothing goes after a close frame
		clear(o.frames)
		o.frames, o.bytes = nil, 0
	}
	frames, size := 0, 0
	for frames < len(o.frames) && len(batch) < maxIov && (frames == 0 || size+len(o.frames[frames]) <= maxBytes) {
		batch = append(batch, o.frames[frames])
		size += len(o.frames[frames])
		frames++
	}
	if frames > 0 {
		rest := copy(o.frames, o.frames[frames:])
		clear(o.frames[rest:])
		o.frames = o.frames[:rest]
		o.bytes -= size
		if len(o.frames) == 0 && cap(o.frames) > 64 {
			o.frames = nil // don't keep a burst's slice for an idle session
		}
	}
	switch {
	case len(batch) > start:
		return batch, frames, takeWrite
	case o.closed && !o.closeSent:
		o.closeSent = true
		return append(batch, closeMessage(o.reason)), 0, takeClose
	case o.shut:
		o.dieLocked()
		return batch, 0, takeShut
	}
	o.busy = false
	return batch, 0, takeIdle
}
