// Package actors adapts Switchboard's state machines to protoactor-go:
// a host actor on every host node activates channel and user actors on
// demand — only for scopes whose shard this node leads — and passivates
// them when idle; each adapter feeds commands to its pure state machine,
// proposes the resulting entries to the scope's shard without blocking its
// mailbox, and releases replies and events strictly in entry order once
// the entries are committed.
package actors

import (
	"encoding/json"
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
	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/cluster/workers"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
	"google.golang.org/protobuf/proto"
)

// Cluster is what actors need of their node's cluster layer: the shard a
// scope lives in, membership, requests and notices to other nodes, and the
// actor system to live in. *cluster.Cluster is the one nodes use.
type Cluster interface {
	// Name is this node's name.
	Name() string
	// System is the actor system actors are spawned in; replies and
	// events go to cluster.InboxPID of the asking node through it.
	System() *actor.ActorSystem
	// Joined reports whether this node has reached its cluster: one that
	// has not owns nothing yet.
	Joined() bool
	// ShardOf is the shard a scope lives in.
	ShardOf(kind clusterpb.Kind, id string) uint32
	// View is the current membership.
	View() *cluster.View
	// OnChange calls fn (which must not block) when a member changes.
	OnChange(fn func(old, cur cluster.Member))
	// RequestNode sends req to a node's host actor and calls done once
	// with the reply or a failure.
	RequestNode(node string, req *clusterpb.Request, timeout time.Duration, done func(*clusterpb.Reply))
	// Notify sends req to the leader of its target's shard, expecting no
	// reply.
	Notify(req *clusterpb.Request)
	// SendWhenLinked sends env to a node's inbox once the link to it
	// works, within a bound.
	SendWhenLinked(addr string, env *clusterpb.Envelope, within time.Duration)
}

var _ Cluster = (*cluster.Cluster)(nil)

// Replication is what actors need of the node's raft engine.
type Replication interface {
	// Lead answers once this node leads shard with everything of scope
	// (a scope's key) it holds applied, with the stream leased to the
	// activation: the scope's only writer until it is closed or another
	// Lead of the scope supersedes it.
	Lead(shard uint32, scope string, done func(s *shard.Stream, err error))
	// Propose proposes a command on a stream (see shard.Stream).
	Propose(s *shard.Stream, cmd []byte, done func(error))
	// ReadIndex confirms this node still leads the stream's shard in its
	// term, and that the stream's lease holds.
	ReadIndex(s *shard.Stream, done func(error))
	// Status is this node's view of shard.
	Status(shard uint32) (shard.Status, bool)
}

var _ Replication = (*shard.Engine)(nil)

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
	Cluster     Cluster
	Store       *persistence.Store
	Replication Replication
	Config
	// Clock is the time source (time.Now in production).
	Clock   func() time.Time
	Logger  *slog.Logger
	Metrics *Metrics
	// Webhooks, when set, is told of channels with events to deliver
	// (Config.Channel.Webhooks must be set too).
	Webhooks WebhookSink
	// Workers runs the actors' mailboxes (their protoactor dispatcher):
	// the node's pool of kept goroutines, which it closes. Nil: the host
	// makes one of its own and closes it when it stops.
	Workers *workers.Pool
}

// NewWorkers returns a pool of kept goroutines for Deps.Workers (and the
// gateway's upgrades): at most 64 kept, and protoactor's default of 300
// messages per mailbox run.
func NewWorkers() *workers.Pool { return workers.New(64, 300) }

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

