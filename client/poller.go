package client

import (
	"runtime"
	"sync"
)

// Poller reads many connections from a few goroutines: on Linux, each
// of its goroutines owns an epoll instance, waits for any of its
// connections to have data, reads each ready one once into the
// connection's own buffer and hands every whole message on (OnEvent and
// replies run on the poller's goroutine); a partial frame waits in the
// buffer for the rest. A connection so read costs no goroutine of its
// own, and thousands of them cost a few wake-ups instead of one per
// message. Several clients share one Poller through Options.Poller.
//
// Only plain (ws://) connections of clients with OnEvent set are polled:
// TLS connections, connections whose socket the client cannot see (a
// custom transport) and clients reading through Events() (whose full
// channel would hold up every connection of the poller) keep a read
// goroutine each, as they do on other systems.
type Poller struct {
	mu     sync.Mutex // guards the fields below
	shards []*pollShard
	next   int // the shard the next connection goes to
	closed bool
}

// PollerOptions configure a Poller.
type PollerOptions struct {
	// Goroutines is how many goroutines (each with its own epoll
	// instance) read the poller's connections (default GOMAXPROCS).
	Goroutines int
}

// NewPoller starts a poller. Close stops it once its clients are closed.
func NewPoller(opts PollerOptions) (*Poller, error) {
	if opts.Goroutines <= 0 {
		opts.Goroutines = runtime.GOMAXPROCS(0)
	}
	p := &Poller{}
	if err := p.start(opts.Goroutines); err != nil {
		return nil, err
	}
	return p, nil
}

// Close stops the poller's goroutines. Connections it still reads end
// as dropped ones do (their clients reconnect, and read their new
// connections with goroutines of their own). Close returns once every
// goroutine has stopped; it is safe to call more than once.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	shards := p.shards
	p.mu.Unlock()
	for _, s := range shards {
		s.stop()
	}
	return nil
}

// shard picks the shard for a new connection (nil: the poller is closed
// or polling is not supported here).
func (p *Poller) shard() *pollShard {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.shards) == 0 {
		return nil
	}
	s := p.shards[p.next%len(p.shards)]
	p.next++
	return s
}

// shardFor returns the shard to read a connection of a client with opts
// (nil: the client reads it itself).
func (p *Poller) shardFor(opts *Options) *pollShard {
	if p == nil || opts.OnEvent == nil {
		return nil
	}
	return p.shard()
}
