package cluster

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
)

// Lost messages. The transport drops what it cannot deliver and publishes
// each as a dead letter: a message sent into a connection that broke, or
// to a node whose connect failed — for two seconds after a failed connect
// it drops every message to that node, even once the network is back.
// Three kinds are not left to a caller's timeout:
//
//   - a request of this node's: its call fails at once (unavailable), and
//     its caller may retry — rather than wait its whole timeout, when the
//     request was sent just as the link broke, before the break was known;
//   - a reply to another node's request: it is sent again once the link
//     to that node works (resend), since the work is done and its
//     caller, whose own link to this node may well work, would otherwise
//     wait its whole timeout for an answer it will not get; so is a
//     gateway's word that sessions closed, or the channel would keep
//     their watchers (and stay active for them);
//   - a channel's events for a gateway, a re-watch notice, or a channel's
//     word that it removed sessions' watches (kicked, banned, left): the
//     gateway is told, once the link works, to watch the channel again
//     (resendNotice); its sessions get what they missed from the replay,
//     and those the channel removed are refused and told so. A gateway
//     notices a gap in a channel's events only with the channel's next
//     event, which in a quiet channel may not come.
//
// Other messages have their own recovery, and a message to a node that
// stopped for good is just lost.
func (c *Cluster) lost(e *actor.DeadLetterEvent) {
	env, ok := e.Message.(*clusterpb.Envelope)
	if !ok || e.PID == nil {
		return
	}
	if e.PID.Address == c.addr {
		c.refuseUnserved(e.PID, env)
		return
	}
	c.links.lost[lostKind(env)].Add(1)
	var call uint64 // the call of this node's a lost request was
	switch {
	case env.GetRequest() != nil && env.GetRequest().ReplyTo == c.addr:
		call = env.GetRequest().Id
	case env.GetSnapshotChunk() != nil && env.GetSnapshotChunk().ReplyTo == c.addr:
		call = env.GetSnapshotChunk().Call
	case env.GetReply() != nil, env.GetSessionsClosed() != nil:
		c.resend(e.PID, env)
		return
	case env.GetEvents() != nil && persisted(env.GetEvents()):
		c.resendNotice(notice{addr: e.PID.Address, channel: env.GetEvents().Channel})
		return
	case env.GetWatchLost() != nil:
		w := env.GetWatchLost()
		c.resendNotice(notice{addr: e.PID.Address, channel: w.Channel, node: w.Node})
		return
	case env.GetUnwatch() != nil:
		// Not the Unwatch itself: sent late, it could end a watch the
		// session took since. A re-watch is always safe, and the channel
		// refuses it for the sessions it had removed.
		c.resendNotice(notice{addr: e.PID.Address, channel: env.GetUnwatch().Channel})
		return
	}
	if call == 0 {
		return
	}
	if cl := c.router.take(call); cl != nil {
		rep := unavailable(call, "the request to node %s was lost with its connection; retrying", cl.node)
		rep.Error.RetryAfterMs = linkRetryMS
		c.fail(cl.done, rep)
	}
}

// lostKinds name the kinds of message counted as lost (LostMessages).
var lostKinds = [...]string{"request", "reply", "events", "other"}

func lostKind(env *clusterpb.Envelope) int {
	switch {
	case env.GetRequest() != nil, env.GetSnapshotChunk() != nil:
		return 0
	case env.GetReply() != nil:
		return 1
	case env.GetEvents() != nil:
		return 2
	}
	return 3
}

// LostMessages says how many messages to other nodes the transport has
// dropped, by kind (request, reply, events, other): each is a connection
// that broke or had not come back yet. Requests among them failed at
// once; replies were sent again once the link worked.
func (c *Cluster) LostMessages() map[string]uint64 {
	out := make(map[string]uint64, len(lostKinds))
	for i, k := range lostKinds {
		out[k] = c.links.lost[i].Load()
	}
	return out
}

// RequestTimeouts says how many requests to other nodes got no answer
// within their timeout.
func (c *Cluster) RequestTimeouts() uint64 { return c.links.timeouts.Load() }

