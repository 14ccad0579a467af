package client

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// dropped handles a failed connection: outstanding requests that are safe
// to repeat are resent on the next connection, the others fail with
// ErrDisconnected.
func (c *Client) dropped(conn *wsConn, gen uint64, err error) {
	conn.CloseNow()
	c.mu.Lock()
	if c.gen != gen {
		c.mu.Unlock()
		return
	}
	c.lastError = err
	c.up = make(chan struct{})
	c.conn = nil
	c.urlIndex++
	// Every outstanding request is answered "disconnected"; Call resends
	// the idempotent ones once a connection is back.
	var failed []*pending
	for id, p := range c.pending {
		delete(c.pending, id)
		failed = append(failed, p)
	}
	closed := c.closed || c.opts.NoReconnect
	c.mu.Unlock()
	for _, p := range failed {
		p.answer(frame{Error: &protocol.Error{Code: codeDisconnected}})
	}
	if closed {
		if !c.isClosed() {
			go c.Close()
		}
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.reconnect()
	}()
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// reconnect dials until it succeeds or the client closes, moving to the
// next URL after each failed attempt, then resumes every watched channel
// from its last seq. The first attempts are bounded by StallTimeout, so
// a gateway that accepts connections but never answers (a paused
// process: the kernel still completes the TCP handshake) is skipped
// quickly; the bound doubles with each failure up to RequestTimeout, so
// gateways that are only slow (every client reconnecting at once) are
// still reached.
func (c *Client) reconnect() {
	backoff := c.opts.MinBackoff
	wait := c.opts.RequestTimeout
	if c.opts.StallTimeout > 0 {
		wait = min(wait, c.opts.StallTimeout)
	}
	for {
		if c.ctx.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, wait)
		err := c.connect(ctx, nil)
		cancel()
		if err == nil {
			break
		}
		c.mu.Lock()
		c.urlIndex++
		c.mu.Unlock()
		wait = min(wait*2, c.opts.RequestTimeout)
		c.opts.Logger.Debug("client: reconnect failed", "err", err)
		select {
		case <-time.After(jitter(backoff)):
		case <-c.ctx.Done():
			return
		}
		backoff = min(backoff*2, c.opts.MaxBackoff)
	}
	c.mu.Lock()
	var watches []*watch
	var chans []string
	for ch, w := range c.watched {
		if w.inflight == nil {
			// A resync in flight goes on by itself on this connection
			// (its call is retried there): starting another would replay
			// the channel twice.
			w.resyncing = false
		}
		chans = append(chans, ch)
		watches = append(watches, w)
	}
	c.mu.Unlock()
	for _, ch := range chans {
		c.resync(ch)
	}
	c.rewatchPresence()
	c.deliver(Event{Name: EventReconnected})
	if c.opts.OnResumed != nil {
		for _, w := range watches {
			c.resumed(w)
		}
		c.opts.OnResumed()
	}
}

// resumed waits until w has no resync in flight: every page of its
// resume was answered.
func (c *Client) resumed(w *watch) {
	for {
		c.mu.Lock()
		inflight := w.inflight
		c.mu.Unlock()
		if inflight == nil {
			return
		}
		<-inflight
	}
}

func jitter(d time.Duration) time.Duration {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return d/2 + time.Duration(int64(b[0])<<8|int64(b[1]))*d/2/65536
}
