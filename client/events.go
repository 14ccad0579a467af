package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

func (c *Client) handle(b []byte, in *interner) {
	// b is the read loop's buffer, reused for the next message: what is
	// handed on is copied out (encoding/json copies what it decodes).
	var f frame
	if decodeEventInterned(b, &f.Event, in) {
		f.Event.Data = bytes.Clone(f.Event.Data)
		c.event(f.Event)
		return
	}
	if decodeReply(b, &f) {
		f.Result = bytes.Clone(f.Result)
	} else {
		f = frame{}
		if err := json.Unmarshal(b, &f); err != nil {
			c.opts.Logger.Warn("client: undecodable frame", "err", err)
			return
		}
		if f.Name != "" {
			c.event(f.Event)
			return
		}
	}
	if len(f.ID) == 0 {
		if f.Error != nil {
			c.opts.Logger.Warn("client: server error without id", "code", f.Error.Code, "message", f.Error.Message)
		}
		return
	}
	id, err := strconv.ParseUint(string(f.ID), 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	p := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if p == nil {
		return
	}
	if p.watches && f.Error == nil {
		c.watchResult(f.Result, p.since)
	}
	p.answer(f)
}

// answer hands a reply to whoever waits for it.
func (p *pending) answer(f frame) {
	if p.cb != nil {
		p.cb(f)
		return
	}
	p.reply <- f
}

// watchResult records a join or watch: it delivers the missed events the
// result carries, then sets the channel's position.
func (c *Client) watchResult(result json.RawMessage, since *uint64) {
	r, ok := parseWatchResult(result)
	if !ok || r.Channel == "" {
		return
	}
	ch := r.Channel
	c.mu.Lock()
	w := c.watched[ch]
	if w == nil {
		w = &watch{}
		c.watched[ch] = w
	}
	if since != nil && *since > w.seq && !r.Reset {
		w.seq = *since // the replay continues from here
	}
	c.mu.Unlock()
	// The replay is contiguous from since: deliver it in order whatever
	// the live path is doing (it may be waiting for exactly this).
	for _, raw := range r.Events {
		var e Event
		if !decodeEvent(raw, &e) && json.Unmarshal(raw, &e) != nil {
			continue
		}
		c.mu.Lock()
		fresh := e.Seq > w.seq
		if fresh {
			w.seq = e.Seq
		}
		c.mu.Unlock()
		if fresh || c.opts.RawEvents {
			c.deliver(e)
		}
	}
	c.mu.Lock()
	last := w.seq
	if r.EventsHasMore {
		w.resyncing = false
		c.mu.Unlock()
		c.resync(ch)
		return
	}
	if r.Seq > w.seq {
		w.seq = r.Seq
	}
	w.resyncing = false
	c.mu.Unlock()
	if r.Reset {
		c.deliver(Event{Name: EventReset, Channel: ch, Seq: last})
	}
}

// event delivers one event in seq order: repeats are dropped, and a gap
// starts a resync from the last seq delivered. An event that ends this
// user's place in the channel also ends the watch (the server has already
// stopped it), so a reconnect does not try to resume it.
func (c *Client) event(e Event) {
	defer func() {
		if c.endsWatch(e) {
			c.forget(e.Channel)
		}
	}()
	if c.opts.RawEvents {
		if e.Seq != 0 && e.Channel != "" {
			c.mu.Lock()
			if w := c.watchOf(e.Channel); w != nil && e.Seq > w.seq {
				w.seq = e.Seq
			}
			c.mu.Unlock()
		}
		c.deliver(e)
		return
	}
	if e.Seq != 0 && e.Channel != "" {
		c.mu.Lock()
		w := c.watchOf(e.Channel)
		if w != nil {
			switch {
			case e.Seq <= w.seq:
				c.mu.Unlock()
				return
			case e.Seq > w.seq+1 || w.resyncing:
				c.mu.Unlock()
				c.resync(e.Channel)
				return
			}
			w.seq = e.Seq
		}
		c.mu.Unlock()
	}
	c.deliver(e)
	if imported(e) {
		// The channel's history changed wholesale: what the client holds
		// of it is to be reloaded, as after a resume that could not be
		// served.
		c.deliver(Event{Name: EventReset, Channel: e.Channel, Seq: e.Seq})
	}
}

// imported reports whether e is the channel.updated an import ends with.
func imported(e Event) bool {
	if e.Name != protocol.EventChannelUpdated || !bytes.Contains(e.Data, []byte(`"reason":"imported"`)) {
		return false
	}
	var d struct {
		Reason string `json:"reason"`
	}
	return json.Unmarshal(e.Data, &d) == nil && d.Reason == protocol.ReasonImported
}

// endsWatch reports whether e stops this session receiving its channel:
// the channel was deleted, this user left, was removed, kicked or banned,
// or the server ended the watch (channel.unwatched).
func (c *Client) endsWatch(e Event) bool {
	switch e.Name {
	case protocol.EventChannelDeleted, protocol.EventChannelUnwatched:
		return e.Channel != ""
	case protocol.EventMemberLeft, protocol.EventMemberKicked, protocol.EventMemberUpdated:
	default:
		return false
	}
	var d struct {
		User   string           `json:"user"`
		Member *protocol.Member `json:"member"`
	}
	if e.Channel == "" || json.Unmarshal(e.Data, &d) != nil {
		return false
	}
	c.mu.Lock()
	self := d.User == c.user
	c.mu.Unlock()
	if !self {
		return false
	}
	if e.Name == protocol.EventMemberUpdated {
		return d.Member != nil && !d.Member.BannedUntil.IsZero() // an ended ban is left out
	}
	return true
}

func (c *Client) deliver(e Event) {
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(e)
		return
	}
	select {
	case c.events <- e:
		return
	default:
	}
	// The consumer is behind: while the read loop waits for it, the
	// connection's silence is not the gateway's (see watchdog).
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	select {
	case c.events <- e:
	case <-c.ctx.Done():
	}
}

