package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Operator endpoints that act on one node of the cluster, whichever node
// is asked: the node named by ?node= answers itself, and another node
// forwards the request to it over HTTP with the caller's credentials (as
// file downloads are forwarded), so that node checks the key itself.
//
//	POST /v1/cluster/drain?node=NAME    drain NAME, then it exits (as on SIGTERM)
//	GET  /v1/cluster/metrics?node=NAME  NAME's /metrics (the console's charts)

// forwardClient sends operator requests on to other nodes: they are rare
// (a drain, the console's metrics every few seconds), so no connection is
// kept open between them.
var forwardClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// drainHandler serves POST /v1/cluster/drain?node=NAME (NAME defaults to
// this node): it answers 202 at once, and the node drains — closing its
// sessions with 4001, handing its channels and users to the other hosts,
// leaving the cluster — for up to --drain-timeout, then exits. Asking
// again while it drains answers 202 too.
func (n *Node) drainHandler(w http.ResponseWriter, r *http.Request) {
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
		operatorError(w, http.StatusNotFound, protocol.CodeNotFound, fmt.Sprintf("no member named %q", name))
		return
	case m.State != cluster.StateAlive || m.Meta.HTTP == "":
		operatorError(w, http.StatusServiceUnavailable, protocol.CodeUnavailable, fmt.Sprintf("%s is %s: it cannot be reached", name, m.State))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	u := "http://" + m.Meta.HTTP + r.URL.Path + "?node=" + url.QueryEscape(name)
	req, err := http.NewRequestWithContext(ctx, r.Method, u, nil)
	if err != nil {
		operatorError(w, http.StatusInternalServerError, protocol.CodeInternal, err.Error())
		return
	}
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := forwardClient.Do(req)
	if err != nil {
		operatorError(w, http.StatusServiceUnavailable, protocol.CodeUnavailable, fmt.Sprintf("%s did not answer: %v", name, err))
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
