package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// MaxRateWait is the longest rate_limited wait Call waits out itself
// before it sends a request again: a session's own request rate asks for
// a few ms; a channel's slow mode or rate limit usually for seconds,
// which the caller hears of (to show it, or to wait for it).
const MaxRateWait = time.Second

// Call sends one request and decodes its result into out (which may be
// nil, or a *json.RawMessage). An error reply is returned as
// *protocol.Error. Requests that are safe to repeat are retried through
// unavailable replies, rate_limited ones asking for at most MaxRateWait
// (after that wait) and reconnects, up to Options.MaxRetry.
func (c *Client) Call(ctx context.Context, op string, args any, out any) error {
	body, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("client: %s args: %w", op, err)
	}
	deadline := time.Now().Add(c.opts.MaxRetry)
	backoff := c.opts.MinBackoff
	for {
		f, err := c.attempt(ctx, op, body)
		if err != nil {
			return err
		}
		wait, retry := again(op, f.Error, deadline, backoff)
		if !retry {
			if f.Error != nil {
				if f.Error.Code == codeDisconnected {
					return ErrDisconnected
				}
				return f.Error
			}
			if out != nil {
				if err := json.Unmarshal(f.Result, out); err != nil {
					return fmt.Errorf("client: %s result: %w", op, err)
				}
			}
			return nil
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		if f.Error.Code != protocol.CodeRateLimited {
			backoff = min(backoff*2, c.opts.MaxBackoff)
		}
	}
}

// again says whether a request answered e is sent again, and after how
// long: an idempotent one, after unavailable or a dropped connection
// (with backoff, and never sooner than the server's retry_after_ms) if
// that is before deadline, or after a rate_limited wait of at most
// MaxRateWait that ends before deadline.
func again(op string, e *protocol.Error, deadline time.Time, backoff time.Duration) (time.Duration, bool) {
	if e == nil || !idempotent(op) {
		return 0, false
	}
	switch e.Code {
	case protocol.CodeUnavailable, codeDisconnected:
		wait := max(jitter(backoff), time.Duration(e.RetryAfterMS)*time.Millisecond)
		return wait, time.Now().Add(wait).Before(deadline)
	case protocol.CodeRateLimited:
		wait := time.Duration(e.RetryAfterMS) * time.Millisecond
		return wait, wait > 0 && wait <= MaxRateWait && time.Now().Add(wait).Before(deadline)
	}
	return 0, false
}

// attempt sends the request once (waiting for a connection) and waits for
// its reply. A connection drop is reported as a "disconnected" error frame.
func (c *Client) attempt(ctx context.Context, op string, args []byte) (frame, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return frame{}, ErrClosed
		}
		conn, up, gen := c.conn, c.up, c.gen
		if conn == nil {
			c.mu.Unlock()
			select {
			case <-up:
				continue
			case <-ctx.Done():
				return frame{}, ctx.Err()
			}
		}
		c.nextID++
		id := c.nextID
		p := &pending{op: op, gen: gen, reply: make(chan frame, 1)}
		p.noteWatch(args)
		c.pending[id] = p
		c.mu.Unlock()

		if err := conn.Write(ctx, requestFrame(id, op, args)); err != nil {
			c.mu.Lock()
			delete(c.pending, id)
			c.mu.Unlock()
			if ctx.Err() != nil {
				return frame{}, ctx.Err()
			}
			// The connection closed itself (writeLocked: a frame may be
			// half written), and its reader will take it away.
			if !idempotent(op) {
				return frame{Error: &protocol.Error{Code: codeDisconnected}}, nil
			}
			// Wait for the reader to take the connection away, then for
			// the next one. Not at once: until the reader has run, this
			// is still the client's connection, and every write to it
			// fails again — thousands of clients doing that in a
			// reconnect storm kept the readers (and everything else)
			// from running.
			select {
			case <-time.After(jitter(c.opts.MinBackoff)):
			case <-ctx.Done():
				return frame{}, ctx.Err()
			}
			continue
		}
		select {
		case f, ok := <-p.reply:
			if !ok {
				return frame{}, ErrClosed
			}
			return f, nil
		case <-ctx.Done():
			c.mu.Lock()
			if c.pending[id] == p && p.watches {
				c.abandonWatch(p)
			} else {
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return frame{}, ctx.Err()
		}
	}
}

// abandonWatch keeps a join or watch whose caller stopped waiting (its
// attempt timed out) pending for its reply. The gateway answers every
// request it took, and once it answers a watch it sends the session the
// events after the reply's position: the reply's missed events must
// still be taken (the read loop's watchResult does), or the session would
// see the channel jump past them. The reply (or the connection's end)
// still lands in p.reply, where the channel's resync waits for it
// (awaitLate) rather than ask a second time and be sent them twice. c.mu
// is held.
func (c *Client) abandonWatch(p *pending) {
	if w := c.watched[p.channel]; w != nil {
		w.late = p.reply
	}
}

// CallAsync sends one request without waiting: done is called exactly
// once with the reply's result or error (a *protocol.Error, ErrDisconnected
// when the connection dropped first, or ErrClosed), on the client's read
// goroutine or on the goroutine that saw the connection end; it must
// return quickly. Unlike Call, nothing is retried. It returns an error,
// and does not call done, when the request could not be sent: while the
// client is between connections that is ErrNotConnected.
//
// The load test uses it to keep thousands of requests outstanding from a
// few goroutines.
func (c *Client) CallAsync(op string, args any, done func(result json.RawMessage, err error)) error {
	body, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("client: %s args: %w", op, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	conn, gen := c.conn, c.gen
	if conn == nil {
		c.mu.Unlock()
		return ErrNotConnected
	}
	c.nextID++
	id := c.nextID
	p := &pending{op: op, gen: gen, cb: asyncDone(done)}
	p.noteWatch(body)
	c.pending[id] = p
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.RequestTimeout)
	err = conn.Write(ctx, requestFrame(id, op, body))
	cancel()
	if err != nil {
		c.mu.Lock()
		_, still := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if still {
			return fmt.Errorf("client: %s: %w", op, err)
		}
		// The drop was noticed first and done has its answer.
	}
	return nil
}

// asyncDone hands a reply to a CallAsync done (or a Request's Done).
func asyncDone(done func(json.RawMessage, error)) func(frame) {
	return func(f frame) {
		switch {
		case f.Error == nil:
			done(f.Result, nil)
		case f.Error.Code == codeDisconnected:
			done(nil, ErrDisconnected)
		case f.Error.Code == codeClosed:
			done(nil, ErrClosed)
		default:
			done(nil, f.Error)
		}
	}
}

func requestFrame(id uint64, op string, args []byte) []byte {
	msg := make([]byte, 0, len(args)+len(op)+32)
	msg = append(msg, `{"id":`...)
	msg = strconv.AppendUint(msg, id, 10)
	msg = append(msg, `,"op":`...)
	msg = strconv.AppendQuote(msg, op)
	msg = append(msg, `,"args":`...)
	msg = append(msg, args...)
	return append(msg, '}')
}

// NewClientID returns a random client id for message.send.
func NewClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// noteWatch marks a request that starts a channel's event stream (join,
// watch, create): its reply is recorded as a watch (watchResult), from
// the since_seq its args asked for.
func (p *pending) noteWatch(args []byte) {
	p.watches = p.op == protocol.OpChannelJoin || p.op == protocol.OpChannelWatch || p.op == protocol.OpChannelCreate
	if !p.watches {
		return
	}
	var a protocol.WatchArgs
	if json.Unmarshal(args, &a) == nil {
		p.channel, p.since = a.Channel, a.SinceSeq
	}
}