// resync watches ch again from the last seq delivered, unless a resync
// of it is in flight; a reply with has_more starts the next page (see
// resumed). A resync that fails for a reason that may pass — its attempt
// timed out, the connection dropped, the channel's host was unavailable
// past MaxRetry — is tried again, backing off, until it succeeds, the
// channel is forgotten or the client closes: giving up would leave a gap
// that nothing fills (after a reconnect, the new connection would not
// even receive the channel). A refusal (not a member, banned) ends it.
func (c *Client) resync(ch string) {
	c.mu.Lock()
	w := c.watched[ch]
	if w == nil || w.resyncing {
		c.mu.Unlock()
		return
	}
	w.resyncing = true
	done := make(chan struct{})
	w.inflight = done
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(done)
		backoff := c.opts.MinBackoff
		for {
			c.mu.Lock()
			since, prior := w.seq, w.late
			c.mu.Unlock()
			// The reply's events are taken by watchResult, on the read
			// goroutine: nothing to decode here.
			err := c.Call(c.ctx, protocol.OpChannelWatch, protocol.WatchArgs{Channel: ch, SinceSeq: &since}, nil)
			if err != nil && c.awaitLate(w, prior) {
				err = nil // given up on, then answered after all: watchResult took it
			}
			c.mu.Lock()
			again := c.againLocked(ch, w, err)
			if err != nil && !again {
				w.resyncing = false
			}
			if !again && w.inflight == (<-chan struct{})(done) {
				w.inflight = nil // no next page started
			}
			c.mu.Unlock()
			if !again {
				if err != nil && c.ctx.Err() == nil {
					c.opts.Logger.Warn("client: resync failed", "channel", ch, "err", err)
				}
				return
			}
			c.opts.Logger.Debug("client: resync failed; trying again", "channel", ch, "err", err, "backoff", backoff)
			select {
			case <-time.After(jitter(backoff)):
			case <-c.ctx.Done():
				c.mu.Lock()
				w.resyncing = false
				c.mu.Unlock()
				return
			}
			backoff = min(backoff*2, c.opts.MaxBackoff)
		}
	}()
}

// awaitLate waits, at most RequestTimeout, for the answer to the watch
// request of w given up on since prior was, if any, and reports whether
// it was answered with a result. Sending another meanwhile would have
// the events after its since_seq sent twice, the late reply's and its
// own.
func (c *Client) awaitLate(w *watch, prior <-chan frame) bool {
	c.mu.Lock()
	late := w.late
	c.mu.Unlock()
	if late == nil || late == prior {
		return false
	}
	t := time.NewTimer(c.opts.RequestTimeout)
	defer t.Stop()
	select {
	case f, ok := <-late:
		return ok && f.Error == nil
	case <-t.C:
	case <-c.ctx.Done():
	}
	return false
}

// againLocked reports whether a resume of ch (w) that failed with err is
// tried again: the failure may pass, the client is open and w is still
// ch's watch (not forgotten meanwhile). c.mu is held.
func (c *Client) againLocked(ch string, w *watch, err error) bool {
	return err != nil && resyncAgain(err) && c.ctx.Err() == nil && c.watched[ch] == w
}

// resyncAgain reports whether a failed resync may succeed if tried again.
func resyncAgain(err error) bool {
	var perr *protocol.Error
	switch {
	case errors.Is(err, ErrClosed):
		return false
	case errors.As(err, &perr):
		return perr.Code.Retryable() || perr.Code == protocol.CodeInternal
	}
	return true // a timeout, a dropped connection
}
