package main

import (
	"io"
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
	return &http.Server{Handler: guardBodies(h, bodyStall, bodyMinRate), ReadHeaderTimeout: headerTimeout, IdleTimeout: idle}
}

// A request body must keep arriving: no pause between two reads longer
// than bodyStall, and after the first bodyStall at least bodyMinRate
// bytes a second on average. Otherwise the read fails and the
// connection is closed — also when the handler answered without reading
// the body (the server reads up to 256 KiB of it before it answers, to
// keep the connection). A client that announces a body and trickles it
// held the connection, and its goroutine, for as long as it liked.
const (
	bodyStall   = 30 * time.Second
	bodyMinRate = 1 << 10
)

// guardBodies bounds the reading of every request body h is given: no
// pause longer than stall, at least minRate bytes a second after the
// first stall.
func guardBodies(h http.Handler, stall time.Duration, minRate int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			b := &guardedBody{ReadCloser: r.Body, rc: http.NewResponseController(w), start: time.Now(), stall: stall, minRate: minRate}
			b.extend()
			// A copy, as http.StripPrefix makes: the server's own request
			// keeps its body, whose type its reading of an unread rest
			// depends on.
			r2 := new(http.Request)
			*r2 = *r
			r2.Body = b
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}

type guardedBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	start   time.Time
	stall   time.Duration
	minRate int64
	read    int64
}

// extend sets the connection's read deadline for the next read.
func (b *guardedBody) extend() {
	now := time.Now()
	d := now.Add(b.stall)
	if paced := b.start.Add(b.stall + time.Duration(b.read/b.minRate)*time.Second); paced.Before(d) {
		d = paced
	}
	_ = b.rc.SetReadDeadline(d)
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if err == nil {
		// At the body's end (io.EOF) the server clears the deadline
		// itself: its reads after the body are its own.
		b.extend()
	}
	return n, err
}