// StartHost spawns this node's host actor under its well-known name. Call
// LeaderChanged on the returned host when the node's leadership of a shard
// changes.
func StartHost(d Deps) (*Host, error) {
	d.withDefaults()
	// A child that fails is stopped, never restarted in place: its next
	// message activates it afresh from the store.
	stop := actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.StopDirective })
	w, own := d.Workers, d.Workers == nil
	if own {
		w = NewWorkers()
	}
	props := actor.PropsFromProducer(func() actor.Actor {
		return &hostActor{d: &d, children: make(map[string]*child), byPID: make(map[string]string), led: make(map[uint32]uint64),
			exports: make(chan struct{}, 4), workers: w, ownWorkers: own}
	}, actor.WithSupervisor(stop), actor.WithDispatcher(w))
	pid, err := d.Cluster.System().Root.SpawnNamed(props, cluster.HostName)
	if err != nil {
		return nil, err
	}
	d.Cluster.OnChange(func(old, cur cluster.Member) {
		switch {
		case cur.State == cluster.StateDead || cur.State == cluster.StateLeft:
			d.Logger.Debug("watch: gateway gone, its watchers forgotten", "node", cur.Name, "state", cur.State)
			d.Cluster.System().Root.Send(pid, &gatewayGone{addr: cur.Meta.Remote})
		case old.Meta.Remote != "" && old.Meta.Remote != cur.Meta.Remote:
			// Restarted faster than failure detection: its old process
			// (and its sessions) are gone though it never showed dead.
			d.Logger.Debug("watch: gateway restarted, its old watchers forgotten", "node", cur.Name)
			d.Cluster.System().Root.Send(pid, &gatewayGone{addr: old.Meta.Remote})
		case (old.State == cluster.StateDead || old.State == cluster.StateLeft) && !old.Since.IsZero() && cur.State == cluster.StateAlive && cur.IsGateway():
			// Back in the same life: it was cut off, or wrongly declared
			// dead, and its sessions still believe they watch the channels
			// here that forgot them (gatewayGone). The notice each channel
			// sent then was likely lost with the link; this one goes once
			// the link is back. (A member only in the saved registry, never
			// seen by this process, has no Since: it was not declared dead
			// here.)
			d.Logger.Debug("watch: gateway back in the same life, telling it to watch again", "node", cur.Name)
			d.Cluster.SendWhenLinked(cur.Meta.Remote,
				clusterpb.Wrap(&clusterpb.Envelope_WatchLost{WatchLost: &clusterpb.WatchLost{Node: d.Cluster.Name()}}), watchLostWithin)
		}
	})
	return &Host{PID: pid, system: d.Cluster.System()}, nil
}

// Host is a node's running host actor.
type Host struct {
	PID    *actor.PID
	system *actor.ActorSystem
}

// LeaderChanged tells the host what this node now knows of a shard it
// holds a replica of; activations of a shard this node stopped leading,
// or leads in a new term, stop. It must not block (it is called from the
// raft engine's loop).
func (h *Host) LeaderChanged(st shard.Status) {
	h.system.Root.Send(h.PID, &shardLeader{shard: st.Shard, leader: st.IsLeader, term: st.Term})
}

// shardLeader reports this node's leadership of a shard.
type shardLeader struct {
	shard  uint32
	leader bool
	term   uint64
}

// hostActor owns this node's activations.
type hostActor struct {
	d        *Deps
	children map[string]*child // scope key → activation
	byPID    map[string]string // child PID id → scope key
	led      map[uint32]uint64 // shards this node leads → term
	// exports bounds scope listings read beside the mailbox; exporting
	// joins them when the host stops.
	exports   chan struct{}
	exporting sync.WaitGroup
	// workers runs the children's mailboxes; the host closes it when it
	// stops if it made it (ownWorkers).
	workers    *workers.Pool
	ownWorkers bool
}

type child struct {
	pid   *actor.PID
	kind  string
	shard uint32
	// forwarded counts messages sent to the child; a child may passivate
	// only once it has processed all of them.
	forwarded uint64
}

// clockSkewMS is how far clocks of two nodes may disagree before a
// request's deadline is judged past on arrival.
const clockSkewMS = 2000

// passivate is sent by a child that has been idle.
type passivate struct {
	key       string
	processed uint64
}

