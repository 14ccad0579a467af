// Package peerhttp sends HTTP requests on to other nodes of the cluster:
// a file download to the node that holds the file, an operator request
// (drain, metrics) to the node it names. The scheme and address come from
// what the peer gossips about itself (cluster.Meta): https:// when its
// --listen serves TLS, verified under security.PeerTLS's trust rule, and
// its --admin-listen address for operator requests when it has one.
package peerhttp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/security"
)

// ForwardedHeader marks a request one node forwarded to another: the
// node it lands on answers it or refuses it, and never forwards it again,
// so two nodes that disagree about the membership cannot bounce a request
// between them.
const ForwardedHeader = "X-Switchboard-Proxied"

// Forwarded reports whether r came from another node.
func Forwarded(r *http.Request) bool { return r.Header.Get(ForwardedHeader) != "" }

// Target is which of a member's listeners a request is for.
type Target int

const (
	// Public is the member's --listen: WebSocket, HTTP API, files.
	Public Target = iota
	// Operator is where the member serves its operator endpoints: its
	// --admin-listen address when it has one, else --listen.
	Operator
)

// ErrUnreachable says the member is not alive, or has not gossiped the
// address a request needs.
var ErrUnreachable = errors.New("it cannot be reached")

// URL returns the URL of pathQuery (a path with its query, escaped) at
// member m's target.
func URL(m cluster.Member, t Target, pathQuery string) (string, error) {
	switch {
	case m.State != cluster.StateAlive:
		return "", fmt.Errorf("%s is %s: %w", m.Name, m.State, ErrUnreachable)
	case t == Operator && m.Meta.Admin != "" && m.Meta.HTTPTLS:
		return "https://" + m.Meta.Admin + pathQuery, nil // --admin-listen serves TLS as --listen does
	case t == Operator && m.Meta.Admin != "":
		return "http://" + m.Meta.Admin + pathQuery, nil
	case m.Meta.HTTP == "":
		return "", fmt.Errorf("%s has not told its address: %w", m.Name, ErrUnreachable)
	case m.Meta.HTTPTLS:
		return "https://" + m.Meta.HTTP + pathQuery, nil
	default:
		return "http://" + m.Meta.HTTP + pathQuery, nil
	}
}

// ResponseHeaderTimeout bounds the wait for a peer's response headers:
// a node that does not begin to answer in 10 s is down. Bodies (a large
// download) are bounded by the request's context instead.
const ResponseHeaderTimeout = 10 * time.Second

// Client forwards requests to other nodes. It keeps a few connections to
// each open for reuse. It is safe for concurrent use.
type Client struct {
	hc *http.Client
	tr *http.Transport
}

// New returns a client trusting peers as trust says (nil: the system's
// roots only, and no client certificate) that connects with dial (nil:
// directly; a cluster.Partition's under fault injection).
func New(trust *security.PeerTLS, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Client {
	if trust == nil {
		trust = security.NewPeerTLS(nil, nil, nil, nil)
	}
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	tr := &http.Transport{
		DialContext: dial,
		// The trust is built per connection (certificate files reload),
		// for the host the peer gossips.
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(conn, trust.ClientConfig(host))
			if err := tc.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, err
			}
			return tc, nil
		},
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
	}
	return &Client{tr: tr, hc: &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// NewRequest returns a request for pathQuery at member m's target, marked
// as forwarded. It fails with ErrUnreachable when m cannot be asked.
func (c *Client) NewRequest(ctx context.Context, m cluster.Member, t Target, method, pathQuery string) (*http.Request, error) {
	u, err := URL(m, t, pathQuery)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(ForwardedHeader, "1")
	return req, nil
}

// Do sends a request made by NewRequest.
func (c *Client) Do(req *http.Request) (*http.Response, error) { return c.hc.Do(req) }

// CloseIdle closes the connections kept for reuse.
func (c *Client) CloseIdle() { c.tr.CloseIdleConnections() }
