// Package client is Switchboard's Go client: it connects a session, sends
// requests and matches their replies, delivers events in seq order, and —
// when the connection drops — reconnects, resumes every watched channel
// from the last seq it delivered (the first few resumes packed with the
// reconnect's connect: one round trip), and resends requests that are
// safe to repeat (a message.send keeps its client_id, so a resend never
// creates a second message).
//
// The client speaks the client side of the WebSocket protocol (RFC 6455)
// itself: text messages, pings and the close handshake over one read
// buffer per connection, without a context or a timer per read. Each
// connection is read by a goroutine of its own; on Linux, clients that
// hand their events to OnEvent can share a Poller instead (a few
// goroutines, each waiting on many sockets at once with epoll), which is
// how the load test holds thousands of sessions cheaply.
package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Options configure a Client.
type Options struct {
	// URLs are gateway WebSocket URLs (ws://host:port/v1/ws, or wss://
	// for a node serving TLS; http:// and https:// work too). Dial tries
	// them in order until one connects; the client moves to the next on
	// each reconnect attempt.
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
	// ConnectFrame sends connect as the first frame after the upgrade,
	// not in the upgrade request (offered as a subprotocol, which saves a
	// round trip; a server that does not take it gets the frame anyway).
	ConnectFrame bool
	// First are requests Dial makes with connect, in the same round
	// trip: packed after the connect frame in the message the upgrade
	// offers (or, to a server that does not take the offer, in the
	// message that carries the connect frame), handled by the gateway in
	// order right after connect. A live room's viewer joins its channel
	// this way: connected and joined after one round trip instead of
	// two. Each Done receives its request's reply as CallAsync's done
	// does, on the read goroutine before any later frame; when Dial
	// fails, none is called. Nothing is retried: a request answered
	// unavailable is the caller's to make again.
	First []Request
	// MinBackoff and MaxBackoff bound reconnect and retry delays
	// (defaults 50 ms and 2 s).
	MinBackoff, MaxBackoff time.Duration
	// MaxRetry bounds how long an idempotent request keeps being retried
	// through unavailable replies, short rate_limited ones (a wait of at
	// most MaxRateWait) and reconnects (default 30 s).
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
	// HTTPClient(TLSConfig)). When its Transport is an *http.Transport
	// (or nil) without DialTLSContext, the client makes the upgrade on a
	// connection of its own with that transport's DialContext,
	// TLSClientConfig, TLSHandshakeTimeout and MaxResponseHeaderBytes
	// (see upgrade.go), and leaves upgrades its Proxy sends through a
	// proxy to the transport itself; any other RoundTripper is used as
	// it is.
	HTTPClient *http.Client
	// Poller, when set, reads the connection together with its other
	// clients' on a few shared goroutines instead of a read goroutine of
	// the client's own (see Poller: Linux, plain ws:// connections, and
	// clients with OnEvent set, which then runs on the poller's
	// goroutine: a slow OnEvent holds up the poller's other
	// connections, and one that closes another client of the same
	// poller waits for itself). Load generators holding thousands of
	// sessions use it.
	Poller *Poller
	Logger *slog.Logger
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

// Request is one of Options.First.
type Request struct {
	Op   string
	Args any
	Done func(result json.RawMessage, err error)
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

	mu      sync.Mutex // guards the fields below
	conn    *wsConn
	gen     uint64        // connection generation
	up      chan struct{} // closed while connected; replaced on drop
	nextID  uint64
	pending map[uint64]*pending
	watched map[string]*watch
	// lastWatch is watchOf's last answer; forget clears it.
	lastWatch lastWatch
	user      string                 // the session's user id
	session   protocol.ConnectResult // decoded from sessionRaw by Session
	// sessionRaw is the connect result not decoded yet (nil: decoded).
	sessionRaw json.RawMessage
	closed     bool
	urlIndex   int
	lastError  error
	presence   map[string]struct{} // users whose presence is watched

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
	channel string  // the channel a watch or join names
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
	// late is where the reply to the last watch of the channel given up
	// on comes, while it may still come (see abandonWatch).
	late <-chan frame
}

// frame is any server frame.
type frame struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *protocol.Error `json:"error"`
	Event
}

// Dial connects a session and returns once connect succeeded. It tries
// each of Options.URLs once, in order: a gateway that cannot be reached,
// does not answer within StallTimeout (while others are left to try) or
// answers unavailable is skipped; any other refusal (a bad token, say)
// is returned at once, since every gateway would give it.
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
	if err := c.dialFirst(ctx); err != nil {
		c.cancel()
		return nil, err
	}
	return c, nil
}

// Session returns the current connection's connect result.
func (c *Client) Session() protocol.ConnectResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessionRaw != nil {
		if err := json.Unmarshal(c.sessionRaw, &c.session); err != nil {
			c.opts.Logger.Warn("client: undecodable connect result", "err", err)
		}
		c.sessionRaw = nil
	}
	return c.session
}

// Events returns the event stream (unused when Options.OnEvent is set).
// It is closed when the client ends.
func (c *Client) Events() <-chan Event { return c.events }

// Close ends the session: it sends a normal close frame (1000) and waits
// up to Options.CloseTimeout for the server's answer, then tears the
// client down. It is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		// The handshake comes first, while the read loop still reads (it
		// reads the server's answer): cancelling first would close the
		// socket under it, and the server would see a dropped connection
		// (connection_lost) rather than the client closing.
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = conn.Close(protocol.CloseNormalClosure, "client closed")
		}()
		timer := time.NewTimer(c.opts.CloseTimeout)
		select {
		case <-done:
		case <-timer.C: // no answer: drop the connection
		}
		timer.Stop()
		c.cancel()
		conn.CloseNow()
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

// keptReadBuffer bounds the read buffer (and a fragmented message's) a
// connection keeps between messages.
const keptReadBuffer = 64 << 10
