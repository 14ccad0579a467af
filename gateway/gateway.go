// Package gateway terminates client WebSockets: it authenticates sessions,
// decodes frames, routes each op to the actor that owns it, and fans the
// events each channel sends to this node (once per node) out to the local
// sessions watching it. It keeps no durable state.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/peerhttp"
	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/protocol"
	"github.com/switchboard-chat/switchboard/protocol/openapi"
)

// Subprotocol is the WebSocket subprotocol of the JSON encoding.
const Subprotocol = protocol.Subprotocol

// Config bounds the gateway. Zero fields take DefaultConfig's values.
type Config struct {
	Limits protocol.Limits
	// QueueFrames and QueueBytes bound a session's outbound queue; a
	// session that exceeds either is disconnected as a slow consumer.
	QueueFrames int
	QueueBytes  int
	// MaxWriteBytes bounds one write of a session's queued messages (a
	// larger message goes alone).
	MaxWriteBytes int
	// Writers is the number of goroutines that write every session's
	// queued messages (writers.go).
	Writers int
	// CoalesceWindow: a channel's events are written to its watchers at
	// most once per window; the events of a busier channel wait (at most
	// the window) and go out together, several per write (hub.coalesce).
	// Negative writes every batch of events at once.
	CoalesceWindow time.Duration
	// WriteTimeout bounds one WebSocket write.
	WriteTimeout time.Duration
	// PingInterval is how often an idle session is pinged; PingTimeout
	// how long its pong may take.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// AuthTimeout is how long a connection may stay without connect;
	// then it is closed without waiting long for the client's close.
	AuthTimeout time.Duration
	// MaxSessions bounds authenticated sessions on this node; past it,
	// upgrades get 503 and a connect unavailable.
	MaxSessions int
	// MaxUnauthenticated bounds connections that have not authenticated
	// yet, apart from MaxSessions, so that idle sockets cannot take the
	// sessions' places; past it, upgrades get 503.
	MaxUnauthenticated int
	// MaxUnauthenticatedPerIP bounds them per client address (0: no
	// bound). Behind a proxy every client has the proxy's address.
	MaxUnauthenticatedPerIP int
	// SessionRate bounds the requests a session makes, per second on
	// average, with SessionBurst of them at once (SessionRate 0: no
	// bound); past it a request is answered rate_limited. The same bound
	// holds each user's HTTP API requests on this node, unless made with
	// a server API key.
	SessionRate  float64
	SessionBurst int
	// DevAuth accepts connect {user_id} without a token (development);
	// it also lets pages on loopback origins open sessions.
	DevAuth bool
	// AllowedOrigins are the browser origins, besides the request's own
	// host, that may open sessions (see origin.go; check each with
	// ValidOrigin).
	AllowedOrigins []string
	// RequestTimeout bounds every routed request.
	RequestTimeout time.Duration
	Logger         *slog.Logger
	Metrics        *Metrics

	// PresenceInterval is the presence heartbeat: how often this gateway
	// renews its sessions' and watches' leases (which last three of them).
	PresenceInterval time.Duration
	// Files configures POST and GET /v1/files.
	Files FilesConfig
	// Peers forwards a download to the node that holds the file (nil: a
	// client trusting the system's roots only; the node passes one built
	// from its certificates).
	Peers *peerhttp.Client

	// APIKeys are the server API keys the HTTP API accepts (several, so a
	// key can be rotated); none refuses API-key requests.
	APIKeys auth.APIKeys
	// TokenSigner signs the tokens POST /v1/tokens mints (nil: the node
	// has no signing key, and refuses).
	TokenSigner *auth.Signer
	// APIInflight bounds the HTTP API requests this node serves at once;
	// past it they get 503.
	APIInflight int
}

