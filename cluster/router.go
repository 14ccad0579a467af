package cluster

import (
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Well-known actor names, the same on every node.
const (
	HostName  = "host"  // activates and routes to virtual actors (host nodes)
	inboxName = "inbox" // receives replies, events and watch changes (every node)
)

// router sends requests and matches their replies. Futures of the actor
// library do not fail when the remote node dies, so the router tracks every
// outstanding request by target node and fails them with unavailable the
// moment the node is known to be gone, or at their deadline.
type router struct {
	c *Cluster

	mu      sync.Mutex // guards the fields below
	next    uint64
	pending map[uint64]*call
	byNode  map[string]map[uint64]struct{}
	// wheel finds expired calls without scanning them all: slot i holds
	// the calls whose deadline falls in tick i (mod wheelSlots). A call
	// whose deadline is more than a turn away is met again next turn.
	wheel [wheelSlots]map[uint64]struct{}
	swept int64 // the last tick swept
}

const (
	wheelTick  = 50 * time.Millisecond
	wheelSlots = 256 // a turn of 12.8 s covers the usual timeouts
)

func tickOf(t time.Time) int64 { return t.UnixNano() / int64(wheelTick) }

type call struct {
	node     string
	deadline time.Time
	slot     int
	done     func(*clusterpb.Reply)
}

func newRouter(c *Cluster) *router {
	r := &router{c: c, pending: make(map[uint64]*call), byNode: make(map[string]map[uint64]struct{}), swept: tickOf(time.Now())}
	for i := range r.wheel {
		r.wheel[i] = make(map[uint64]struct{})
	}
	return r
}

func unavailable(id uint64, format string, args ...any) *clusterpb.Reply {
	e := protocol.Errorf(protocol.CodeUnavailable, format, args...)
	return &clusterpb.Reply{Id: id, Error: &clusterpb.Error{Code: string(e.Code), Message: e.Message}}
}

// Request sends req to the leader of its target's shard and calls done
// exactly once: with the reply, or with an unavailable error when no
// leader is known (after waiting up to leaderWait for one to be
// announced), the leader is down, its connection drops, or timeout
// passes. A node that answers it does not lead the shard (nothing was
// done) names the leader it knows: the request goes there once more, if
// time remains. done always runs on the node's inbox goroutine (see
// Handler) and must not block.
func (c *Cluster) Request(req *clusterpb.Request, timeout time.Duration, done func(*clusterpb.Reply)) {
	c.request(req, time.Now().Add(timeout), 1, done)
}

// leaderWait bounds how long a request waits for its shard's leader to be
// known (a new leader announces itself at once; a node that just joined
// hears of every leader within a second), polling every leaderPoll.
const (
	leaderWait = time.Second
	leaderPoll = 50 * time.Millisecond
)

func (c *Cluster) request(req *clusterpb.Request, deadline time.Time, retries int, done func(*clusterpb.Reply)) {
	c.requestWaiting(req, deadline, retries, time.Now().Add(leaderWait), done)
}

func (c *Cluster) requestWaiting(req *clusterpb.Request, deadline time.Time, retries int, waitUntil time.Time, done func(*clusterpb.Reply)) {
	owner := c.OwnerOf(req.Kind, req.Target)
	if next := time.Now().Add(leaderPoll); owner == "" && c.shardCount() > 0 && next.Before(deadline) && next.Before(waitUntil) {
		select {
		case <-c.stop:
		default:
			time.AfterFunc(leaderPoll, func() { c.requestWaiting(req, deadline, retries, waitUntil, done) })
			return
		}
	}
	if owner == "" {
		rep := unavailable(0, "no leader of %s's shard is known yet (an election may be under way); retry", req.Target)
		rep.Error.RetryAfterMs = leaderRetryMS
		c.fail(done, rep)
		return
	}
	c.RequestNode(owner, req, time.Until(deadline), func(rep *clusterpb.Reply) {
		if rep.NotLeader {
			c.heardNotLeader(rep)
			if next := c.OwnerOf(req.Kind, req.Target); retries > 0 && next != "" && next != owner && time.Now().Before(deadline) {
				c.request(req, deadline, retries-1, done)
				return
			}
		}
		done(rep)
	})
}

// leaderRetryMS is the delay callers are told to wait before retrying
// while a shard has no known leader.
const leaderRetryMS = 200

// RequestNode is Request to a chosen node.
func (c *Cluster) RequestNode(node string, req *clusterpb.Request, timeout time.Duration, done func(*clusterpb.Reply)) {
	m, ok := c.View().Member(node)
	if !ok || m.State == StateDead || m.State == StateLeft {
		c.fail(done, unavailable(0, "node %s is down", node))
		return
	}
	if c.linkDown(m.Meta.Remote) {
		rep := unavailable(0, "the connection to node %s is lost; retrying", node)
		rep.Error.RetryAfterMs = linkRetryMS
		c.fail(done, rep)
		return
	}
	if timeout <= 0 || timeout > c.cfg.RequestTimeout {
		timeout = c.cfg.RequestTimeout
	}
	deadline := time.Now().Add(timeout)
	id, ok := c.router.add(node, deadline, done)
	if !ok {
		c.fail(done, unavailable(0, "too many requests in flight on this node"))
		return
	}
	req.Id = id
	req.ReplyTo = c.addr
	req.DeadlineUnixMs = deadline.UnixMilli()
	c.system.Root.Send(actor.NewPID(m.Meta.Remote, HostName), clusterpb.Wrap(&clusterpb.Envelope_Request{Request: req}))
}

// Notify sends req to the leader of its target's shard without waiting
// for a reply (dropped when none is known).
func (c *Cluster) Notify(req *clusterpb.Request) {
	req.Id, req.ReplyTo = 0, ""
	c.SendToOwner(req.Kind, req.Target, clusterpb.Wrap(&clusterpb.Envelope_Request{Request: req}))
}

// SendToOwner sends env to the host actor of the node that leads a
// scope's shard. It is dropped when none is known or that node is down.
func (c *Cluster) SendToOwner(kind clusterpb.Kind, target string, env *clusterpb.Envelope) {
	m, ok := c.View().Member(c.OwnerOf(kind, target))
	if !ok || m.State == StateDead || m.State == StateLeft {
		return
	}
	c.system.Root.Send(actor.NewPID(m.Meta.Remote, HostName), env)
}

// fail completes a call with a failure on the inbox goroutine, like every
// reply, whatever goroutine found the failure.
func (c *Cluster) fail(done func(*clusterpb.Reply), rep *clusterpb.Reply) {
	c.Do(func() { done(rep) })
}

// InboxPID returns the inbox of the node with remote address addr.
func InboxPID(addr string) *actor.PID { return actor.NewPID(addr, inboxName) }

func (r *router) add(node string, deadline time.Time, done func(*clusterpb.Reply)) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) >= r.c.cfg.MaxPending {
		return 0, false
	}
	r.next++
	id := r.next
	slot := int(tickOf(deadline) % wheelSlots)
	r.pending[id] = &call{node: node, deadline: deadline, slot: slot, done: done}
	r.wheel[slot][id] = struct{}{}
	ids := r.byNode[node]
	if ids == nil {
		ids = make(map[uint64]struct{})
		r.byNode[node] = ids
	}
	ids[id] = struct{}{}
	return id, true
}

