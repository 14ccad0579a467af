package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
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
	var packed map[string]chan struct{} // resumes that went with the connect
	wait := c.opts.RequestTimeout
	if c.opts.StallTimeout > 0 {
		wait = min(wait, c.opts.StallTimeout)
	}
	for {
		if c.ctx.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, wait)
		first, resumes := c.packResumes()
		err := c.connect(ctx, first)
		cancel()
		if err == nil {
			packed = resumes
			break
		}
		c.unpackResumes(resumes)
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
		if packed[ch] != nil {
			// Its resume went with the connect: answered (or handed on
			// to resync) by resumeAnswered.
			watches = append(watches, w)
			continue
		}
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

// maxPackedResumes bounds the resumes a reconnect packs with its connect
// (the upgrade's request head should stay small, docs/protocol.md); the
// other watched channels resume after the connect.
const maxPackedResumes = 8

// packResumes makes the requests that resume watched channels with the
// next connect: a channel.watch from the last seq delivered for each
// channel (up to maxPackedResumes) with no resync in flight, each marked
// as resyncing until resumeAnswered. It returns the requests and their
// channels' marks (give them to unpackResumes if the connect fails).
func (c *Client) packResumes() ([]Request, map[string]chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first []Request
	var packed map[string]chan struct{}
	for ch, w := range c.watched {
		if len(first) == maxPackedResumes {
			break
		}
		if w.inflight != nil {
			continue // a resync in flight is resent on the new connection by itself
		}
		done := make(chan struct{})
		w.resyncing, w.inflight = true, done
		if packed == nil {
			packed = make(map[string]chan struct{})
		}
		packed[ch] = done
		since := w.seq
		first = append(first, Request{Op: protocol.OpChannelWatch, Args: protocol.WatchArgs{Channel: ch, SinceSeq: &since},
			Done: func(_ json.RawMessage, err error) { c.resumeAnswered(ch, w, done, err) }})
	}
	return first, packed
}

// unpackResumes undoes packResumes' marks after a connect that failed
// (its requests were never answered): the next attempt packs them again.
func (c *Client) unpackResumes(packed map[string]chan struct{}) {
	c.mu.Lock()
	for ch, done := range packed {
		if w := c.watched[ch]; w != nil && w.inflight == (<-chan struct{})(done) {
			w.resyncing, w.inflight = false, nil
		}
		close(done)
	}
	c.mu.Unlock()
}

// resumeAnswered settles a resume packed with the connect, on the read
// goroutine, after watchResult took a successful reply's events. A
// failure that may pass goes on as resync would have: tried again,
// backing off; a refusal ends the resume. w's inflight stays set until
// whatever follows (a retry, the next page) has replaced it, so resumed
// never sees the channel resumed early.
func (c *Client) resumeAnswered(ch string, w *watch, done chan struct{}, err error) {
	c.mu.Lock()
	again := c.againLocked(ch, w, err)
	if err != nil {
		w.resyncing = false
	}
	c.mu.Unlock()
	switch {
	case again:
		c.resync(ch)
	case err != nil && c.ctx.Err() == nil:
		c.opts.Logger.Warn("client: resume failed", "channel", ch, "err", err)
	}
	c.mu.Lock()
	if w.inflight == (<-chan struct{})(done) {
		w.inflight = nil // nothing followed it
	}
	c.mu.Unlock()
	close(done)
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