// retire is sent by a child that failed: forgotten and then stopped by
// the host (scopeActor.retire).
type retire struct {
	key string
	pid *actor.PID
}

// watchLostWithin bounds the wait for the link to a gateway back from
// dead before its notice is dropped (it is back for good by then, or dead
// again).
const watchLostWithin = 30 * time.Second

// gatewayGone tells activations a gateway node is gone.
type gatewayGone struct{ addr string }

// ActiveCountResult answers OpStats: the actors active on a node.
type ActiveCountResult struct {
	Channels    int `json:"channels"`
	Users       int `json:"users"`
	Directories int `json:"directories"`
}

// OpStats is the node-level op (a KIND_NODE request to a node's host
// actor) that returns the node's active actor counts.
const OpStats = "_node.stats"

func (h *hostActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *clusterpb.Envelope:
		h.route(ctx, m)
	case *passivate:
		c := h.children[m.key]
		if c != nil && c.forwarded == m.processed {
			h.forget(m.key, c)
			ctx.Stop(c.pid)
		}
	case *retire:
		if c := h.children[m.key]; c != nil && c.pid.Equal(m.pid) {
			h.forget(m.key, c)
		}
		ctx.Poison(m.pid) // after all the host forwarded to it
	case *actor.Terminated:
		key, ok := h.byPID[m.Who.Id]
		if !ok {
			break // passivated or retired: already forgotten
		}
		if c := h.children[key]; c != nil && c.pid.Equal(m.Who) {
			h.forget(key, c)
		}
	case *shardLeader:
		h.onLeader(ctx, m)
	case *actor.Stopping:
		h.stopChildren(ctx)
		h.exporting.Wait()
	case *actor.Stopped:
		if h.ownWorkers {
			h.workers.Close() // the children have stopped
		}
	case *gatewayGone:
		for _, c := range h.children {
			ctx.Send(c.pid, m)
		}
	}
}

func (h *hostActor) forget(key string, c *child) {
	delete(h.children, key)
	delete(h.byPID, c.pid.Id)
	h.d.Metrics.passivated(c.kind)
}

// onLeader stops the activations of a shard this node no longer leads in
// the term they were started in. They answer what waits with unavailable;
// the shard's new leader activates them on demand.
//
// News of a leadership the host has not heard of before may come after
// activations in it: canActivate asks the engine when the host has not
// heard yet, and a failover's retried requests come at once. Those stay;
// an activation of an earlier leadership cannot be among them (the host
// hears of every end of a leadership, and stops the activations then),
// and the engine refuses any stream not of the current one.
func (h *hostActor) onLeader(ctx actor.Context, m *shardLeader) {
	term, known := h.led[m.shard]
	if m.leader {
		h.led[m.shard] = m.term
		if !known || term == m.term {
			return
		}
	} else {
		delete(h.led, m.shard)
	}
	for key, c := range h.children {
		if c.shard == m.shard {
			ctx.Send(c.pid, leadershipLost{})
			// Forgotten now: a request that follows activates afresh (on
			// the new leader, or here in the new term) instead of reaching
			// the stopping activation.
			h.forget(key, c)
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
	var r ActiveCountResult
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
		key := cluster.ScopeKey(clusterpb.Kind_KIND_CHANNEL, b.SessionsClosed.Channel)
		if c := h.children[key]; c != nil {
			c.forwarded++
			ctx.Send(c.pid, env)
		}
		return // never activate a channel just to tell it sessions closed
	default:
		return
	}
	key := cluster.ScopeKey(kind, target)
	req := env.GetRequest()
	c := h.children[key]
	if c == nil {
		sh := h.d.Cluster.ShardOf(kind, target)
		if ok := h.canActivate(ctx, req, sh); !ok {
			return
		}
		var err error
		if c, err = h.activate(ctx, kind, target, key, sh); err != nil {
			h.d.Logger.Error("activation failed", "scope", key, "err", err)
			replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "could not activate %s", target))
			return
		}
	}
	c.forwarded++
	ctx.Send(c.pid, env)
}