// take removes and returns a pending call.
func (r *router) take(id uint64) *call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.takeLocked(id)
}

func (r *router) takeLocked(id uint64) *call {
	cl, ok := r.pending[id]
	if !ok {
		return nil
	}
	delete(r.pending, id)
	delete(r.wheel[cl.slot], id)
	if ids := r.byNode[cl.node]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(r.byNode, cl.node)
		}
	}
	return cl
}

// deliver completes the call a reply answers. Late replies (after a
// timeout or node failure already completed the call) are dropped.
func (r *router) deliver(rep *clusterpb.Reply) {
	if cl := r.take(rep.Id); cl != nil {
		cl.done(rep)
	}
}

// failNode fails every call outstanding to node.
func (r *router) failNode(node, why string) {
	r.mu.Lock()
	var failed []*call
	var ids []uint64
	for id := range r.byNode[node] {
		ids = append(ids, id)
	}
	for _, id := range ids {
		failed = append(failed, r.takeLocked(id))
	}
	r.mu.Unlock()
	for i, cl := range failed {
		r.c.fail(cl.done, unavailable(ids[i], "%s", why))
	}
}

func (r *router) failAll(why string) {
	r.mu.Lock()
	var nodes []string
	for n := range r.byNode {
		nodes = append(nodes, n)
	}
	r.mu.Unlock()
	for _, n := range nodes {
		r.failNode(n, why)
	}
}

// expire takes the calls whose deadline is before now.
func (r *router) expire(now time.Time) ([]uint64, []*call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []uint64
	cur := tickOf(now)
	for tick := max(r.swept+1, cur-wheelSlots+1); tick <= cur; tick++ {
		for id := range r.wheel[tick%wheelSlots] {
			if now.After(r.pending[id].deadline) {
				ids = append(ids, id)
			}
		}
	}
	// The current tick's slot is swept again next time: calls in it may
	// not be due yet.
	r.swept = cur - 1
	expired := make([]*call, len(ids))
	for i, id := range ids {
		expired[i] = r.takeLocked(id)
	}
	return ids, expired
}

// sweepLoop fails calls past their deadline.
func (r *router) sweepLoop(stop <-chan struct{}) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			ids, expired := r.expire(now)
			if len(expired) == 0 {
				continue
			}
			byNode := map[string]int{}
			for i, cl := range expired {
				byNode[cl.node]++
				r.c.fail(cl.done, unavailable(ids[i], "request timed out on node %s", cl.node))
			}
			// A timeout is a request or its reply lost (a link that broke
			// without its connection dropping) or a node stuck: each cost
			// its caller the whole timeout.
			for node, n := range byNode {
				r.c.log.Info("requests timed out", "node", node, "requests", n)
			}
			r.c.links.timeouts.Add(uint64(len(expired)))
		}
	}
}
