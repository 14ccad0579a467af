// Package workers runs short tasks on goroutines that stay for the next
// one.
package workers

import (
	"sync"
	"sync/atomic"
)

// Pool runs tasks on goroutines that stay for the next one. A new
// goroutine's stack starts small and grows (copied each time it doubles)
// through a Pebble read, a JSON encoding or net/http's request parser: on
// a connect that growth cost more than the read. A kept goroutine has
// grown already. A node's scope actors run their mailboxes on one (it is
// their protoactor dispatcher: protoactor's own starts a goroutine for
// every mailbox run); the gateway reads WebSocket upgrades on another.
//
// Schedule never waits: a task goes to a kept goroutine only if one is
// idle at that moment, else to a goroutine of its own, which stays
// afterwards while fewer than maxKept do. A task that blocks holds up no
// other.
type Pool struct {
	work    chan func() // unbuffered: taken only by an idle kept goroutine
	stop    chan struct{}
	stopped sync.Once
	kept    atomic.Int32
	maxKept int32
	// throughput is how many messages a mailbox run processes before it
	// yields the processor, as protoactor's default dispatcher does.
	throughput int
}

// New returns a pool that keeps at most maxKept goroutines (a few per
// task running at once on a busy node). throughput is what Throughput
// reports (a protoactor dispatcher's messages per mailbox run).
func New(maxKept, throughput int) *Pool {
	return &Pool{work: make(chan func()), stop: make(chan struct{}), maxKept: int32(maxKept), throughput: throughput}
}

// Schedule runs fn (it implements protoactor's actor.Dispatcher).
func (w *Pool) Schedule(fn func()) {
	select {
	case w.work <- fn:
	default:
		go w.run(fn)
	}
}

// Throughput implements protoactor's actor.Dispatcher.
func (w *Pool) Throughput() int { return w.throughput }

func (w *Pool) run(fn func()) {
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

// Close ends the kept goroutines once they are idle; later tasks each
// get a goroutine of their own.
func (w *Pool) Close() { w.stopped.Do(func() { close(w.stop) }) }
