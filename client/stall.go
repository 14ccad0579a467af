package client

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// A gateway can stall without closing its connections: its process is
// paused (SIGSTOP, a frozen VM, a machine swapping) or the network drops
// its packets without resetting anything. The kernel keeps the TCP
// connection open, so nothing fails: reads wait, requests wait for their
// whole RequestTimeout, and watched channels go quiet while they move on
// elsewhere. The server's own pings (every 25 s) say nothing about this
// direction, so each connection has a watchdog that listens for silence:
//
//   - The read loop marks every message it reads (liveness.heard). The
//     watchdog looks every quarter of StallTimeout and clears the mark.
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

// liveness is what a connection's read loop and its watchdog share.
type liveness struct {
	heard   atomic.Bool   // a message or pong arrived since the watchdog last looked
	stalled atomic.Bool   // the watchdog dropped the connection
	pinging atomic.Bool   // a ping is outstanding
	done    chan struct{} // closed when the read loop ends
}

// stallQuarters is how many silent looks in a row drop a connection; the
// one halfway sends a ping.
const stallQuarters = 4

// watchdog drops conn once it has been silent for StallTimeout, until
// the read loop ends.
func (c *Client) watchdog(conn *websocket.Conn, l *liveness) {
	tick := time.NewTicker(c.opts.StallTimeout / stallQuarters)
	defer tick.Stop()
	silent := 0
	for {
		select {
		case <-l.done:
			return
		case <-tick.C:
		}
		if l.heard.Swap(false) || c.waiting.Load() > 0 {
			silent = 0
			continue
		}
		if silent++; silent >= stallQuarters {
			c.opts.Logger.Info("client: the gateway stopped answering; reconnecting", "silent", c.opts.StallTimeout)
			l.stalled.Store(true)
			conn.CloseNow() // the read loop fails and reconnects
			return
		}
		if silent == stallQuarters/2 && l.pinging.CompareAndSwap(false, true) {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer l.pinging.Store(false)
				// Bounded by the connection: Ping returns when it closes.
				ctx, cancel := context.WithTimeout(context.Background(), c.opts.StallTimeout)
				defer cancel()
				if conn.Ping(ctx) == nil {
					l.heard.Store(true)
				}
			}()
		}
	}
}
