package actors

import (
	"sync"
	"sync/atomic"
)

// workers is the dispatcher of a node's scope actors: it runs their
// mailboxes on goroutines that stay for the next run. protoactor's own
// dispatcher starts a goroutine for every mailbox run, whose stack starts
// small and grows (copied each time it doubles) through a Pebble read
// or a JSON encoding: on a connect, that growth cost more than the read.
// A kept goroutine has grown already.
//
// Schedule never waits: a run goes to a kept goroutine only if one is
// idle at that moment, else to a goroutine of its own, which stays
// afterwards while fewer than maxKept do. A handler that blocks holds
// up no other actor.
type workers struct {
	work    chan func() // unbuffered: taken only by an idle kept goroutine
	stop    chan struct{}
	stopped sync.Once
	kept    atomic.Int32
	maxKept int32
	// throughput is how many messages a mailbox run processes before it
	// yields the processor, as protoactor's default dispatcher does.
	throughput int
}

// maxKept bounds the goroutines kept idle: a few per actor running at
// once on a busy node.
const maxKeptWorkers = 64

func newWorkers() *workers {
	return &workers{work: make(chan func()), stop: make(chan struct{}), maxKept: maxKeptWorkers, throughput: 300}
}

// Schedule implements actor.Dispatcher.
func (w *workers) Schedule(fn func()) {
	select {
	case w.work <- fn:
	default:
		go w.run(fn)
	}
}

// Throughput implements actor.Dispatcher.
func (w *workers) Throughput() int { return w.throughput }

func (w *workers) run(fn func()) {
	fn()
	if w.kept.Add(1) > w.maxKept {
		w.kept.Add(-1)
		return
	}
	defer w.kept.Add(-1)
	for {
		select {
		case fn := <-w.work:
			fn()
		case <-w.stop:
			return
		}
	}
}

// close ends the kept goroutines once they are idle; later runs each get
// a goroutine of their own.
func (w *workers) close() { w.stopped.Do(func() { close(w.stop) }) }
