package client

import (
	"net/http"
	"sync"
)

var (
	dialClients sync.Map // *http.Client → its twin that upgrades on its own connections
	defaultDial = sync.OnceValue(func() *http.Client {
		return &http.Client{Transport: &upgrader{t: http.DefaultTransport.(*http.Transport)}}
	})
)

// dialClient returns the HTTP client to dial with: hc's twin, which
// upgrades on connections of its own (upgrade.go), when hc's transport
// can be wrapped, else hc itself (the upgraded connection is then the
// 101 response's body, read with Read).
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
	twin.Transport = &upgrader{t: t}
	c, _ := dialClients.LoadOrStore(hc, &twin)
	return c.(*http.Client)
}
