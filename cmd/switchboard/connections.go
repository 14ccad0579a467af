package main

import (
	"net/http"
	"syscall"
	"time"

	"github.com/switchboard-chat/switchboard/gateway"
)

// headerTimeout bounds the reading of a request's head on the node's
// listeners (slow clients holding connections open are cut).
const headerTimeout = 10 * time.Second

// defaultHTTPIdleTimeout closes HTTP keep-alive connections idle between
// requests: longer than common clients' own pool timeouts (Go's 90 s), so
// a client rarely sends a request on a connection the node is closing.
const defaultHTTPIdleTimeout = 2 * time.Minute

// filesKept are the descriptors the default connection budget leaves to
// everything but --listen's connections: Pebble's table cache alone holds
// up to 1,000 open files, then its WAL and manifest, the cluster's
// connections to every peer, webhooks, uploads, the admin listener.
const filesKept = 2048

// connectionBudget is the default --max-connections for an open-files
// limit of nofile: what is left after filesKept, and at most half of a
// limit too small to keep that many.
func connectionBudget(nofile uint64) int {
	if nofile >= 2*filesKept {
		return int(min(nofile-filesKept, 1<<30))
	}
	return int(max(nofile/2, 1))
}

// limitConnections wraps Listen's listener in its connection limit
// (--max-connections, or the budget of the process's open-files limit,
// which Go has already raised to its hard limit).
func (n *Node) limitConnections() *gateway.ConnLimit {
	limit := n.cfg.MaxConnections
	if limit <= 0 {
		var l syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			n.log.Warn("cannot read the open-files limit: --listen's connections are bounded at 16384 instead", "err", err)
			l.Cur = 16384 + filesKept
		}
		limit = connectionBudget(l.Cur)
		n.log.Info("connections on --listen: at most the open-files limit less what storage and the cluster keep", "max", limit, "open_files_limit", l.Cur)
		if ses := n.cfg.Gateway.MaxSessions; ses > limit {
			n.log.Info("the open-files limit allows fewer connections than --max-sessions: raise it (LimitNOFILE=, ulimit -n) for that many sessions",
				"max_connections", limit, "max_sessions", ses)
		}
	}
	plaintext := n.sec.client == nil
	return gateway.LimitConnections(n.ln, limit, plaintext, n.log)
}

// httpServer is an HTTP server of the node's, with its timeouts.
func (n *Node) httpServer(h http.Handler) *http.Server {
	idle := n.cfg.HTTPIdleTimeout
	if idle <= 0 {
		idle = defaultHTTPIdleTimeout
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: headerTimeout, IdleTimeout: idle}
}
