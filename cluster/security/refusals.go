package security

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
)

// maxRefusalsRemembered bounds the (host, reason) pairs remembered: past
// it the record starts over, so a stranger may be logged again.
const maxRefusalsRemembered = 1024

// Refusals records peers refused at a port and logs each host once per
// reason: a stranger retrying every second leaves one line, not a flood.
type Refusals struct {
	log *slog.Logger
	msg string

	count atomic.Uint64
	mu    sync.Mutex // guards seen
	seen  map[[2]string]struct{}
}

// NewRefusals logs refusals at WARN with msg.
func NewRefusals(log *slog.Logger, msg string) *Refusals {
	return &Refusals{log: log, msg: msg, seen: make(map[[2]string]struct{})}
}

// Refuse records that addr (host:port, or a host) was refused for reason.
func (r *Refusals) Refuse(addr, reason string) {
	r.count.Add(1)
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	k := [2]string{host, reason}
	r.mu.Lock()
	_, seen := r.seen[k]
	if !seen {
		if len(r.seen) >= maxRefusalsRemembered {
			clear(r.seen)
		}
		r.seen[k] = struct{}{}
	}
	r.mu.Unlock()
	if !seen {
		r.log.Warn(r.msg+" (logged once per host and reason)", "peer", addr, "reason", reason)
	}
}

// Count returns how many refusals were recorded.
func (r *Refusals) Count() uint64 { return r.count.Load() }
