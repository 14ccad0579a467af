package client

// A connection's start: dialing the URLs in turn, the connect (with the
// requests packed after it), and handing the connection to its reader.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/switchboard-chat/switchboard/protocol"
)

// tokenError is Options.TokenFunc's failure: no gateway would take the
// session without a token.
type tokenError struct{ err error }

func (e tokenError) Error() string { return "client: token: " + e.err.Error() }
func (e tokenError) Unwrap() error { return e.err }

// dialFirst connects to the first of the URLs that takes the session.
func (c *Client) dialFirst(ctx context.Context) error {
	var errs []error
	for i := range c.opts.URLs {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if i < len(c.opts.URLs)-1 && c.opts.StallTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, c.opts.StallTimeout)
		}
		err := c.connect(actx, c.opts.First)
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		var perr *protocol.Error
		if ctx.Err() != nil || errors.As(err, new(tokenError)) || (errors.As(err, &perr) && perr.Code != protocol.CodeUnavailable) {
			break
		}
		c.mu.Lock()
		c.urlIndex++
		c.mu.Unlock()
	}
	return errors.Join(errs...)
}

// connect dials, sends connect (in the upgrade when the server takes
// it) with the requests first (Options.First, on Dial's connections),
// and starts the read loop.
func (c *Client) connect(ctx context.Context, first []Request) error {
	c.mu.Lock()
	url := c.opts.URLs[c.urlIndex%len(c.opts.URLs)]
	c.mu.Unlock()
	args := protocol.ConnectArgs{UserID: c.opts.UserID, Name: c.opts.Name, Token: c.opts.Token}
	if c.opts.TokenFunc != nil {
		var err error
		if args.Token, err = c.opts.TokenFunc(); err != nil {
			return tokenError{err}
		}
	}
	// connect is the first frame, in the upgrade request unless told
	// otherwise; its reply is the first the server sends.
	body, _ := json.Marshal(args)
	msg, ids, err := c.packFirst(requestFrame(0, protocol.OpConnect, body), first)
	if err != nil {
		return err
	}
	conn, err := c.dialConnect(ctx, url, msg)
	if err != nil {
		c.forgetIDs(ids)
		return err
	}
	msg, err = conn.readFirst(ctx)
	if err != nil {
		c.forgetIDs(ids)
		return fmt.Errorf("client: connect: %w", err)
	}
	reply, rest := msg, []byte(nil)
	if i := bytes.IndexByte(msg, '\n'); i >= 0 {
		reply, rest = msg[:i], msg[i+1:]
	}
	var f frame
	if !decodeReply(reply, &f) {
		f = frame{}
		if uerr := json.Unmarshal(reply, &f); uerr != nil {
			err = fmt.Errorf("client: connect: bad reply: %w", uerr)
		}
	}
	// Only the user's id is read now (endsWatch needs it); Session
	// decodes the rest when asked.
	user, ok := connectUser(f.Result)
	switch {
	case err != nil:
	case f.Error != nil:
		err = f.Error
	case !ok:
		err = fmt.Errorf("client: connect: bad result: %.200s", f.Result)
	}
	c.mu.Lock()
	if err == nil && c.closed {
		err = ErrClosed
	}
	if err != nil {
		c.mu.Unlock()
		c.forgetIDs(ids)
		conn.CloseNow()
		return err
	}
	c.conn = conn
	c.gen++
	c.user, c.session, c.sessionRaw = user, protocol.ConnectResult{}, bytes.Clone(f.Result)
	gen := c.gen
	close(c.up)
	c.mu.Unlock()
	l := &liveness{c: c, conn: conn}
	if c.opts.StallTimeout > 0 {
		listen(l)
	}
	c.wg.Add(1)
	conn.onMsg = c.onMessage(l)
	if len(rest) > 0 { // replies packed with connect's, before any read
		conn.onMsg(rest)
	}
	end := func(err error) {
		defer c.wg.Done()
		c.readEnded(conn, gen, l, err)
	}
	if s := c.opts.Poller.shardFor(&c.opts); s != nil && s.add(conn, end) {
		return nil
	}
	go func() { end(conn.serve(conn.onMsg)) }()
	return nil
}

// packFirst packs the connect frame and the requests of first into one
// message, each request registered as pending for the connection being
// dialed; it returns the message and the requests' ids (forget them if
// the connect fails).
func (c *Client) packFirst(connect []byte, first []Request) ([]byte, []uint64, error) {
	if len(first) == 0 {
		return connect, nil, nil
	}
	bodies := make([][]byte, len(first))
	for i, r := range first {
		b, err := json.Marshal(r.Args)
		if err != nil {
			return nil, nil, fmt.Errorf("client: %s args: %w", r.Op, err)
		}
		bodies[i] = b
	}
	msg := connect
	ids := make([]uint64, len(first))
	c.mu.Lock()
	for i, r := range first {
		c.nextID++
		ids[i] = c.nextID
		p := &pending{op: r.Op, gen: c.gen + 1, cb: asyncDone(r.Done)}
		p.noteWatch(bodies[i])
		c.pending[ids[i]] = p
		msg = append(append(msg, '\n'), requestFrame(ids[i], r.Op, bodies[i])...)
	}
	c.mu.Unlock()
	return msg, ids, nil
}

// forgetIDs drops requests that were never answered on a connection that
// did not connect.
func (c *Client) forgetIDs(ids []uint64) {
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	for _, id := range ids {
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// dialConnect opens a WebSocket to url carrying msg, the connect frame
// and what is packed after it: offered in the upgrade (unless
// Options.ConnectFrame), and sent as the first message when the server
// does not take the offer.
func (c *Client) dialConnect(ctx context.Context, url string, msg []byte) (*wsConn, error) {
	offered := msg
	if c.opts.ConnectFrame {
		offered = nil
	}
	conn, taken, err := dialWS(ctx, dialClient(c.opts.HTTPClient), url, offered)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", url, err)
	}
	if !taken {
		if err := conn.Write(ctx, msg); err != nil {
			conn.CloseNow()
			return nil, fmt.Errorf("client: connect: %w", err)
		}
	}
	return conn, nil
}

// onMessage returns what the connection's reader (its read loop, or a
// Poller) does with each message. Reads have no context: Close closes
// the connection itself. Each message tells the watchdog the connection
// is alive (l.heard: a load, and a store once per watchdog tick at
// most).
func (c *Client) onMessage(l *liveness) func([]byte) {
	in := new(interner)
	handle := func(b []byte) { c.handle(b, in) }
	return func(msg []byte) {
		if !l.heard.Load() {
			l.heard.Store(true)
		}
		protocol.SplitFrames(msg, handle)
	}
}

// readEnded hands a connection whose reading ended over to reconnect.
func (c *Client) readEnded(conn *wsConn, gen uint64, l *liveness, err error) {
	if c.opts.StallTimeout > 0 {
		unlisten(l)
	}
	if l.stalled.Load() {
		err = errStalled
	}
	c.dropped(conn, gen, err)
}
