// Package actors adapts Switchboard's state machines to protoactor-go:
// a host actor on every host node activates channel and user actors on
// demand and passivates them when idle; each adapter feeds commands to its
// pure state machine, appends the resulting entries to the store without
// blocking its mailbox, and releases replies and events strictly in entry
// order once the entries are durable.
package actors

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/actors/directory"
	"github.com/switchboard-chat/switchboard/actors/user"
	"github.com/switchboard-chat/switchboard/cluster"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
	"google.golang.org/protobuf/proto"
)

// Cluster is what actors need of their node's cluster layer: placement
// and membership to decide where a scope lives, requests and notices to
// other nodes, and the actor system to live in. *cluster.Cluster is the
// one nodes use.
type Cluster interface {
	// Name is this node's name.
	Name() string
	// System is the actor system actors are spawned in; replies and
	// events go to cluster.InboxPID of the asking node through it.
	System() *actor.ActorSystem
	// Joined reports whether this node has reached its cluster: one that
	// has not owns nothing yet.
	Joined() bool
	// OwnerOf is the node that owns a scope in this node's view.
	OwnerOf(kind clusterpb.Kind, id string) string
	// View is the current membership.
	View() *cluster.View
	// OnChange calls fn (which must not block) when a member changes.
	OnChange(fn func(old, cur cluster.Member))
	// RequestNode sends req to a node's host actor and calls done once
	// with the reply or a failure.
	RequestNode(node string, req *clusterpb.Request, timeout time.Duration, done func(*clusterpb.Reply))
	// Notify sends req to the owner of its target, expecting no reply.
	Notify(req *clusterpb.Request)
}

var _ Cluster = (*cluster.Cluster)(nil)

// Config tunes a host's actors. DefaultConfig is a production node's;
// zero PassivateAfter and MaxActors take its values.
type Config struct {
	// Channel and User configure the channels' and users' state machines.
	Channel channel.Config
	User    user.Config
	// PassivateAfter is how long an actor with no watchers stays idle
	// before it passivates.
	PassivateAfter time.Duration
	// MaxActors bounds active actors on this node; past it, activations
	// answer unavailable.
	MaxActors int
}

// DefaultConfig is a production node's actors. The node's flags take
// their defaults from it.
func DefaultConfig() Config {
	return Config{
		Channel: channel.DefaultConfig(),
		User:    user.DefaultConfig(),
		// A channel used now and then stays in memory between uses; one
		// left alone for two minutes gives its memory back (its next
		// request activates it again from the store).
		PassivateAfter: 2 * time.Minute,
		// Each active actor holds its caches; 100,000 of them fit a node
		// of a few GB with its sessions.
		MaxActors: 100000,
	}
}

// Deps are what actors need from their node.
type Deps struct {
	Cluster Cluster
	Store   *persistence.Store
	Config
	// Clock is the time source (time.Now in production).
	Clock   func() time.Time
	Logger  *slog.Logger
	Metrics *Metrics
	// Webhooks, when set, is told of channels with events to deliver
	// (Config.Channel.Webhooks must be set too).
	Webhooks WebhookSink
}

func (d *Deps) withDefaults() {
	def := DefaultConfig()
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.PassivateAfter <= 0 {
		d.PassivateAfter = def.PassivateAfter
	}
	if d.MaxActors <= 0 {
		d.MaxActors = def.MaxActors
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Metrics == nil {
		d.Metrics = &Metrics{}
	}
}

// Metrics are optional hooks the node wires to Prometheus.
type Metrics struct {
	Activated   func(kind string)
	Passivated  func(kind string)
	ActiveDelta func(kind string, delta int)
}

func (m *Metrics) activated(kind string) {
	if m.Activated != nil {
		m.Activated(kind)
	}
	if m.ActiveDelta != nil {
		m.ActiveDelta(kind, 1)
	}
}

func (m *Metrics) passivated(kind string) {
	if m.Passivated != nil {
		m.Passivated(kind)
	}
	if m.ActiveDelta != nil {
		m.ActiveDelta(kind, -1)
	}
}

// StartHost spawns this node's host actor under its well-known name.
func StartHost(d Deps) (*actor.PID, error) {
	d.withDefaults()
	// A child that fails is stopped, never restarted in place: its next
	// message activates it afresh from the store.
	stop := actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.StopDirective })
	props := actor.PropsFromProducer(func() actor.Actor {
		return &hostActor{d: &d, children: make(map[string]*child), locating: make(map[string]*locating), byPID: make(map[string]string),
			exports: make(chan struct{}, 4)}
	}, actor.WithSupervisor(stop))
	pid, err := d.Cluster.System().Root.SpawnNamed(props, cluster.HostName)
	if err != nil {
		return nil, err
	}
	d.Cluster.OnChange(func(old, cur cluster.Member) {
		switch {
		case cur.State == cluster.StateDead || cur.State == cluster.StateLeft:
			d.Cluster.System().Root.Send(pid, &gatewayGone{addr: cur.Meta.Remote})
		case old.Meta.Remote != "" && old.Meta.Remote != cur.Meta.Remote:
			// Restarted faster than failure detection: its old process
			// (and its sessions) are gone though it never showed dead.
			d.Cluster.System().Root.Send(pid, &gatewayGone{addr: old.Meta.Remote})
		}
	})
	return pid, nil
}

