package client

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// A gateway can stall without closing its connections: its process is
// paused (SIGSTOP, a frozen VM, a machine swapping) or the network drops
// its packets without resetting anything. The kernel keeps the TCP
// connection open, so nothing fails: reads wait, requests wait for their
// whole RequestTimeout, and watched channels go quiet while they move on
// elsewhere. The server's own pings (every 25 s) say nothing about this
// direction, so a watchdog listens for silence on each connection:
//
//   - The read loop marks every message it reads (liveness.heard). The
//     watchdog looks every quarter of StallTimeout and clears the mark.
//     One sweeper goroutine per StallTimeout in the process looks at
//     every connection that uses it, so a connection costs one goroutine
//     (its read loop), however many the process holds. A connection's
//     first look, less than a quarter after it came up, counts as heard.
//   - The second quarter in a row with nothing heard sends a WebSocket
//     ping (one at a time); its pong counts as heard. A live gateway
//     answers within milliseconds, whatever its load: pongs are queued
//     ahead of data.
//   - Four quarters in a row with nothing heard, ping answered or not,
//     drop the connection. Its outstanding requests then fail with
//     "disconnected" (Call resends the idempotent ones on the next
//     connection; the others fail with ErrDisconnected, as after any
//     drop) and reconnect moves to the next URL and resumes the watches.
//
// So a stalled gateway is dropped between StallTimeout and 1¼ ×
// StallTimeout after the last frame it sent, and a busy connection costs
// nothing but the mark: no timer or context per read (see dialer.go), and
// no ping while frames arrive. An idle connection is pinged every three
// quarters of StallTimeout. docs/protocol.md ("Stalled gateways")
// describes the same check for every client. While the read loop is held
// up by the application (a full Events channel) the silence is not the
// gateway's and is not counted.

// errStalled ends a connection the watchdog dropped.
var errStalled = errors.New("client: the gateway stopped answering: connection dropped")

// liveness is one connection as its read loop and the watchdog share it.
type liveness struct {
	heard   atomic.Bool // a message or pong arrived since the watchdog last looked
	stalled atomic.Bool // the watchdog dropped the connection
	pinging atomic.Bool // a ping is outstanding

	// The watchdog's own, on its sweeper's goroutine.
	c      *Client
	conn   *wsConn
	silent int  // silent looks in a row
	looked bool // looked at once (the first look is early)
}

// stallQuarters is how many silent looks in a row drop a connection; the
// one halfway sends a ping.
const stallQuarters = 4

// look is the watchdog's quarterly look at one connection; it reports
// whether the connection was dropped (and needs no more looks).
func (l *liveness) look() bool {
	c := l.c
	heard := l.heard.Swap(false)
	if !l.looked || heard || c.waiting.Load() > 0 {
		l.looked, l.silent = true, 0
		return false
	}
	if l.silent++; l.silent >= stallQuarters {
		c.opts.Logger.Info("client: the gateway stopped answering; reconnecting", "silent", c.opts.StallTimeout)
		l.stalled.Store(true)
		l.conn.CloseNow() // the read loop fails and reconnects
		return true
	}
	if l.silent == stallQuarters/2 && l.pinging.CompareAndSwap(false, true) {
		// The sweeper is not the client's: the ping joins the client's
		// goroutines only while Close has not started waiting for them.
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return false
		}
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			defer l.pinging.Store(false)
			// Bounded by the connection: Ping returns when it closes.
			ctx, cancel := context.WithTimeout(context.Background(), c.opts.StallTimeout)
			defer cancel()
			if l.conn.Ping(ctx) == nil {
				l.heard.Store(true)
			}
		}()
	}
	return false
}

// sweeper looks at every connection of one StallTimeout each quarter of
// it. It runs while it has connections.
type sweeper struct {
	quarter time.Duration
	conns   map[*liveness]struct{} // guarded by sweepers.mu
	stop    chan struct{}
}

// sweepers are the process's sweepers by quarter.
var sweepers struct {
	mu sync.Mutex
	m  map[time.Duration]*sweeper
}

// listen puts a connection under its client's sweeper until unlisten.
func listen(l *liveness) {
	q := l.c.opts.StallTimeout / stallQuarters
	sweepers.mu.Lock()
	defer sweepers.mu.Unlock()
	s := sweepers.m[q]
	if s == nil {
		if sweepers.m == nil {
			sweepers.m = make(map[time.Duration]*sweeper)
		}
		s = &sweeper{quarter: q, conns: make(map[*liveness]struct{}), stop: make(chan struct{})}
		sweepers.m[q] = s
		go s.run()
	}
	s.conns[l] = struct{}{}
}

// unlisten takes a connection from its sweeper; the last one stops it.
func unlisten(l *liveness) {
	q := l.c.opts.StallTimeout / stallQuarters
	sweepers.mu.Lock()
	defer sweepers.mu.Unlock()
	s := sweepers.m[q]
	if s == nil {
		return
	}
	if _, ok := s.conns[l]; !ok {
		return
	}
	delete(s.conns, l)
	if len(s.conns) == 0 {
		delete(sweepers.m, q)
		close(s.stop)
	}
}

func (s *sweeper) run() {
	tick := time.NewTicker(s.quarter)
	defer tick.Stop()
	var batch []*liveness
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		sweepers.mu.Lock()
		batch = batch[:0]
		for l := range s.conns {
			batch = append(batch, l)
		}
		sweepers.mu.Unlock()
		for _, l := range batch {
			if l.look() {
				unlisten(l)
			}
		}
		clear(batch)
	}
}