// canActivate checks a new activation — a valid id, this node leads the
// scope's shard, there is room — and answers the request when it may not.
func (h *hostActor) canActivate(ctx actor.Context, req *clusterpb.Request, sh uint32) bool {
	target := req.GetTarget()
	if target == "" || len(target) > persistence.MaxIDLen {
		replyError(ctx, req, protocol.Errorf(protocol.CodeBadRequest, "invalid id %q", target))
		return false
	}
	if _, ok := h.led[sh]; !ok {
		st, _ := h.d.Replication.Status(sh)
		if !st.IsLeader {
			replyNotLeader(ctx, req, sh, h.d.Cluster.Name(), st)
			return false
		}
	}
	if len(h.children) >= h.d.MaxActors {
		replyError(ctx, req, protocol.Errorf(protocol.CodeUnavailable, "node %s is at its limit of %d active actors", h.d.Cluster.Name(), h.d.MaxActors))
		return false
	}
	return true
}

func (h *hostActor) activate(ctx actor.Context, kind clusterpb.Kind, target, key string, sh uint32) (*child, error) {
	var props *actor.Props
	var k string
	switch kind {
	case clusterpb.Kind_KIND_CHANNEL:
		k = kindChannel
		if directory.IsShard(target) {
			k = kindDirectory
		}
		props = actor.PropsFromProducer(func() actor.Actor { return newChannelActor(target, key, sh, h.d) }, actor.WithDispatcher(h.workers))
	case clusterpb.Kind_KIND_USER:
		k = kindUser
		props = actor.PropsFromProducer(func() actor.Actor { return newUserActor(target, key, sh, h.d) }, actor.WithDispatcher(h.workers))
	default:
		return nil, errors.New("unknown kind")
	}
	// A child's Terminated comes to its parent without a watch (a watch
	// would keep a set of watchers in every child, and say it twice).
	pid := ctx.Spawn(props)
	h.byPID[pid.Id] = key
	c := &child{pid: pid, kind: k, shard: sh}
	h.children[key] = c
	h.d.Metrics.activated(k)
	return c, nil
}

// nodeOp serves a KIND_NODE request.
func (h *hostActor) nodeOp(ctx actor.Context, req *clusterpb.Request) {
	if req.Op == OpStats {
		b, _ := json.Marshal(h.counts())
		if req.ReplyTo != "" {
			ctx.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, b, nil))
		}
		return
	}
	if req.Op == OpScopes {
		h.scopes(ctx, req)
		return
	}
	replyError(ctx, req, protocol.Errorf(protocol.CodeBadRequest, "unknown node op %q", req.Op))
}

// replyError answers a request that never reached its actor.
func replyError(ctx actor.Context, req *clusterpb.Request, e *protocol.Error) {
	if req == nil || req.ReplyTo == "" {
		return
	}
	ctx.Send(cluster.InboxPID(req.ReplyTo), replyEnvelope(req, nil, e))
}

// replyNotLeader refuses a request for a scope whose shard this node does
// not lead, saying who does as far as it knows: the asker's router
// retries there.
func replyNotLeader(ctx actor.Context, req *clusterpb.Request, sh uint32, self string, st shard.Status) {
	if req == nil || req.ReplyTo == "" {
		return
	}
	e := protocol.Errorf(protocol.CodeUnavailable, "%s is in shard %d, which node %s does not lead; retry", req.Target, sh, self)
	if st.Leader != "" {
		e.Message += " (its leader is " + st.Leader + ")"
	}
	e.RetryAfterMS = retryAfterMS
	env := replyEnvelope(req, nil, e)
	rep := env.GetReply()
	rep.NotLeader, rep.Shard, rep.Leader, rep.LeaderTerm = true, sh, st.Leader, st.Term
	ctx.Send(cluster.InboxPID(req.ReplyTo), env)
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
