package cluster

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// Links track the node-to-node connections that broke.
//
// When the transport's connection to a node drops (the node died, or the
// network between the two broke), the calls outstanding to it fail at
// once. But failure detection takes seconds (lan: about 5 s) to declare
// the node dead, and until then the transport would take every new
// message to the node as a reason to reconnect: each attempt to a dead
// address fails only after the transport's own two-second pause, so each
// request would wait that long before failing. Instead, a node whose
// connection broke is marked down by its remote address, and requests to
// it fail with unavailable at once. At most one probe per probeEvery goes
// to it meanwhile (an empty envelope to its inbox), so the transport
// reconnects as soon as the node answers again; the mark goes with the
// connection's return.
type links struct {
	// lost counts the messages to other nodes the transport dropped, by
	// kind (lostKinds); timeouts the requests that got no answer in time.
	lost     [len(lostKinds)]atomic.Uint64
	timeouts atomic.Uint64

	mu   sync.Mutex // guards down, resent and notices
	down map[string]*linkDown
	// resent holds each reply (or sessions-closed notice) the transport
	// dropped and that waits to be sent again, with when it stops being
	// worth it (resend).
	resent map[*clusterpb.Envelope]time.Time
	// notices holds the re-watch notices waiting to go to a gateway whose
	// events or notice the transport dropped (resendNotice).
	notices map[notice]struct{}
}

type linkDown struct {
	since  time.Time
	probed time.Time
}

// probeEvery spaces the reconnect attempts to a node whose link is down.
const probeEvery = 500 * time.Millisecond

// linkRetryMS is the retry_after_ms of a request refused for a broken link.
const linkRetryMS = 500

// watchEndpoints follows the transport's connection events: a connection
// lost fails every call outstanding to its node and marks the node down;
// a connection made clears the mark.
func (c *Cluster) watchEndpoints() {
	c.links.down = make(map[string]*linkDown)
	c.links.resent = make(map[*clusterpb.Envelope]time.Time)
	c.links.notices = make(map[notice]struct{})
	c.system.EventStream.Subscribe(func(evt any) {
		switch e := evt.(type) {
		case *actor.DeadLetterEvent:
			c.lost(e)
		case *remote.EndpointTerminatedEvent:
			c.links.mu.Lock()
			if c.links.down[e.Address] == nil {
				c.links.down[e.Address] = &linkDown{since: time.Now(), probed: time.Now()}
			}
			c.links.mu.Unlock()
			if m, ok := c.View().ByRemote(e.Address); ok {
				c.router.failNode(m.Name, "connection to node "+m.Name+" lost")
			}
		case *remote.EndpointConnectedEvent:
			c.links.mu.Lock()
			delete(c.links.down, e.Address)
			c.links.mu.Unlock()
		}
	})
}

// linkDown reports whether the connection to the node at remote address
// addr is known broken, probing it when a probe is due.
func (c *Cluster) linkDown(addr string) bool {
	c.links.mu.Lock()
	d := c.links.down[addr]
	probe := d != nil && time.Since(d.probed) >= probeEvery
	if probe {
		d.probed = time.Now()
	}
	c.links.mu.Unlock()
	if probe {
		c.system.Root.Send(actor.NewPID(addr, inboxName), &clusterpb.Envelope{})
	}
	return d != nil
}

// SendWhenLinked sends env to the inbox of the node at remote address
// addr once the link to it is not known broken, probing it meanwhile, so
// that the message does not die with a connection that broke (a send
// into it is lost). It gives up after within, or when the cluster stops.
func (c *Cluster) SendWhenLinked(addr string, env *clusterpb.Envelope, within time.Duration) {
	c.sendWhenLinked(InboxPID(addr), env, within, 0, nil)
}

// sendWhenLinked is SendWhenLinked to any actor of another node, waiting
// at least first, and calling done (if set) once it has sent or given up.
func (c *Cluster) sendWhenLinked(to *actor.PID, env *clusterpb.Envelope, within, first time.Duration, done func()) {
	go func() {
		if done != nil {
			defer done()
		}
		deadline := time.NewTimer(within)
		defer deadline.Stop()
		// sleep waits for ch: false if the deadline or the cluster's stop
		// came first.
		sleep := func(ch <-chan time.Time) bool {
			select {
			case <-ch:
				return true
			case <-deadline.C:
			case <-c.stop:
			}
			return false
		}
		if first > 0 && !sleep(time.After(first)) {
			return
		}
		tick := time.NewTicker(probeEvery / 5)
		defer tick.Stop()
		for c.linkDown(to.Address) {
			if !sleep(tick.C) {
				return
			}
		}
		c.system.Root.Send(to, env)
	}()
}