// DefaultConfig is the gateway of a production node. The node's flags
// take their defaults from it.
func DefaultConfig() Config {
	return Config{
		Limits: protocol.DefaultLimits(),
		// A live room's burst or a resume's replay fits; a consumer a
		// thousand frames behind is not keeping up.
		QueueFrames: 1024,
		QueueBytes:  4 << 20,
		// One write carries up to 64 KiB of queued messages.
		MaxWriteBytes: 64 << 10,
		// Writers never wait for a socket, so each holds a processor for
		// as long as a fan-out lasts: one per core but one keeps them
		// busy and leaves a processor to the node's reads, actors and
		// persistence, so the next message is persisted meanwhile.
		Writers: max(1, runtime.GOMAXPROCS(0)-1),
		// A channel with more than 200 events/s (a live room's chat)
		// costs one write per watcher per 5 ms; quieter ones wait for
		// nothing.
		CoalesceWindow: 5 * time.Millisecond,
		// A client that takes 10 s to read 64 KiB is gone.
		WriteTimeout: 10 * time.Second,
		// Under the 30 s idle timeouts common in proxies and mobile NATs.
		PingInterval: 25 * time.Second,
		PingTimeout:  10 * time.Second,
		// A client opens with connect; 10 s covers a slow network.
		AuthTimeout: 10 * time.Second,
		// An idle session costs one goroutine and at most 16 KB: 100,000
		// of them about 1.6 GB.
		MaxSessions: 100000,
		// Sockets that have not sent connect yet: enough for a reconnect
		// storm's burst, too few for idle sockets to exhaust memory; per
		// client address, a few browsers' tabs behind one NAT.
		MaxUnauthenticated:      1024,
		MaxUnauthenticatedPerIP: 64,
		// Far above what a person's client asks (a send, a read mark,
		// typing, a page of history), and a client's start-up (joining
		// and watching its channels) fits in the burst; a script that
		// floods is held to it.
		SessionRate:  50,
		SessionBurst: 200,
		// As cluster's RequestTimeout: longer waits are cut to it there.
		RequestTimeout: 10 * time.Second,
		// A gateway that stops renewing is taken as gone after 30 s.
		PresenceInterval: 10 * time.Second,
		Files:            defaultFilesConfig(),
		// HTTP API requests served at once: a backend's burst of
		// server-side sends, not an unbounded crowd of them.
		APIInflight: 1024,
	}
}

func (c *Config) withDefaults() {
	d := DefaultConfig()
	if c.Limits == (protocol.Limits{}) {
		c.Limits = d.Limits
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.QueueFrames, d.QueueFrames)
	def(&c.QueueBytes, d.QueueBytes)
	def(&c.MaxWriteBytes, d.MaxWriteBytes)
	def(&c.Writers, d.Writers)
	if c.CoalesceWindow == 0 {
		c.CoalesceWindow = d.CoalesceWindow
	}
	def(&c.MaxSessions, d.MaxSessions)
	def(&c.APIInflight, d.APIInflight)
	def(&c.MaxUnauthenticated, d.MaxUnauthenticated)
	def(&c.SessionBurst, d.SessionBurst)
	defd(&c.WriteTimeout, d.WriteTimeout)
	defd(&c.PingInterval, d.PingInterval)
	defd(&c.PingTimeout, d.PingTimeout)
	defd(&c.AuthTimeout, d.AuthTimeout)
	defd(&c.RequestTimeout, d.RequestTimeout)
	defd(&c.PresenceInterval, d.PresenceInterval)
	c.Files.withDefaults(c.Limits)
	if c.Peers == nil {
		c.Peers = peerhttp.New(nil, nil)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = &Metrics{}
	}
}

// Gateway serves /v1/ws.
type Gateway struct {
	cfg  Config
	cl   *cluster.Cluster
	auth *auth.Verifier
	log  *slog.Logger
	hub  *hub // owned by the cluster inbox goroutine

	ctx    context.Context // parent of every session's context
	cancel context.CancelFunc

	mu       sync.Mutex // guards the fields below
	sessions map[*session]struct{}
	draining bool
	// unauthed counts the connections admitted that have not
	// authenticated (in the handshake, or sessions with unauthed set),
	// also by client address; authed counts the other sessions.
	unauthed     int
	unauthedByIP map[string]int
	authed       int

	open atomic.Int64
	wg   sync.WaitGroup // session goroutines

	writers   *writerPool
	handlers  *handlers
	closeOnce sync.Once

	presence *presence
	files    *files
	origins  originPolicy

	apiSlots chan struct{} // one per HTTP API request being served
	apiRates *userRates    // the HTTP API's requests per user (apirate.go)
	openapi  []byte        // GET /v1/openapi.json
	// limitsJSON is cfg.Limits encoded, as every connect result carries
	// them.
	limitsJSON []byte
}

