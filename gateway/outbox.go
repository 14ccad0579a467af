package gateway

import "sync"

// outbox is a session's bounded outbound queue. Producers (the inbox
// goroutine fanning out events, reply callbacks) never block: a push to a
// queue that is already full closes the outbox with a slow-consumer reason
// instead, and the write loop disconnects the session.
//
// Full means maxFrames frames or maxBytes bytes queued. A frame that
// arrives while the queue is below both is taken whatever its size, so a
// reply larger than the whole queue (a page of 100 large messages) reaches
// a client that keeps up instead of disconnecting it, and then retrying it,
// forever. The queue so holds at most maxBytes plus one frame.
type outbox struct {
	maxFrames int
	maxBytes  int

	mu     sync.Mutex // guards the fields below
	frames [][]byte
	bytes  int
	closed bool
	reason closeReason

	wake chan struct{} // capacity 1: the write loop has something to do
}

func newOutbox(maxFrames, maxBytes int) *outbox {
	return &outbox{maxFrames: maxFrames, maxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

// Why push dropped a frame (queue_drops_total's reasons).
const (
	dropSlow   = "slow_consumer" // this push found the queue full
	dropClosed = "closed"        // the outbox was closed already
)

// push queues one frame. Frames may be shared between sessions (an event
// is encoded once): nobody may modify them. It returns "" when the frame
// was queued, else why it was dropped (dropSlow, dropClosed).
func (o *outbox) push(frame []byte) string {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return dropClosed
	}
	if len(o.frames) >= o.maxFrames || o.bytes >= o.maxBytes {
		o.closed = true
		o.reason = reasonSlow
		o.frames, o.bytes = nil, 0
		o.mu.Unlock()
		o.signal()
		return dropSlow
	}
	o.frames = append(o.frames, frame)
	o.bytes += len(frame)
	o.mu.Unlock()
	o.signal()
	return ""
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// close closes the outbox with a reason (the first reason wins). Frames
// already queued are still written (a logout's reply, say).
func (o *outbox) close(r closeReason) {
	o.mu.Lock()
	if !o.closed {
		o.closed, o.reason = true, r
	}
	o.mu.Unlock()
	o.signal()
}

// state reports whether the outbox is closed, and why.
func (o *outbox) state() (bool, closeReason) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed, o.reason
}

// take returns every queued frame (appended to buf) and whether the outbox
// is closed, with its reason.
func (o *outbox) take(buf [][]byte) ([][]byte, bool, closeReason) {
	o.mu.Lock()
	defer o.mu.Unlock()
	buf = append(buf, o.frames...)
	clear(o.frames)
	o.frames = o.frames[:0]
	o.bytes = 0
	return buf, o.closed, o.reason
}
