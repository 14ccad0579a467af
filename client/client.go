// Package client is Switchboard's Go client: it connects a session, sends
// requests and matches their replies, delivers events in seq order, and —
// when the connection drops — reconnects, resumes every watched channel
// from the last seq it delivered, and resends requests that are safe to
// repeat (a message.send keeps its client_id, so a resend never creates a
// second message).
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Options configure a Client.
type Options struct {
	// URLs are gateway WebSocket URLs (ws://host:port/v1/ws, or wss://
	// for a node serving TLS; http:// and https:// work too). The client
	// connects to the first and moves to the next on each reconnect
	// attempt.
	URLs []string
	// Token is a session JWT; TokenFunc, when set, is called for a fresh
	// one on every connect. Without either, UserID and Name are sent
	// (development auth).
	Token     string
	TokenFunc func() (string, error)
	UserID    string
	Name      string
	// RequestTimeout bounds each attempt of a request (default 15 s).
	RequestTimeout time.Duration
	// StallTimeout is how long a connection may stay silent — no frame
	// and no answer to the client's WebSocket pings — before the client
	// takes its gateway for stalled (a paused process, a black-holed
	// network: the TCP connection stays open and nothing arrives), drops
	// the connection, and reconnects to the next URL (see stall.go). The
	// client pings once half of it has passed in silence, so a live idle
	// gateway is kept, and a stall is noticed between StallTimeout and
	// 1¼ × StallTimeout after the last frame. It also bounds the first reconnect attempt to each
	// gateway (later ones double it, up to RequestTimeout). Default 4 s;
	// negative: never (a stalled gateway is then noticed only when a
	// request times out).
	StallTimeout time.Duration
	// CloseTimeout bounds how long Close waits for the server to answer
	// its close frame before it drops the connection (default 2 s).
	CloseTimeout time.Duration
	// NoReconnect turns automatic reconnection off: a dropped connection
	// ends the client.
	NoReconnect bool
	// MinBackoff and MaxBackoff bound reconnect and retry delays
	// (defaults 50 ms and 2 s).
	MinBackoff, MaxBackoff time.Duration
	// MaxRetry bounds how long an idempotent request keeps being retried
	// through unavailable replies and reconnects (default 30 s).
	MaxRetry time.Duration
	// OnResumed, when set, is called after a reconnection once every
	// watched channel's resume (channel.watch with since_seq) has been
	// answered, so its missed events were delivered.
	OnResumed func()
	// OnEvent, when set, receives every event on the client's read
	// goroutine; it must return quickly (while it runs nothing is read,
	// and a call longer than StallTimeout looks like a stalled gateway).
	// Otherwise events go to Events().
	OnEvent func(Event)
	// EventBuffer is the capacity of Events() (default 4096; unused, and
	// not allocated, when OnEvent is set). The read goroutine blocks when
	// it is full: events are never dropped, but a consumer that stops
	// reading stalls the connection until the server drops it as a slow
	// consumer.
	EventBuffer int
	// RawEvents delivers events exactly as the server sent them: repeats
	// are not dropped and a gap in seq does not start a resync. The client
	// still remembers the highest seq per channel to resume from after a
	// reconnect. The load test's correctness oracle uses it to judge the
	// server's own ordering; applications leave it off.
	RawEvents bool
	// TLSConfig is used for wss:// URLs when HTTPClient is not set
	// (nil: Go's defaults, the system's CAs). LoadTLS makes one that
	// trusts a test CA.
	TLSConfig *tls.Config
	// HTTPClient dials the WebSocket (default http.DefaultClient, or
	// HTTPClient(TLSConfig)).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

func (o *Options) withDefaults() {
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 15 * time.Second
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 2 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 50 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 2 * time.Second
	}
	if o.MaxRetry <= 0 {
		o.MaxRetry = 30 * time.Second
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = 4096
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil && o.TLSConfig != nil {
		o.HTTPClient = HTTPClient(o.TLSConfig)
	}
}

// DefaultStallTimeout is Options.StallTimeout when it is left zero.
const DefaultStallTimeout = 4 * time.Second

// Event is one event frame.
type Event struct {
	Name    string          `json:"event"`
	Channel string          `json:"channel,omitempty"`
	Seq     uint64          `json:"seq,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Error codes the client itself uses for replies that never came.
const (
	codeDisconnected protocol.Code = "disconnected"
	codeClosed       protocol.Code = "closed"
)

// Synthetic events the client itself delivers.
const (
	// EventReset: the server no longer has the events this client missed
	// on Channel, or an import changed the channel's history (it follows
	// the channel.updated with reason imported); reload it (channel.join
	// or messages.history).
	EventReset = "client.reset"
	// EventReconnected: the connection was re-established and watches
	// resumed.
	EventReconnected = "client.reconnected"
)

// Errors.
var (
	// ErrClosed means the client was closed.
	ErrClosed = errors.New("client: closed")
	// ErrDisconnected means the connection dropped while a request that is
	// not safe to repeat was outstanding: it may or may not have happened.
	ErrDisconnected = errors.New("client: disconnected; the request may or may not have been applied")
	// ErrNotConnected is returned by CallAsync while the client is
	// between connections.
	ErrNotConnected = errors.New("client: not connected")
)

// idempotent reports whether op may be resent after a reconnect and
// retried on unavailable (the table's Idempotent).
func idempotent(op string) bool {
	o, ok := protocol.LookupOp(op)
	return ok && o.Idempotent
}

// Client is one session, re-established across connection drops.
type Client struct {
	opts Options

	mu        sync.Mutex // guards the fields below
	conn      *websocket.Conn
	raw       net.Conn      // conn's TCP connection (nil: not known, see dialer.go)
	gen       uint64        // connection generation
	up        chan struct{} // closed while connected; replaced on drop
	nextID    uint64
	pending   map[uint64]*pending
	watched   map[string]*watch
	session   protocol.ConnectResult
	closed    bool
	urlIndex  int
	lastError error
	presence  map[string]struct{} // users whose presence is watched

	// waiting counts deliveries blocked on a full Events channel: the
	// read loop is then not reading, and the watchdog must not take the
	// silence for the gateway's.
	waiting atomic.Int32

	events chan Event
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type pending struct {
	op    string
	gen   uint64
	reply chan frame
	// cb, when set instead of reply, receives the reply (CallAsync).
	cb func(frame)
	// watches is set for join, watch and create: the read loop records
	// the channel's position and delivers the reply's missed events
	// before the reply, in stream order.
	watches bool
	since   *uint64 // the since_seq a watch or join asked for
}

// watch is a watched channel and the last seq delivered for it.
type watch struct {
	seq       uint64
	resyncing bool
	// inflight closes when the resync in flight is answered (nil: none).
	// A reply with has_more starts the next page's resync before its
	// own is done, so waiting until it is nil waits for every page.
	inflight <-chan struct{}
}

// frame is any server frame.
type frame struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *protocol.Error `json:"error"`
	Event
}

// Dial connects a session and returns once connect succeeded.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	opts.withDefaults()
	if len(opts.URLs) == 0 {
		return nil, errors.New("client: no URL")
	}
	c := &Client{
		opts:    opts,
		up:      make(chan struct{}),
		pending: make(map[uint64]*pending),
		watched: make(map[string]*watch),
	}
	if opts.OnEvent != nil {
		// Nothing is ever sent on it; it only closes with the client.
		// Leaving the buffer out saves ~256 KiB per client.
		c.events = make(chan Event)
	} else {
		c.events = make(chan Event, opts.EventBuffer)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.connect(ctx); err != nil {
		c.cancel()
		return nil, err
	}
	return c, nil
}

// Session returns the current connection's connect result.
func (c *Client) Session() protocol.ConnectResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// Events returns the event stream (unused when Options.OnEvent is set).
// It is closed when the client ends.
func (c *Client) Events() <-chan Event { return c.events }

// Close ends the session: it sends a normal close frame (1000) and waits
// up to Options.CloseTimeout for the server's answer, then tears the
// client down. It is safe to call more than once. The bound holds while
// the read loop waits in a read, as it does unless it is handing events
// to a full Events channel; otherwise the WebSocket library's own 5 s
// wait for the answer applies.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conn, raw := c.conn, c.raw
	c.mu.Unlock()
	if conn != nil {
		// The handshake comes first, while the read loop still reads (it
		// reads the server's answer): cancelling first would close the
		// socket under it, and the server would see a dropped connection
		// (connection_lost) rather than the client closing.
		done := make(chan struct{})
		go func() {
			defer close(done)
			conn.Close(websocket.StatusNormalClosure, "client closed")
		}()
		timer := time.NewTimer(c.opts.CloseTimeout)
		select {
		case <-done:
		case <-timer.C: // no answer: cancelling drops the connection
		}
		timer.Stop()
		c.cancel()
		if raw != nil {
			raw.Close() // the read loop reads without a context
		}
		<-done
	} else {
		c.cancel()
	}
	c.wg.Wait()
	c.mu.Lock()
	var async []*pending
	for id, p := range c.pending {
		delete(c.pending, id)
		if p.cb != nil {
			async = append(async, p)
		} else {
			close(p.reply)
		}
	}
	c.mu.Unlock()
	for _, p := range async {
		p.cb(frame{Error: &protocol.Error{Code: codeClosed}})
	}
	close(c.events)
	return nil
}

// Drop closes the current connection abruptly, as a network failure
// would. The client then reconnects (unless NoReconnect is set) and
// resumes its watched channels. Load tests use it for reconnect storms.
func (c *Client) Drop() {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.CloseNow()
	}
}

// Connected reports whether the client has a connection now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// connect dials, sends connect, and starts the read loop.
func (c *Client) connect(ctx context.Context) error {
	c.mu.Lock()
	url := c.opts.URLs[c.urlIndex%len(c.opts.URLs)]
	c.mu.Unlock()
	slot := new(rawSlot)
	conn, _, err := websocket.Dial(context.WithValue(ctx, rawSlotKey{}, slot), url, &websocket.DialOptions{
		HTTPClient:   dialClient(c.opts.HTTPClient),
		Subprotocols: []string{"switchboard.v1.json"},
	})
	raw := slot.take()
	if err != nil {
		if raw != nil {
			raw.Close()
		}
		return fmt.Errorf("client: dial %s: %w", url, err)
	}
	conn.SetReadLimit(64 << 20)
	args := protocol.ConnectArgs{UserID: c.opts.UserID, Name: c.opts.Name, Token: c.opts.Token}
	if c.opts.TokenFunc != nil {
		if args.Token, err = c.opts.TokenFunc(); err != nil {
			conn.CloseNow()
			return fmt.Errorf("client: token: %w", err)
		}
	}
	// connect is the first frame; its reply is the first the server sends.
	body, _ := json.Marshal(map[string]any{"id": 0, "op": protocol.OpConnect, "args": args})
	if err := conn.Write(ctx, websocket.MessageText, body); err != nil {
		conn.CloseNow()
		return fmt.Errorf("client: connect: %w", err)
	}
	_, msg, err := conn.Read(ctx)
	if err != nil {
		conn.CloseNow()
		return fmt.Errorf("client: connect: %w", err)
	}
	var f frame
	if err := json.Unmarshal(firstFrame(msg), &f); err != nil {
		conn.CloseNow()
		return fmt.Errorf("client: connect: bad reply: %w", err)
	}
	if f.Error != nil {
		conn.CloseNow()
		return f.Error
	}
	var res protocol.ConnectResult
	if err := json.Unmarshal(f.Result, &res); err != nil {
		conn.CloseNow()
		return fmt.Errorf("client: connect: bad result: %w", err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		conn.CloseNow()
		return ErrClosed
	}
	c.conn, c.raw = conn, raw
	c.gen++
	c.session = res
	gen := c.gen
	close(c.up)
	c.mu.Unlock()
	l := &liveness{done: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.readLoop(conn, slot.conn != nil, gen, l)
	}()
	if c.opts.StallTimeout > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.watchdog(conn, l)
		}()
	}
	return nil
}

func firstFrame(msg []byte) []byte {
	if i := bytes.IndexByte(msg, '\n'); i >= 0 {
		return msg[:i]
	}
	return msg
}

// readLoop reads until the connection fails, then hands over to
// reconnect. Reads have no context when Close can close the connection
// itself (raw: see dialer.go); else they end with the client's context.
// Each message tells the watchdog the connection is alive (l.heard: a
// load, and a store once per watchdog tick at most).
func (c *Client) readLoop(conn *websocket.Conn, raw bool, gen uint64, l *liveness) {
	ctx := c.ctx
	if raw {
		ctx = context.Background()
	}
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			close(l.done)
			if l.stalled.Load() {
				err = errStalled
			}
			c.dropped(conn, gen, err)
			return
		}
		if !l.heard.Load() {
			l.heard.Store(true)
		}
		protocol.SplitFrames(msg, func(b []byte) { c.handle(b) })
	}
}

func (c *Client) handle(b []byte) {
	var f frame
	if decodeEvent(b, &f.Event) {
		c.event(f.Event)
		return
	}
	f = frame{}
	if err := json.Unmarshal(b, &f); err != nil {
		c.opts.Logger.Warn("client: undecodable frame", "err", err)
		return
	}
	if f.Name != "" {
		c.event(f.Event)
		return
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
	var r struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
		Seq           uint64            `json:"seq"`
		Events        []json.RawMessage `json:"events"`
		EventsHasMore bool              `json:"events_has_more"`
		Reset         bool              `json:"reset"`
	}
	if json.Unmarshal(result, &r) != nil || r.Channel.ID == "" {
		return
	}
	ch := r.Channel.ID
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
		if json.Unmarshal(raw, &e) != nil {
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
			if w := c.watched[e.Channel]; w != nil && e.Seq > w.seq {
				w.seq = e.Seq
			}
			c.mu.Unlock()
		}
		c.deliver(e)
		return
	}
	if e.Seq != 0 && e.Channel != "" {
		c.mu.Lock()
		w := c.watched[e.Channel]
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
	self := d.User == c.session.User.ID
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
// resumed).
func (c *Client) resync(ch string) {
	c.mu.Lock()
	w := c.watched[ch]
	if w == nil || w.resyncing {
		c.mu.Unlock()
		return
	}
	w.resyncing = true
	since := w.seq
	done := make(chan struct{})
	w.inflight = done
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(done)
		var res json.RawMessage
		err := c.Call(c.ctx, protocol.OpChannelWatch, protocol.WatchArgs{Channel: ch, SinceSeq: &since}, &res)
		c.mu.Lock()
		if err != nil {
			w.resyncing = false
		}
		if w.inflight == (<-chan struct{})(done) {
			w.inflight = nil // no next page started
		}
		c.mu.Unlock()
		if err != nil {
			c.opts.Logger.Warn("client: resync failed", "channel", ch, "err", err)
		}
	}()
}

// dropped handles a failed connection: outstanding requests that are safe
// to repeat are resent on the next connection, the others fail with
// ErrDisconnected.
func (c *Client) dropped(conn *websocket.Conn, gen uint64, err error) {
	conn.CloseNow()
	c.mu.Lock()
	if c.gen != gen {
		c.mu.Unlock()
		return
	}
	c.lastError = err
	c.up = make(chan struct{})
	c.conn, c.raw = nil, nil
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
		err := c.connect(ctx)
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
		w.resyncing = false
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

// Call sends one request and decodes its result into out (which may be
// nil, or a *json.RawMessage). An error reply is returned as
// *protocol.Error. Requests that are safe to repeat are retried through
// unavailable replies and reconnects, up to Options.MaxRetry.
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
		retry := f.Error != nil && idempotent(op) && time.Now().Before(deadline) &&
			(f.Error.Code == protocol.CodeUnavailable || f.Error.Code == codeDisconnected)
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
		case <-time.After(jitter(backoff)):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(backoff*2, c.opts.MaxBackoff)
	}
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
		p.watches = op == protocol.OpChannelJoin || op == protocol.OpChannelWatch || op == protocol.OpChannelCreate
		if p.watches {
			var a protocol.WatchArgs
			if json.Unmarshal(args, &a) == nil {
				p.since = a.SinceSeq
			}
		}
		c.pending[id] = p
		c.mu.Unlock()

		if err := conn.Write(ctx, websocket.MessageText, requestFrame(id, op, args)); err != nil {
			c.mu.Lock()
			delete(c.pending, id)
			c.mu.Unlock()
			if ctx.Err() != nil {
				return frame{}, ctx.Err()
			}
			if !idempotent(op) {
				return frame{Error: &protocol.Error{Code: codeDisconnected}}, nil
			}
			continue // the read loop notices the drop; wait for the next connection
		}
		select {
		case f, ok := <-p.reply:
			if !ok {
				return frame{}, ErrClosed
			}
			return f, nil
		case <-ctx.Done():
			c.mu.Lock()
			delete(c.pending, id)
			c.mu.Unlock()
			return frame{}, ctx.Err()
		}
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
	p := &pending{op: op, gen: gen, cb: func(f frame) {
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
	}}
	p.watches = op == protocol.OpChannelJoin || op == protocol.OpChannelWatch || op == protocol.OpChannelCreate
	if p.watches {
		var a protocol.WatchArgs
		if json.Unmarshal(body, &a) == nil {
			p.since = a.SinceSeq
		}
	}
	c.pending[id] = p
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.RequestTimeout)
	err = conn.Write(ctx, websocket.MessageText, requestFrame(id, op, body))
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
