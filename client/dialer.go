package client

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// A connection's read loop reads without a context: the WebSocket
// library arms a timer and a cancel hook per read for a read that has one
// (two per message), which for a live room's viewer is most of the cost
// of an event. So Close must be able to close the connection itself even
// while the library's close handshake waits for the read loop: the
// client dials through a transport that hands it the TCP connection it
// made (rawSlot in the dial's context).

type rawSlotKey struct{}

// rawSlot receives the connection a dial made. The transport may dial
// more than once for one request (it retries on a connection that failed
// before any response) and from goroutines of its own, so the slot keeps
// the latest connection and stops listening once the dial has returned.
type rawSlot struct {
	mu    sync.Mutex
	conn  net.Conn
	taken bool
}

func (s *rawSlot) set(conn net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.taken {
		s.conn = conn
	}
}

// take returns the connection and closes the slot to later dials.
func (s *rawSlot) take() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taken = true
	return s.conn
}

// capturing wraps a transport's dialer so that it fills the rawSlot of
// the dial's context.
func capturing(t *http.Transport) *http.Transport {
	t = t.Clone()
	dial := t.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if slot, ok := ctx.Value(rawSlotKey{}).(*rawSlot); ok && err == nil {
			slot.set(conn)
		}
		return conn, err
	}
	return t
}

var (
	dialClients sync.Map // *http.Client (nil: the default) → its capturing *http.Client
	defaultDial = sync.OnceValue(func() *http.Client {
		return &http.Client{Transport: &upgrader{t: capturing(http.DefaultTransport.(*http.Transport))}}
	})
)

// dialClient returns the HTTP client to dial with: hc's capturing twin,
// which upgrades on connections of its own (upgrade.go), when hc's
// transport can be wrapped, else hc itself (its connections' reads then
// keep a context).
func dialClient(hc *http.Client) *http.Client {
	if hc == nil {
		return defaultDial()
	}
	if c, ok := dialClients.Load(hc); ok {
		return c.(*http.Client)
	}
	t, ok := hc.Transport.(*http.Transport)
	if hc.Transport == nil {
		t, ok = http.DefaultTransport.(*http.Transport), true
	}
	if !ok || t.DialTLSContext != nil {
		return hc
	}
	twin := *hc
	twin.Transport = &upgrader{t: capturing(t)}
	c, _ := dialClients.LoadOrStore(hc, &twin)
	return c.(*http.Client)
}