// New makes a gateway and installs it as the node's event handler.
func New(cfg Config, cl *cluster.Cluster, v *auth.Verifier) *Gateway {
	cfg.withDefaults()
	g := &Gateway{cfg: cfg, cl: cl, auth: v, log: cfg.Logger.With("component", "gateway"), sessions: make(map[*session]struct{}),
		unauthedByIP: make(map[string]int)}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.hub = newHub(g)
	g.writers = newWriterPool(g, cfg.Writers)
	g.handlers = newHandlers()
	g.presence = newPresence(g)
	g.files = newFiles(g)
	g.origins = newOriginPolicy(cfg.AllowedOrigins, cfg.DevAuth)
	g.apiSlots = make(chan struct{}, cfg.APIInflight)
	g.apiRates = newUserRates(cfg.SessionRate, cfg.SessionBurst)
	g.openapi = openapi.Document()
	g.limitsJSON, _ = json.Marshal(cfg.Limits)
	cl.SetHandler(eventRouter{g.hub, g.presence})
	changed := func() {
		if g.hub.viewPending.CompareAndSwap(false, true) {
			cl.Do(g.hub.viewChanged)
		}
	}
	cl.OnChange(func(old, cur cluster.Member) { changed() })
	cl.OnShardChange(changed)
	return g
}

// Sessions returns how many sessions are open (authenticated or not).
func (g *Gateway) Sessions() int64 { return g.open.Load() }

// Unauthenticated returns how many open connections have not
// authenticated yet.
func (g *Gateway) Unauthenticated() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.unauthed
}

// admit decides whether a new connection from ip may wait to
// authenticate: the refusal's text and metric label, or "" when it may,
// and then it counts among the unauthenticated connections (release
// uncounts one that does not become a session).
func (g *Gateway) admit(ip string) (refuse, label string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	defer func() {
		if refuse == "" {
			g.unauthed++
			g.unauthedByIP[ip]++
		}
	}()
	switch {
	case g.draining:
		return "server draining: reconnect elsewhere", "refused"
	case g.authedLocked() >= g.cfg.MaxSessions:
		return "server at its session limit", "refused"
	case g.unauthed >= g.cfg.MaxUnauthenticated:
		return "server at its limit of connections waiting to authenticate", "refused_unauthenticated"
	case g.cfg.MaxUnauthenticatedPerIP > 0 && g.unauthedByIP[ip] >= g.cfg.MaxUnauthenticatedPerIP:
		return "too many connections from your address waiting to authenticate", "refused_unauthenticated"
	}
	return "", ""
}

// authenticated moves s from the unauthenticated connections to the
// sessions, unless the sessions are at their limit.
func (g *Gateway) authenticated(s *session) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !s.unauthed {
		return true
	}
	if g.authedLocked() >= g.cfg.MaxSessions {
		return false
	}
	g.dropUnauthed(s)
	g.authed++
	return true
}

// authedLocked counts the authenticated sessions. g.mu is held.
func (g *Gateway) authedLocked() int { return g.authed }

// dropUnauthed uncounts s as unauthenticated. g.mu is held.
func (g *Gateway) dropUnauthed(s *session) {
	if s.unauthed {
		s.unauthed = false
		g.releaseLocked(s.ip)
	}
}

// release uncounts an admitted connection from ip that did not become a
// session.
func (g *Gateway) release(ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.releaseLocked(ip)
}

func (g *Gateway) releaseLocked(ip string) {
	g.unauthed--
	if g.unauthedByIP[ip]--; g.unauthedByIP[ip] <= 0 {
		delete(g.unauthedByIP, ip)
	}
}

// ServeHTTP upgrades a request to a session and serves it until it ends.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ok, why := g.origins.allow(r); !ok {
		g.cfg.Metrics.connect("origin_refused")
		http.Error(w, why, http.StatusForbidden)
		return
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	if refuse, label := g.admit(ip); refuse != "" {
		g.cfg.Metrics.connect(label)
		http.Error(w, refuse, http.StatusServiceUnavailable)
		return
	}
	chosen, first, why := g.negotiate(r)
	if why != "" {
		g.release(ip)
		g.cfg.Metrics.connect("handshake_failed")
		http.Error(w, why, http.StatusBadRequest)
		return
	}
	conn, br, head, err := acceptWS(w, r, chosen, first != nil)
	if err != nil {
		g.release(ip)
		g.cfg.Metrics.connect("handshake_failed")
		return
	}
	s := newSession(g)
	s.br = br
	s.wire.init(conn)
	s.wire.head = head
	s.ip = ip
	g.mu.Lock()
	if g.draining {
		g.releaseLocked(ip)
		g.mu.Unlock()
		_ = s.wire.writeAll([][]byte{closeMessage(reasonDrain)}, time.Second)
		s.kill()
		return
	}
	g.sessions[s] = struct{}{}
	s.unauthed = true // counted by admit
	g.wg.Add(1)
	g.mu.Unlock()
	// Before any of its requests: their replies come through the inbox
	// after this.
	g.cl.Do(func() { g.hub.opened(s) })
	g.open.Add(1)
	g.cfg.Metrics.connect("ok")
	if m := g.cfg.Metrics; first != nil && m.ConnectInUpgrade != nil {
		m.ConnectInUpgrade()
	}
	// The session runs on its own goroutine, owned by the gateway (joined
	// by Close), and the handler returns: a hijacked connection outlives
	// its handler, and returning lets net/http drop the request, the
	// response and the handler goroutine's deep stack — about a third of
	// what an idle session used to cost.
	go func() {
		defer g.wg.Done()
		defer func() { // even if the session panicked
			g.mu.Lock()
			if s.unauthed {
				g.dropUnauthed(s)
			} else {
				g.authed--
			}
			delete(g.sessions, s)
			g.mu.Unlock()
			g.open.Add(-1)
			g.presence.closed(s)
			g.cl.Do(func() { g.hub.closed(s) })
		}()
		s.run(first)
	}()
}

