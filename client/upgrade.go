package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// upgrader is the transport a client dials its WebSocket with when its
// HTTP client's transport is an *http.Transport: it makes the upgrade
// request on a connection of its own (TCP, or TLS for wss:// with the
// transport's TLSClientConfig) and hands the connection back as the 101
// response's body (an *upgradedConn), which dialWS takes over.
//
// http.Transport does the same job at a cost a load generator feels: it
// starts a read and a write goroutine per connection and allocates a
// pooled connection's machinery, about a third of the client's CPU per
// connect in the load test (docs/benchmarks.md Notes). An upgrade needs
// none of it: the connection is never pooled or reused. Requests that
// are not upgrades, and upgrades through a proxy, go to the wrapped
// transport, which knows proxies.
type upgrader struct {
	t *http.Transport // the HTTP client's own
}

// maxUpgradeHeader bounds the upgrade response's header (the transport's
// MaxResponseHeaderBytes when set).
const maxUpgradeHeader = 64 << 10

func (u *upgrader) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") || req.Method != http.MethodGet {
		return u.t.RoundTrip(req)
	}
	if u.t.Proxy != nil {
		proxy, err := u.t.Proxy(req)
		if err != nil {
			return nil, err
		}
		if proxy != nil {
			return u.t.RoundTrip(req)
		}
	}
	ctx := req.Context()
	host := req.URL.Hostname()
	port := req.URL.Port()
	secure := req.URL.Scheme == "https"
	if port == "" {
		port = "80"
		if secure {
			port = "443"
		}
	}
	dial := u.t.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	// The handshake is bounded by ctx: a cancel or a deadline fails the
	// connection's reads and writes.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	resp, err := u.handshake(ctx, conn, req, host, secure)
	if !stop() || err != nil {
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err() // rather than the deadline that stopped the handshake
		}
		return nil, err
	}
	return resp, nil
}

// handshake runs TLS when secure, writes the request and reads the
// response header.
func (u *upgrader) handshake(ctx context.Context, conn net.Conn, req *http.Request, host string, secure bool) (*http.Response, error) {
	if secure {
		cfg := u.t.TLSClientConfig
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg = cfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		cfg.NextProtos = []string{"http/1.1"} // an upgrade is HTTP/1.1 only
		tc := tls.Client(conn, cfg)
		hctx := ctx
		if d := u.t.TLSHandshakeTimeout; d > 0 {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		if err := tc.HandshakeContext(hctx); err != nil {
			return nil, err
		}
		conn = tc
	}
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	limit := int64(maxUpgradeHeader)
	if u.t.MaxResponseHeaderBytes > 0 {
		limit = u.t.MaxResponseHeaderBytes
	}
	lr := &io.LimitedReader{R: conn, N: limit}
	br := bufio.NewReaderSize(lr, 4096)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("client: upgrade response header over %d bytes", limit)
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// A refusal's body is read for its message; closing it ends
		// the connection.
		resp.Body = &refusalBody{ReadCloser: resp.Body, conn: conn}
		return resp, nil
	}
	lr.N = 1<<63 - 1 // the header is read; what follows is the WebSocket's
	resp.Body = &upgradedConn{Conn: conn, br: br}
	return resp, nil
}

// upgradedConn is the upgraded connection: bytes the response's reader
// buffered past the header come first (dialWS takes them and the
// connection apart).
type upgradedConn struct {
	net.Conn
	br *bufio.Reader // nil once drained
}

func (c *upgradedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// refusalBody is a refused upgrade's body; Close closes the connection.
type refusalBody struct {
	io.ReadCloser
	conn net.Conn
}

func (b *refusalBody) Close() error {
	return errors.Join(b.ReadCloser.Close(), b.conn.Close())
}
