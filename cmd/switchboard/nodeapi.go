package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/gateway/auth"
)

// Operator endpoints that act on one node of the cluster, whichever node
// is asked: the node named by ?node= answers itself, and another node
// forwards the request to it over HTTP with the caller's credentials (as
// file downloads are forwarded), so that node checks the key itself.
//
//	POST /v1/cluster/drain?node=NAME    drain NAME, then it exits (as on SIGTERM)
//	GET  /v1/cluster/metrics?node=NAME  NAME's /metrics (the console's charts)

// operatorChange checks the operator key of an endpoint that changes
// something: such an endpoint needs a key even where the read-only ones
// do not, so it answers 403 on a node started without --api-key and 401
// on a wrong key.
func (n *Node) operatorChange(w http.ResponseWriter, r *http.Request) bool {
	keys := auth.ParseAPIKeys(n.cfg.APIKey)
	if len(keys) == 0 {
		writeAPIError(w, http.StatusForbidden, "forbidden", "this endpoint changes the cluster and needs an operator key: start the node with --api-key (SWITCHBOARD_API_KEY) and send it as Authorization: Bearer <key>")
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !keys.Match(got) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard operator API"`)
		writeAPIError(w, http.StatusUnauthorized, "unauthenticated", "a valid operator API key is required (Authorization: Bearer <--api-key>)")
		return false
	}
	return true
}

// forwardClient sends operator requests on to other nodes: they are rare
// (a drain, the console's metrics every few seconds), so no connection is
// kept open between them.
var forwardClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func writeAPIError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// drainHandler serves POST /v1/cluster/drain?node=NAME (NAME defaults to
// this node): it answers 202 at once, and the node drains — closing its
// sessions with 4001, handing its channels and users to the other hosts,
// leaving the cluster — for up to --drain-timeout, then exits. Asking
// again while it drains answers 202 too.
func (n *Node) drainHandler(w http.ResponseWriter, r *http.Request) {
	if !n.operatorChange(w, r) {
		return
	}
	name := r.URL.Query().Get("node")
	if name == "" || name == n.cl.Name() {
		n.requestDrain()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"node": n.cl.Name(), "draining": true, "drain_timeout_ms": n.cfg.DrainTimeout.Milliseconds()})
		return
	}
	n.forwardToNode(w, r, name)
}

// requestDrain makes Run drain the node and return (once).
func (n *Node) requestDrain() {
	n.drainOnce.Do(func() {
		n.log.Info("drain requested through the operator API")
		close(n.drainReq)
	})
}

// nodeMetrics serves GET /v1/cluster/metrics?node=NAME: the Prometheus
// metrics of NAME (default this node), for the console.
func (n *Node) nodeMetrics(w http.ResponseWriter, r *http.Request) {
	if !n.operator(w, r) {
		return
	}
	name := r.URL.Query().Get("node")
	if name == "" || name == n.cl.Name() {
		promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}).ServeHTTP(w, r)
		return
	}
	n.forwardToNode(w, r, name)
}

// forwardToNode sends r on to the alive member name, with its method,
// path, query and Authorization, and relays the answer.
func (n *Node) forwardToNode(w http.ResponseWriter, r *http.Request, name string) {
	m, ok := n.cl.View().Member(name)
	switch {
	case !ok:
		writeAPIError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no member named %q", name))
		return
	case m.State != cluster.StateAlive || m.Meta.HTTP == "":
		writeAPIError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("%s is %s: it cannot be reached", name, m.State))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	u := "http://" + m.Meta.HTTP + r.URL.Path + "?node=" + url.QueryEscape(name)
	req, err := http.NewRequestWithContext(ctx, r.Method, u, nil)
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := forwardClient.Do(req)
	if err != nil {
		writeAPIError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("%s did not answer: %v", name, err))
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "WWW-Authenticate"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 16<<20))
}