// hostActor owns this node's activations.
type hostActor struct {
	d        *Deps
	children map[string]*child    // scope key → activation
	locating map[string]*locating // scope key → locate in progress
	byPID    map[string]string    // child or locator PID id → scope key
	// exports bounds hand-off chunks being read beside the mailbox;
	// exporting joins them when the host stops.
	exports   chan struct{}
	exporting sync.WaitGroup
}

type child struct {
	pid  *actor.PID
	kind string
	// forwarded counts messages sent to the child; a child may passivate
	// only once it has processed all of them.
	forwarded uint64
	// releasing is set once the child was asked to hand its scope over.
	releasing bool
}

// clockSkewMS is how far clocks of two nodes may disagree before a
// request's deadline is judged past on arrival.
const clockSkewMS = 2000

// passivate is sent by a child that has been idle.
type passivate struct {
	key       string
	processed uint64
}

// gatewayGone tells activations a gateway node is gone.
type gatewayGone struct{ addr string }

// ActiveCountResult answers OpStats: the actors active on a node.
type ActiveCountResult struct {
	Channels    int `json:"channels"`
	Users       int `json:"users"`
	Directories int `json:"directories"`
	// Locating counts scopes being located (and maybe imported) here: each
	// may become live here when its locate ends.
	Locating int `json:"locating,omitempty"`
}

func (h *hostActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *clusterpb.Envelope:
		h.route(ctx, m)
	case *passivate:
		c := h.children[m.key]
		if c != nil && c.forwarded == m.processed {
			delete(h.children, m.key)
			delete(h.byPID, c.pid.Id)
			ctx.Stop(c.pid)
			h.d.Metrics.passivated(c.kind)
		}
	case *actor.Terminated:
		key, ok := h.byPID[m.Who.Id]
		if !ok {
			break // passivated: already forgotten
		}
		delete(h.byPID, m.Who.Id)
		if c := h.children[key]; c != nil && c.pid.Equal(m.Who) {
			delete(h.children, key)
			h.d.Metrics.passivated(c.kind)
		} else if l := h.locating[key]; l != nil && l.pid.Equal(m.Who) {
			// A locator that failed without reporting.
			h.onLocated(ctx, &located{key: key, err: protocol.Errorf(protocol.CodeUnavailable, "locating %s failed", key)})
		}
	case *released:
		h.onReleased(ctx, m)
	case *actor.Stopping:
		h.stopChildren(ctx)
		h.exporting.Wait()
	case *located:
		h.onLocated(ctx, m)
	case *gatewayGone:
		for _, c := range h.children {
			ctx.Send(c.pid, m)
		}
	}
}

// stopChildren stops every activation once it has handled what its
// mailbox holds (so nothing is cut off mid-command), waiting a bounded
// time. The host only stops when its node shuts down.
func (h *hostActor) stopChildren(ctx actor.Context) {
	var futs []*actor.Future
	for _, c := range h.children {
		futs = append(futs, ctx.PoisonFuture(c.pid))
	}
	for _, f := range futs {
		_ = f.Wait() // a future times out by itself (10 s)
	}
}

// counts returns the active actors by kind.
func (h *hostActor) counts() ActiveCountResult {
	r := ActiveCountResult{Locating: len(h.locating)}
	for _, c := range h.children {
		switch c.kind {
		case kindChannel:
			r.Channels++
		case kindUser:
			r.Users++
		case kindDirectory:
			r.Directories++
		}
	}
	return r
}

const (
	kindChannel   = "channel"
	kindUser      = "user"
	kindDirectory = "directory" // channels.query shards: channel-kind scopes
)

