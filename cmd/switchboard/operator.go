package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-chat/switchboard/protocol"
)

// The operator endpoints: GET /v1/cluster and /v1/cluster/locate, POST
// /v1/cluster/forget (see clusterapi.go) and /drain (see nodeapi.go), GET /v1/cluster/metrics, GET /metrics,
// with --debug-pprof /debug/pprof/, and with --fault-injection
// /v1/cluster/partition, /lag, /disk-stall and /disk-slow (see
// clusterapi.go). Who may use them:
//
//   - An endpoint that changes anything always needs one of the node's API
//     keys (--api-key). A node without one refuses it with 403 and says to
//     set one.
//   - A read-only one needs a key when the node has one. Without one it is
//     open in development auth mode, and otherwise open only on a separate
//     --admin-listen address (the operator keeps that address private);
//     the public listener refuses it with 403.
//
// With --admin-listen set to an address other than --listen, the operator
// endpoints are served there only, beside /healthz and /readyz.

// opAccess is what an operator endpoint does.
type opAccess int

const (
	opRead   opAccess = iota // reads the node's state
	opChange                 // changes the cluster
)

// operatorRoutes registers the operator endpoints on mux; admin says
// whether mux serves the separate --admin-listen address.
func (n *Node) operatorRoutes(mux *http.ServeMux, admin bool) {
	mux.Handle("GET /v1/cluster", n.guard(opRead, admin, http.HandlerFunc(n.clusterInfo)))
	mux.Handle("GET /v1/cluster/locate", n.guard(opRead, admin, http.HandlerFunc(n.locate)))
	mux.Handle("POST /v1/cluster/forget", n.guard(opChange, admin, http.HandlerFunc(n.forget)))
	mux.Handle("POST /v1/cluster/drain", n.guard(opChange, admin, http.HandlerFunc(n.drainHandler)))
	mux.Handle("GET /v1/cluster/metrics", n.guard(opRead, admin, http.HandlerFunc(n.nodeMetrics)))
	mux.Handle("GET /metrics", n.guard(opRead, admin, promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg})))
	if n.cfg.FaultInjection {
		for path, h := range map[string]http.HandlerFunc{
			"/v1/cluster/partition":  n.partitionHandler,
			"/v1/cluster/lag":        n.lagHandler,
			"/v1/cluster/disk-stall": n.diskStallHandler,
			"/v1/cluster/disk-slow":  n.diskSlowHandler,
		} {
			mux.Handle("GET "+path, n.guard(opRead, admin, h))
			mux.Handle("PUT "+path, n.guard(opChange, admin, h))
			mux.Handle("DELETE "+path, n.guard(opChange, admin, h))
		}
	}
	if n.cfg.Pprof {
		mux.Handle("/debug/pprof/", n.guard(opRead, admin, http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", n.guard(opRead, admin, http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", n.guard(opRead, admin, http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", n.guard(opRead, admin, http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", n.guard(opRead, admin, http.HandlerFunc(pprof.Trace)))
	}
}

// guard applies the operator rules above to h.
func (n *Node) guard(access opAccess, admin bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case n.apiKeys.Configured():
			if !n.apiKeys.Request(r) {
				w.Header().Set("WWW-Authenticate", "Bearer")
				operatorError(w, http.StatusUnauthorized, protocol.CodeUnauthenticated, "this endpoint needs Authorization: Bearer <one of the node's --api-key keys>")
				return
			}
		case access == opChange:
			operatorError(w, http.StatusForbidden, protocol.CodeForbidden, "the node has no API key, so endpoints that change the cluster are off: start it with --api-key")
			return
		case !n.cfg.DevAuth && !admin:
			operatorError(w, http.StatusForbidden, protocol.CodeForbidden, "the node has no API key, so operator endpoints are off on the public listener: start it with --api-key, or serve them on a private --admin-listen address")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func operatorError(w http.ResponseWriter, status int, code protocol.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": protocol.Error{Code: code, Message: msg}})
}

// warnOperator says at start-up which operator endpoints a production
// node (an auth key, no API key) has turned off.
func (n *Node) warnOperator() {
	if n.apiKeys.Configured() || n.cfg.DevAuth {
		return
	}
	off := "POST /v1/cluster/forget is off"
	if n.adminLn != nil {
		n.log.Warn(fmt.Sprintf("NO API KEY: %s (start the node with --api-key to use it); GET /v1/cluster, /metrics and /debug/pprof are served without a key on --admin-listen %s only", off, n.adminLn.Addr()))
		return
	}
	n.log.Warn(fmt.Sprintf("NO API KEY: %s, and GET /v1/cluster, /metrics and /debug/pprof answer 403 on --listen; set --api-key, or --admin-listen to serve the read-only ones on a private address", off))
}
