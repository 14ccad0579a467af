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

// rawSlot receives the connection a dial made.
type rawSlot struct{ conn net.Conn }

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
			slot.conn = conn
		}
		return conn, err
	}
	return t
}

var (
	dialClients sync.Map // *http.Client (nil: the default) → its capturing *http.Client
	defaultDial = sync.OnceValue(func() *http.Client {
		return &http.Client{Transport: capturing(http.DefaultTransport.(*http.Transport))}
	})
)

// dialClient returns the HTTP client to dial with: hc's capturing twin
// when hc's transport can be wrapped, else hc itself (its connections'
// reads then keep a context).
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
	twin.Transport = capturing(t)
	c, _ := dialClients.LoadOrStore(hc, &twin)
	return c.(*http.Client)
}
