package gateway

import "sync"

// outbox is a session's bounded outbound queue. Producers (the inbox
// goroutine fanning out events, reply callbacks) never block: a push that
// would exceed the bounds closes the outbox with a slow-consumer reason
// instead, and the write loop disconnects the session.
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

// push queues one frame. Frames may be shared between sessions (an event
// is encoded once): nobody may modify them. It reports false when the
// outbox is closed or was just closed for being full.
func (o *outbox) push(frame []byte) bool {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return false
	}
	if len(o.frames) >= o.maxFrames || o.bytes+len(frame) > o.maxBytes {
		o.closed = true
		o.reason = reasonSlow
		o.frames, o.bytes = nil, 0
		o.mu.Unlock()
		o.signal()
		return false
	}
	o.frames = append(o.frames, frame)
	o.bytes += len(frame)
	o.mu.Unlock()
	o.signal()
	return true
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

// isClosed reports whether the outbox was closed: the session is ending.
func (o *outbox) isClosed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed
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
