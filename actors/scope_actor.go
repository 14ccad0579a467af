package actors

import (
	"errors"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/cluster/shard"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// scopeActor is what every adapter of a scope (a channel, a user, a
// directory shard) does the same way: it activates once this node leads
// the scope's shard with everything it holds applied, feeds requests to
// its state machine through the pipeline, stops (answering what waits) on
// any failure or when the node stops leading the shard, and counts what it
// processed for the host's passivation handshake. The adapter supplies the
// rest through scopeHooks.
type scopeActor struct {
	id, key   string
	what      string // "channel", "user", "directory": for logs and errors
	sc        persistence.Scope
	shard     uint32
	d         *Deps
	hooks     scopeHooks
	boot      booting
	p         pipeline
	processed uint64
	// post sends a message to this actor from any goroutine (the engine's
	// callbacks, timers); set by the first message.
	post func(msg any)
	// lost is set once this node stopped leading the scope's shard: the
	// requests still in the mailbox were never handled, so they are sent
	// back for the shard's new leader (a not_leader reply, which the
	// asker's router retries there).
	lost bool
}

// scopeHooks are an adapter's own parts.
type scopeHooks interface {
	// load reads the state machine from log.
	load(ctx actor.Context, log persistence.Log) error
	// request handles one request (the actor is ready and not dead).
	request(ctx actor.Context, req *clusterpb.Request)
	// committed tells the state machine entries up to index are durable.
	committed(index uint64)
	// other handles every other message (envelopes without a request,
	// timers, lifecycle).
	other(ctx actor.Context, msg any)
	// readOnly reports whether an op never writes an entry.
	readOnly(op string) bool
}

func newScopeActor(id, key, what string, sc persistence.Scope, shard uint32, d *Deps, hooks scopeHooks) scopeActor {
	return scopeActor{id: id, key: key, what: what, sc: sc, shard: shard, d: d, hooks: hooks}
}

func (s *scopeActor) Receive(ctx actor.Context) {
	if s.post == nil {
		self, root := ctx.Self(), ctx.ActorSystem().Root
		s.post = func(msg any) { root.Send(self, msg) }
	}
	lead := func(done func(*shard.Stream, error)) { s.d.Replication.Lead(s.shard, s.key, done) }
	if !s.boot.hold(ctx, s.post, lead, ctx.Message()) {
		s.receive(ctx, ctx.Message())
	}
}

// leadershipLost tells an activation its node no longer leads the scope's
// shard (or leads it in a new term): it answers what waits and stops.
type leadershipLost struct{}

func (s *scopeActor) receive(ctx actor.Context, msg any) {
	defer func() {
		if r := recover(); r != nil {
			s.d.Logger.Error(s.what+" actor failed", "scope", s.key, "panic", r, "stack", string(debug.Stack()))
			s.stop(ctx, protocol.Errorf(protocol.CodeInternal, "internal error"))
		}
	}()
	switch m := msg.(type) {
	case booted:
		// Held messages follow (answered "restarting" if this fails).
		defer s.boot.flush(func(msg any) { s.receive(ctx, msg) })
		s.start(ctx, m)
	case leadershipLost:
		s.stop(ctx, storageError(s.what+" "+s.id, shard.ErrLost))
		s.lost = true
	case *clusterpb.Envelope:
		s.processed++
		req := m.GetRequest()
		switch {
		case s.lost && req != nil:
			st, _ := s.d.Replication.Status(s.shard)
			replyNotLeader(ctx, req, s.shard, s.d.Cluster.Name(), st)
		case s.p.dead:
			e := protocol.Errorf(protocol.CodeUnavailable, "%s %s is restarting; retry", s.what, s.id)
			e.RetryAfterMS = retryAfterMS
			replyError(ctx, req, e)
		case req != nil && !s.hooks.readOnly(req.Op) && !s.d.Store.Writable():
			// Refused before the state machine sees it, so nothing
			// changes and the activation goes on serving reads.
			replyError(ctx, req, storageError(s.what+" "+s.id, s.d.Store.WriteError()))
		case req != nil:
			s.hooks.request(ctx, req)
		default:
			s.hooks.other(ctx, m)
		}
	case *committed:
		if err := s.p.onCommitted(m); err != nil {
			if errors.Is(err, persistence.ErrUnwritable) {
				// The store logs why, once; every actor need not.
				s.d.Logger.Debug(s.what+" entry refused", "scope", s.key, "err", err)
			} else {
				s.d.Logger.Info(s.what+" entry not committed", "scope", s.key, "err", err)
			}
			s.stop(ctx, storageError(s.what+" "+s.id, err))
			return
		}
		s.hooks.committed(m.index)
	case *confirmedReads:
		if err := s.p.onConfirmed(m); err != nil {
			s.stop(ctx, storageError(s.what+" "+s.id, err))
		}
	case *actor.Stopping:
		// The lease ends with the activation: nothing it still had
		// queued is appended after the next activation's barrier.
		s.boot.stop()
		s.hooks.other(ctx, msg)
	default:
		s.hooks.other(ctx, msg)
	}
}

// start loads the scope once this node leads its shard with everything
// applied. Its entries are proposed as the shard's leader in that term;
// its reads are confirmed with ReadIndex in that term.
func (s *scopeActor) start(ctx actor.Context, m booted) {
	err := m.err
	if err == nil {
		stream := m.stream
		rep := s.d.Replication
		log := s.d.Store.ShardLog(s.shard, s.sc, func(cmd []byte, done func(error)) { rep.Propose(stream, cmd, done) })
		if err = s.hooks.load(ctx, log); err == nil {
			s.p.start(s.post, log, func(done func(error)) { rep.ReadIndex(stream, done) })
			ctx.SetReceiveTimeout(s.d.PassivateAfter)
			return
		}
	}
	s.d.Logger.Info("activate "+s.what, "scope", s.key, "err", err)
	s.p.dead = true
	s.retire(ctx)
}

// stop answers everything waiting with e and retires the activation: the
// next message activates the scope afresh from what is applied.
func (s *scopeActor) stop(ctx actor.Context, e *protocol.Error) {
	if s.p.dead {
		return
	}
	s.p.fail(e)
	s.retire(ctx)
}

// retire asks the host to forget this dead activation and then stop it.
// It must not stop itself: the host goes on forwarding requests to it
// until it hears, and a request that reached its mailbox after it stopped
// would be dropped unanswered (its asker waits out its timeout). The
// host's stop comes after everything it forwarded, each answered
// "restarting; retry" (or not_leader once the leadership is lost).
func (s *scopeActor) retire(ctx actor.Context) {
	ctx.Send(ctx.Parent(), &retire{key: s.key, pid: ctx.Self()})
}

// passivate asks the host to stop this activation; the host agrees only if
// nothing was sent to it since.
func (s *scopeActor) passivate(ctx actor.Context) {
	if !s.p.dead && s.p.idle() {
		ctx.Send(ctx.Parent(), &passivate{key: s.key, processed: s.processed})
	}
}

// usable reports whether the actor may act on its own (a timer firing).
func (s *scopeActor) usable() bool { return !s.p.dead }

// wakeTimer is an actor's one timer for its state's time-driven changes
// (typing that lapses, presence leases): armed for the state's next wake
// and re-armed after every command. It posts msg to the actor with post.
type wakeTimer struct {
	timer *time.Timer
	at    time.Time
}

// minWake keeps a wake that is due at once from spinning.
const minWake = 5 * time.Millisecond

// arm sets the timer for at (ok false: nothing to wake for), unless one
// sooner is already set.
func (w *wakeTimer) arm(post func(any), at time.Time, ok bool, now time.Time, msg any) {
	if !ok || (w.timer != nil && !w.at.After(at)) {
		return
	}
	w.disarm()
	w.at = at
	w.timer = time.AfterFunc(max(at.Sub(now), minWake), func() { post(msg) })
}

// fired notes that the timer went off.
func (w *wakeTimer) fired() { w.timer = nil }

func (w *wakeTimer) disarm() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}