// negotiate reads the subprotocols an upgrade request offers, once: it
// returns the one to choose ("" when none is ours), the connect frame
// offered in a switchboard.connect. subprotocol (nil: none), which the
// session handles as the first the client sent, and why the request is
// refused, if it is. A connect taken is told by choosing
// switchboard.v1.json.connected.
func (g *Gateway) negotiate(r *http.Request) (chosen string, first []byte, why string) {
	var enc string
	n, connected := 0, false
	for p := range subprotocols(r) {
		switch {
		case strings.HasPrefix(p, protocol.ConnectSubprotocolPrefix):
			enc = p[len(protocol.ConnectSubprotocolPrefix):]
			n++
		case strings.EqualFold(p, protocol.ConnectedSubprotocol):
			connected = true
		case strings.EqualFold(p, Subprotocol):
			chosen = Subprotocol
		}
	}
	const what = "the " + protocol.ConnectSubprotocolPrefix + " subprotocol"
	switch {
	case n == 0:
		return chosen, nil, ""
	case n > 1:
		return "", nil, "more than one " + protocol.ConnectSubprotocolPrefix + " subprotocol"
	case !connected:
		return "", nil, what + " needs " + protocol.ConnectedSubprotocol + " offered with it"
	case base64.RawURLEncoding.DecodedLen(len(enc)) > g.cfg.Limits.MaxFrameBytes:
		return "", nil, what + " holds more than max_frame_bytes"
	}
	first, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(first) == 0 {
		return "", nil, what + " must hold a frame in base64url without padding"
	}
	return protocol.ConnectedSubprotocol, first, ""
}

// Drain stops accepting sessions and closes every open one with reason
// (clients reconnect elsewhere and resume), waiting until they are gone or
// ctx ends.
func (g *Gateway) Drain(ctx context.Context) error {
	return g.closeAll(ctx, reasonDrain)
}

// Close closes every session (going away) and waits for their goroutines.
// It is safe to call more than once.
func (g *Gateway) Close(ctx context.Context) error {
	err := g.closeAll(ctx, reasonShutdown)
	g.cancel()
	g.closeOnce.Do(func() {
		g.writers.stop()
		g.handlers.close()
	})
	g.presence.close()
	g.cfg.Peers.CloseIdle()
	return err
}

func (g *Gateway) closeAll(ctx context.Context, r closeReason) error {
	g.mu.Lock()
	g.draining = true
	for s := range g.sessions {
		s.end(r)
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		for s := range g.sessions {
			s.kill()
		}
		g.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Metrics are optional hooks the node wires to Prometheus.
type Metrics struct {
	Connect func(result string)
	// ConnectInUpgrade counts sessions whose connect was offered in the
	// upgrade and taken (with Connect("ok")).
	ConnectInUpgrade func()
	Disconnect       func(reason string)
	FramesIn         func(n int)
	FramesOut        func(frames, bytes int)
	BytesIn          func(n int)
	Request          func(op, code string, d time.Duration)
	Deliveries       func(n int)
	// ChannelEvents counts channel events arriving for fan-out: one per
	// event per gateway, however many local sessions watch.
	ChannelEvents func(n int)
	QueueDrop     func(reason string)
}

func (m *Metrics) connect(r string) {
	if m.Connect != nil {
		m.Connect(r)
	}
}