// refuseUnserved answers, unavailable, a call that came to an actor this
// node does not run: a snapshot chunk that came before this node started
// its replicas (a cluster forming), a request to a host that is not up
// yet, or one the host handed to an activation just as it stopped. Its
// caller retries at once rather than at its timeout.
func (c *Cluster) refuseUnserved(pid *actor.PID, env *clusterpb.Envelope) {
	var call uint64
	var replyTo string
	switch {
	case env.GetRequest() != nil:
		call, replyTo = env.GetRequest().Id, env.GetRequest().ReplyTo
	case env.GetSnapshotChunk() != nil:
		call, replyTo = env.GetSnapshotChunk().Call, env.GetSnapshotChunk().ReplyTo
	}
	if call == 0 || replyTo == "" {
		return
	}
	rep := unavailable(call, "node %s does not run %s (not yet, or no more): retry", c.cfg.Name, pid.Id)
	rep.Error.RetryAfterMs = linkRetryMS
	c.system.Root.Send(InboxPID(replyTo), clusterpb.Wrap(&clusterpb.Envelope_Reply{Reply: rep}))
}

// maxResent bounds the dropped messages waiting to be sent again; past it
// a reply is left to its caller's timeout.
const maxResent = 4096

// resend sends env, a reply (or a sessions-closed notice) the transport
// dropped, to its actor again once the link works, for up to RequestTimeout
// after it was first dropped (a reply's caller has given up by then). One
// dropped again waits a probe's tick first, so a link that keeps failing
// is not spun on.
func (c *Cluster) resend(to *actor.PID, env *clusterpb.Envelope) {
	now := time.Now()
	c.links.mu.Lock()
	until, again := c.links.resent[env]
	if !again {
		if len(c.links.resent) >= maxResent {
			for k, u := range c.links.resent {
				if now.After(u) {
					delete(c.links.resent, k)
				}
			}
		}
		if len(c.links.resent) >= maxResent {
			c.links.mu.Unlock()
			return
		}
		until = now.Add(c.cfg.RequestTimeout)
		c.links.resent[env] = until
	}
	c.links.mu.Unlock()
	within := until.Sub(now)
	if within <= 0 {
		return
	}
	c.log.Debug("a message was lost with its connection; sending it again once the link works", "to", to.Address, "reply_to_call", env.GetReply().GetId())
	first := time.Duration(0)
	if again {
		first = probeEvery / 5
	}
	c.sendWhenLinked(to, env, within, first, nil)
}

// persisted reports whether ev holds an event with a seq (a persisted
// one, which a watcher must not miss; typing and read are not).
func persisted(ev *clusterpb.Events) bool {
	for _, e := range ev.Events {
		if e.Seq != 0 {
			return true
		}
	}
	return false
}

// notice is one WatchLost waiting to go to the gateway at addr.
type notice struct {
	addr          string
	channel, node string
}

// resendNotice tells the gateway at n.addr, once the link to it works,
// to watch n.channel again (or every channel of node n.node), for up to
// RequestTimeout; one such notice per gateway and channel waits at a
// time, at most maxResent in all. A notice dropped again is told again,
// a probe's tick later.
func (c *Cluster) resendNotice(n notice) {
	c.links.mu.Lock()
	_, waiting := c.links.notices[n]
	full := len(c.links.notices) >= maxResent
	if !waiting && !full {
		c.links.notices[n] = struct{}{}
	}
	c.links.mu.Unlock()
	if waiting || full {
		return
	}
	c.log.Debug("a channel's events or notice for a gateway were lost with the connection; telling it to watch again once the link works",
		"to", n.addr, "channel", n.channel, "node", n.node)
	env := clusterpb.Wrap(&clusterpb.Envelope_WatchLost{WatchLost: &clusterpb.WatchLost{Channel: n.channel, Node: n.node}})
	c.sendWhenLinked(InboxPID(n.addr), env, c.cfg.RequestTimeout, probeEvery/5, func() {
		c.links.mu.Lock()
		delete(c.links.notices, n)
		c.links.mu.Unlock()
	})
}