func (h *hostActor) route(ctx actor.Context, env *clusterpb.Envelope) {
	var kind clusterpb.Kind
	var target string
	switch b := env.Body.(type) {
	case *clusterpb.Envelope_Request:
		req := b.Request
		if req.DeadlineUnixMs > 0 && h.d.Clock().UnixMilli() > req.DeadlineUnixMs+clockSkewMS {
			return // the caller has given up already
		}
		if req.Kind == clusterpb.Kind_KIND_NODE {
			h.nodeOp(ctx, req)
			return
		}
		kind, target = req.Kind, req.Target
	case *clusterpb.Envelope_SessionsClosed:
		kind, target = clusterpb.Kind_KIND_CHANNEL, b.SessionsClosed.Channel
		key := cluster.ScopeKey(kind, target)
		if c := h.children[key]; c != nil {
			c.forwarded++
			ctx.Send(c.pid, env)
		} else if l := h.locating[key]; l != nil && len(l.buffered) < maxBuffered {
			l.buffered = append(l.buffered, env) // for the activation to come
		}
		return // never activate a channel just to tell it sessions closed
	default:
		return
	}
	key := cluster.ScopeKey(kind, target)
	req := env.GetRequest()
	c := h.children[key]
	if c != nil && c.releasing {
		replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "%s is moving to another node; retry", target))
		return
	}
	if c == nil {
		if l := h.locating[key]; l != nil {
			if len(l.buffered) >= maxBuffered {
				replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "%s is being located; retry", target))
				return
			}
			l.buffered = append(l.buffered, env)
			return
		}
		if err := h.canActivate(kind, target); err != nil {
			replyError(ctx, req, err)
			return
		}
		st, err := h.d.Store.State(scopeOf(kind, target))
		if err != nil {
			replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "state of %s unreadable", target))
			return
		}
		// A gateway-generated id on create is new everywhere: no locate.
		fresh := req.Fresh && req.Op == protocol.OpChannelCreate && !st.HasData
		if !st.Live() && !fresh {
			l := h.locate(ctx, kind, target, key)
			l.buffered = append(l.buffered, env)
			return
		}
		if c, err = h.activate(ctx, kind, target, key); err != nil {
			h.d.Logger.Error("activation failed", "scope", key, "err", err)
			replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "could not activate %s", target))
			return
		}
	}
	c.forwarded++
	ctx.Send(c.pid, env)
}

// canActivate checks a new activation: a valid id, this node has reached
// its cluster, it is the scope's owner by placement (a caller with a stale
// view is told to retry), and there is room.
//
// A node started with --join that has reached no seed nor any other
// member sees only itself, so placement would make it the owner of every
// scope: it would start channels that live elsewhere empty, and they would
// diverge. It activates nothing until it has joined.
func (h *hostActor) canActivate(kind clusterpb.Kind, target string) *protocol.Error {
	if target == "" || len(target) > persistence.MaxIDLen {
		return protocol.Errorf(protocol.CodeBadRequest, "invalid id %q", target)
	}
	if !h.d.Cluster.Joined() {
		return protocol.Errorf(protocol.CodeUnavailable, "node %s has not reached its cluster yet (no seed has answered); retry", h.d.Cluster.Name())
	}
	if owner := h.d.Cluster.OwnerOf(kind, target); owner != h.d.Cluster.Name() {
		return protocol.Errorf(protocol.CodeUnavailable, "%s is served by node %s", target, owner)
	}
	if len(h.children) >= h.d.MaxActors {
		return protocol.Errorf(protocol.CodeUnavailable, "node %s is at its limit of %d active actors", h.d.Cluster.Name(), h.d.MaxActors)
	}
	return nil
}

func (h *hostActor) activate(ctx actor.Context, kind clusterpb.Kind, target, key string) (*child, error) {
	var props *actor.Props
	var k string
	switch kind {
	case clusterpb.Kind_KIND_CHANNEL:
		k = kindChannel
		if directory.IsShard(target) {
			k = kindDirectory
		}
		props = actor.PropsFromProducer(func() actor.Actor { return newChannelActor(target, key, h.d) })
	case clusterpb.Kind_KIND_USER:
		k = kindUser
		props = actor.PropsFromProducer(func() actor.Actor { return newUserActor(target, key, h.d) })
	default:
		return nil, errors.New("unknown kind")
	}
	pid := ctx.Spawn(props)
	ctx.Watch(pid)
	h.byPID[pid.Id] = key
	c := &child{pid: pid, kind: k}
	h.children[key] = c
	h.d.Metrics.activated(k)
	return c, nil
}

// replyError answers a request that never reached its actor.
func replyError(ctx actor.Context, req *clusterpb.Request, e *protocol.Error) {
	if req == nil || req.ReplyTo == "" {
		return
	}
	ctx.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, nil, e))
}

// replyEnvelope makes the reply to req. A reply larger than an envelope
// may be (cluster.MaxEnvelopeBytes, see cluster/transport.go) is a
// too_large error instead: sent to another node, it would cost the
// connection and everything queued on it, and the asker would only time
// out. The default limits keep every reply well under it; it is checked
// whether the asker is local or not, so the answer does not depend on
// where the channel lives.
func replyEnvelope(req *clusterpb.Request, result []byte, e *protocol.Error) *clusterpb.Envelope {
	rep := &clusterpb.Reply{Id: req.Id, Result: result, Target: req.Target}
	env := &clusterpb.Envelope{Version: cluster.ProtocolVersion, Body: &clusterpb.Envelope_Reply{Reply: rep}}
	if e == nil && proto.Size(env) > cluster.MaxEnvelopeBytes {
		e = protocol.Errorf(protocol.CodeTooLarge, "the reply is %d bytes, more than the %d one reply may carry: ask for less (a smaller limit)",
			len(result), cluster.MaxEnvelopeBytes)
	}
	if e != nil {
		rep.Error = &clusterpb.Error{Code: string(e.Code), Message: e.Message, RetryAfterMs: e.RetryAfterMS}
		rep.Result = nil
	}
	return env
}
