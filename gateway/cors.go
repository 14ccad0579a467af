package gateway

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// CORS for the HTTP API. A browser page of another origin may read an API
// reply only when the reply names its origin (Access-Control-Allow-Origin),
// and may send the API's headers (Authorization, Content-Type...) or its
// methods other than GET and POST only after a preflight OPTIONS the
// server approves. Which origins may is the policy that guards WebSocket
// sessions (origin.go): one list, --allowed-origins.
//
// An allowed page gets its exact origin back, never "*", with Vary:
// Origin. The API's credentials are headers a page sets itself, never
// cookies, so no reply says Access-Control-Allow-Credentials: a page
// cannot make a browser send a credential the page does not hold.
// A disallowed origin gets no CORS header at all: its page cannot read
// the reply, and its preflights are refused (403), so it sends nothing
// but the simple requests any page may send, which carry no credential.
// Only the API's own routes take part: the WebSocket upgrade checks
// Origin itself, and the operator endpoints (/v1/cluster*, /metrics) are
// for the same-origin console and for scrapers, not for other pages.

// corsMethods are the methods a route may take (and a preflight may ask
// for), in the order Allow lists them.
var corsMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// corsMaxAge is how long a browser may cache an approved preflight:
// browsers cap it (Chromium at two hours), so more buys nothing.
const corsMaxAge = 2 * time.Hour

var (
	// corsAllowHeaders are the request headers a page may send: the
	// API's own, and Range for downloads.
	corsAllowHeaders = strings.Join([]string{"Authorization", "Content-Type", protocol.HeaderIdempotencyKey, protocol.HeaderUser, "Range"}, ", ")
	// corsExposeHeaders are the reply headers, beyond the few every page
	// may read, that a page needs: when to retry a 429 or 503, where an
	// upload went, and a download's.
	corsExposeHeaders = strings.Join([]string{"Retry-After", "Location", "Content-Disposition", "Content-Range", "Accept-Ranges", "ETag"}, ", ")
)

// route is one method of a path and the pattern that serves it.
type route struct{ method, pattern string }

// routesOf returns how mux routes r's path, for each of corsMethods.
func routesOf(mux *http.ServeMux, r *http.Request) []route {
	var out []route
	for _, m := range corsMethods {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := mux.Handler(r2); pattern != "" && pattern != "/v1/" {
			out = append(out, route{m, pattern})
		}
	}
	return out
}

// apiRoutes is the set of patterns RegisterAPI serves: CORS applies to
// them, and to no other route of the mux.
type apiRoutes map[string]bool

// methods returns the methods of rs that are API routes; ok is false
// when rs has routes and none of them is one (another part of the node
// serves that path).
func (a apiRoutes) methods(rs []route) (methods []string, ok bool) {
	for _, r := range rs {
		if a[r.pattern] {
			methods = append(methods, r.method)
		}
	}
	return methods, len(methods) > 0 || len(rs) == 0
}

// withCORS wraps an API handler: its replies to an allowed page carry
// the CORS headers.
func (g *Gateway) withCORS(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g.corsHeaders(w.Header(), r)
		h(w, r)
	}
}

// corsHeaders sets the headers of an actual (not preflight) reply: Vary:
// Origin always (a cache must not hand one page's reply to another), and
// for an allowed cross-origin page its origin and the headers it may
// read. It reports whether the page is allowed.
func (g *Gateway) corsHeaders(h http.Header, r *http.Request) bool {
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	if ok, _ := g.origins.allow(r); !ok {
		return false
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	return true
}

// serveOptions answers OPTIONS on an API path: a CORS preflight when the
// request is one (Origin and Access-Control-Request-Method), else the
// methods the path takes. methods are the path's API methods.
func (g *Gateway) serveOptions(w http.ResponseWriter, r *http.Request, methods []string) {
	h := w.Header()
	h.Set("Allow", strings.Join(append(slices.Clone(methods), http.MethodOptions), ", "))
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	want := r.Header.Get("Access-Control-Request-Method")
	if r.Header.Get("Origin") == "" || want == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if ok, why := g.origins.allow(r); !ok {
		writeHTTPError(w, http.StatusForbidden, protocol.Errorf(protocol.CodeForbidden, "%s", why))
		return
	}
	if !slices.Contains(methods, want) {
		writeHTTPError(w, http.StatusMethodNotAllowed, protocol.Errorf(protocol.CodeBadRequest, "%s is not allowed here: use %s", want, strings.Join(methods, ", ")))
		return
	}
	h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", strconv.Itoa(int(corsMaxAge/time.Second)))
	w.WriteHeader(http.StatusNoContent)
}
