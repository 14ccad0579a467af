package gateway

import (
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// handlers run the frames sessions read, on goroutines shared by every
// session, while the read loop that read them waits. Handling a request
// — decoding it, routing it, connect's wait for the user's actor — grows
// a goroutine's stack to 8 KB and more, and the runtime keeps a grown
// stack while the goroutine lives: run on the read loop, every idle
// session would hold 8 KB of stack for its whole life, where its read
// alone needs 4. A handler waits for the next message a while after each,
// so a steady flow of requests reuses a few grown stacks instead of
// growing new ones; more start when requests wait (a connect's), and the
// spares end when idle.
type handlers struct {
	jobs chan *handleJob // unbuffered: a handler that waits for work
	stop chan struct{}
	wg   sync.WaitGroup
}

// handlerIdle is how long a handler waits for work before it ends.
const handlerIdle = 5 * time.Second

type handleJob struct {
	s      *session
	msg    []byte
	frames int
	done   chan struct{}
}

var handleJobs = sync.Pool{New: func() any { return &handleJob{done: make(chan struct{}, 1)} }}

func newHandlers() *handlers {
	return &handlers{jobs: make(chan *handleJob), stop: make(chan struct{})}
}

// handle runs the frames of msg, in order, on a handler, and returns how
// many there were once they have run.
func (h *handlers) handle(s *session, msg []byte) int {
	j := handleJobs.Get().(*handleJob)
	j.s, j.msg, j.frames = s, msg, 0
	select {
	case h.jobs <- j:
	default:
		h.wg.Add(1)
		go h.loop(j)
	}
	<-j.done
	n := j.frames
	j.s, j.msg = nil, nil
	handleJobs.Put(j)
	return n
}

func (h *handlers) loop(j *handleJob) {
	defer h.wg.Done()
	idle := time.NewTimer(handlerIdle)
	defer idle.Stop()
	for {
		protocol.SplitFrames(j.msg, func(frame []byte) {
			j.frames++
			j.s.handleFrame(frame)
		})
		j.done <- struct{}{}
		idle.Reset(handlerIdle)
		select {
		case j = <-h.jobs:
		case <-idle.C:
			return
		case <-h.stop:
			return
		}
	}
}

// close ends the idle handlers and waits for every handler to end. The
// sessions must be over.
func (h *handlers) close() {
	close(h.stop)
	h.wg.Wait()
}
