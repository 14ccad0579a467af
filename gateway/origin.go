package gateway

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Browser origin check. A browser lets any page open a WebSocket to any
// server and says which page in Origin; the server must refuse pages it
// does not serve, or a page elsewhere rides on whatever a browser sends
// along. A request is allowed when it has no Origin (not a browser), when
// Origin is the request's own host (same origin), when it matches one of
// Config.AllowedOrigins, or, under development auth, when Origin is a
// loopback host (a web app's dev server on localhost). Everything else
// gets 403 before the upgrade. The same policy says which pages may call
// the HTTP API (cors.go).

// originPattern is one --allowed-origins entry: [scheme://]host[:port],
// where host may be *.domain (any subdomain) and port * (any port). A
// pattern without a port matches only origins without one (the scheme's
// default port); "*" alone matches every origin.
type originPattern struct {
	any          bool
	scheme, host string
	port         string
}

// ValidOrigin checks an --allowed-origins entry.
func ValidOrigin(p string) error {
	_, err := parseOrigin(p)
	return err
}

func parseOrigin(p string) (originPattern, error) {
	p = strings.ToLower(strings.TrimSpace(p))
	if p == "*" {
		return originPattern{any: true}, nil
	}
	var o originPattern
	if scheme, rest, ok := strings.Cut(p, "://"); ok {
		o.scheme, p = scheme, rest
	}
	if p == "" || strings.ContainsAny(p, "/?#@") {
		return o, fmt.Errorf("origin %q: want [scheme://]host[:port], host may start with *. and port may be *", p)
	}
	o.host = p
	if h, port, err := net.SplitHostPort(p); err == nil {
		o.host, o.port = h, port
	}
	if strings.Contains(strings.TrimPrefix(o.host, "*."), "*") {
		return o, fmt.Errorf("origin %q: * may only start the host (*.example.com)", p)
	}
	if _, err := path.Match(o.host, ""); err != nil {
		return o, fmt.Errorf("origin %q: %w", p, err)
	}
	return o, nil
}

func (o originPattern) match(u *url.URL) bool {
	if o.any {
		return true
	}
	if o.scheme != "" && o.scheme != strings.ToLower(u.Scheme) {
		return false
	}
	if o.port != "*" && o.port != u.Port() {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if sub, ok := strings.CutPrefix(o.host, "*."); ok {
		return strings.HasSuffix(host, "."+sub)
	}
	return host == o.host
}

// originPolicy decides which browser origins may open sessions and call
// the HTTP API (cors.go).
type originPolicy struct {
	patterns []originPattern
	loopback bool // development auth: loopback origins too
}

func newOriginPolicy(allowed []string, devAuth bool) originPolicy {
	p := originPolicy{loopback: devAuth}
	for _, a := range allowed {
		if o, err := parseOrigin(a); err == nil { // the node validated them
			p.patterns = append(p.patterns, o)
		}
	}
	return p
}

// allow reports whether r's Origin may open a session or call the API,
// and if not why.
func (p originPolicy) allow(r *http.Request) (bool, string) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true, ""
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false, fmt.Sprintf("origin %q is not a URL with a host", origin)
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true, ""
	}
	for _, o := range p.patterns {
		if o.match(u) {
			return true, ""
		}
	}
	if p.loopback {
		h := u.Hostname()
		if ip := net.ParseIP(h); strings.EqualFold(h, "localhost") || (ip != nil && ip.IsLoopback()) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("origin %s is not allowed on this server (--allowed-origins)", origin)
}
