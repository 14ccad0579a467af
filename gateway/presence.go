package gateway

import (
	"encoding/json"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/actors/user"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// presence is the gateway's side of presence. Users' actors hold leases
// (see package user): this gateway reports its sessions (opened with the
// login, closed when they end) and, every heartbeat, renews the leases of
// every session still open and of every user some local session watches.
// A gateway that dies or hangs stops renewing, and its leases lapse one
// TTL (three heartbeats) later; a node known dead ends them sooner.
//
// Presence events come from users' actors once per gateway, on the
// cluster inbox goroutine (see eventRouter), and fan out here to the local
// watching sessions. A heartbeat's reply carries the user's status: when
// it differs from the last one delivered (a user actor that restarted or
// moved lost this gateway's watch, and with it an event), the gateway
// delivers the current status itself, so a missed change is late by at
// most one heartbeat, never lost for good.
type presence struct {
	g        *Gateway
	interval time.Duration

	// mu guards the maps. It is held while reports are sent to users'
	// actors (sends only enqueue), so that reports about one user reach
	// its actor in the order the maps changed: a heartbeat can never
	// renew a session after the report that closed it.
	mu       sync.Mutex
	sessions map[string][]*session            // user → its open local sessions (a user has few)
	watchers map[string]map[*session]struct{} // watched user → local watchers
	// watching holds every open session: the users it watches (nil
	// until its first watch: most sessions watch none).
	watching map[*session]map[string]struct{}
	pending  map[*session]int  // open session → watch slots reserved by requests in flight
	status   map[string]string // watched user → status last delivered

	paused atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

func newPresence(g *Gateway) *presence {
	p := &presence{
		g:        g,
		interval: g.cfg.PresenceInterval,
		sessions: make(map[string][]*session),
		watchers: make(map[string]map[*session]struct{}),
		watching: make(map[*session]map[string]struct{}),
		pending:  make(map[*session]int),
		status:   make(map[string]string),
		stop:     make(chan struct{}),
	}
	p.wg.Go(p.heartbeatLoop)
	return p
}

// close stops the heartbeat. It is safe to call more than once.
func (p *presence) close() {
	p.mu.Lock()
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// ttl is the lease length this gateway asks for: three heartbeats, so one
// late or lost renewal does not flap a user offline.
func (p *presence) ttl() time.Duration { return 3 * p.interval }

// gatewayCaller is the caller of this gateway's own reports.
func (p *presence) gatewayCaller() *clusterpb.Caller {
	return &clusterpb.Caller{Gateway: p.g.cl.Address()}
}

func (p *presence) report(userID string, a user.PresenceArgs) {
	args, _ := json.Marshal(a)
	p.g.cl.Notify(&clusterpb.Request{Kind: kindUser, Target: userID, Op: user.OpPresence, Args: args, Caller: p.gatewayCaller()})
}

// opened records an authenticating session before its login is sent, so
// a heartbeat sent after the login includes it.
func (p *presence) opened(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sessions[s.user] = append(p.sessions[s.user], s)
	p.watching[s] = nil
}

// closed reports an ended session and drops its watches. It is safe for
// a session that never authenticated.
func (p *presence) closed(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ss := p.sessions[s.user]
	if i := slices.Index(ss, s); i >= 0 {
		if len(ss) == 1 {
			delete(p.sessions, s.user)
		} else {
			p.sessions[s.user] = slices.Delete(ss, i, i+1)
		}
		p.report(s.user, user.PresenceArgs{Closed: []string{s.id}})
	}
	for u := range p.watching[s] {
		p.dropWatcherLocked(s, u)
	}
	delete(p.watching, s)
}

func (p *presence) dropWatcherLocked(s *session, u string) {
	delete(p.watching[s], u)
	ws := p.watchers[u]
	if ws == nil {
		return
	}
	delete(ws, s)
	if len(ws) == 0 {
		delete(p.watchers, u)
		delete(p.status, u)
		off := false
		p.report(u, user.PresenceArgs{Watch: &off})
	}
}

// heartbeatLoop renews this gateway's leases every interval.
func (p *presence) heartbeatLoop() {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			if !p.paused.Load() {
				p.heartbeat()
			}
		}
	}
}

// heartbeat sends one report per user this gateway has sessions of or
// watchers for. Reports for watched users ask for a reply, to catch a
// status this gateway missed.
func (p *presence) heartbeat() {
	p.mu.Lock()
	users := make([]string, 0, len(p.sessions)+len(p.watchers))
	for u := range p.sessions {
		users = append(users, u)
	}
	for u := range p.watchers {
		if _, ok := p.sessions[u]; !ok {
			users = append(users, u)
		}
	}
	p.mu.Unlock()
	// Each user's report is built and sent under mu (so it keeps its order
	// with that user's close and watch reports), a chunk of users at a
	// time: the inbox, which takes mu to deliver presence events, never
	// waits for a whole pass.
	const chunk = 256
	for i := 0; i < len(users); i += chunk {
		p.mu.Lock()
		for _, u := range users[i:min(i+chunk, len(users))] {
			p.heartbeatLocked(u)
		}
		p.mu.Unlock()
	}
}

// heartbeatLocked sends one user's report. p.mu is held.
func (p *presence) heartbeatLocked(u string) {
	_, hasSessions := p.sessions[u]
	_, watched := p.watchers[u]
	if !hasSessions && !watched {
		return // gone since the pass began; its close was reported
	}
	on := true
	{
		a := user.PresenceArgs{TTLMS: p.ttl().Milliseconds()}
		for _, s := range p.sessions[u] {
			a.Renew = append(a.Renew, s.id)
		}
		sort.Strings(a.Renew)
		if !watched {
			p.report(u, a)
			return
		}
		a.Watch = &on
		args, _ := json.Marshal(a)
		req := &clusterpb.Request{Kind: kindUser, Target: u, Op: user.OpPresence, Args: args, Caller: p.gatewayCaller()}
		// Replies (and failures) arrive on the inbox goroutine, in order
		// with the user's events. A failed renewal is left to the next
		// heartbeat: a lease lasts three of them.
		p.g.cl.Request(req, p.interval, func(rep *clusterpb.Reply) {
			if rep.Error == nil {
				p.reconcile(rep.Result)
			}
		})
	}
}

// reconcile compares a watched user's status in a heartbeat reply with
// the last one delivered, and delivers it when they differ.
func (p *presence) reconcile(result []byte) {
	var r struct {
		User protocol.User `json:"user"`
	}
	if json.Unmarshal(result, &r) != nil {
		return
	}
	u := r.User
	p.mu.Lock()
	last, watched := p.status[u.ID]
	if !watched || last == u.Status {
		p.mu.Unlock()
		return
	}
	p.status[u.ID] = u.Status
	targets := p.watcherList(u.ID)
	p.mu.Unlock()
	frame := protocol.AppendPresenceEvent(nil, &protocol.PresenceEvent{User: u.ID, Status: u.Status, LastSeen: u.LastSeen})
	for _, s := range targets {
		s.send(frame)
	}
}

func (p *presence) watcherList(u string) []*session {
	out := make([]*session, 0, len(p.watchers[u]))
	for s := range p.watchers[u] {
		out = append(out, s)
	}
	return out
}

// deliver fans a user actor's presence events out to the local watchers.
// It runs on the inbox goroutine.
func (p *presence) deliver(userID string, ev *clusterpb.Events) {
	p.mu.Lock()
	targets := p.watcherList(userID)
	for _, e := range ev.Events {
		var f struct {
			Data protocol.PresenceEvent `json:"data"`
		}
		if json.Unmarshal(e.Frame, &f) == nil && f.Data.Status != "" {
			if _, ok := p.status[userID]; ok {
				p.status[userID] = f.Data.Status
			}
		}
	}
	p.mu.Unlock()
	n := 0
	for _, e := range ev.Events {
		for _, s := range targets {
			s.send(e.Frame)
			n++
		}
	}
	if m := p.g.cfg.Metrics; m.Deliveries != nil {
		m.Deliveries(n)
	}
}

// watch handles presence.watch: every listed user that exists is watched
// by the session from now on; the reply holds their current profiles
// (with status and last_seen). Unknown users are left out and not watched.
func (p *presence) watch(s *session, args []byte, done answer) {
	users, perr := p.users(s, args)
	if perr != nil {
		done(errorReply(perr))
		return
	}
	fresh, perr := p.admit(s, users)
	if perr != nil {
		done(errorReply(perr))
		return
	}
	if !s.acquire() {
		p.reserve(s, -fresh)
		return
	}
	on := true
	args, _ = json.Marshal(user.PresenceArgs{Watch: &on, TTLMS: p.ttl().Milliseconds()})
	reps := make([]*clusterpb.Reply, len(users))
	var mu sync.Mutex
	left := len(users)
	finish := func() {
		p.reserve(s, -fresh)
		s.release()
		done(usersReply(reps))
	}
	if len(users) == 0 {
		finish()
		return
	}
	for i, u := range users {
		req := &clusterpb.Request{Kind: kindUser, Target: u, Op: user.OpPresence, Args: args, Caller: p.gatewayCaller()}
		p.g.cl.Request(req, p.g.cfg.RequestTimeout, func(rep *clusterpb.Reply) {
			if rep.Error == nil {
				// On the inbox goroutine, ahead of the user's later events.
				p.added(s, u, rep.Result)
			}
			mu.Lock()
			reps[i] = rep
			left--
			last := left == 0
			mu.Unlock()
			if last {
				finish()
			}
		})
	}
}

// admit checks that s may watch users on top of what it watches and what
// its requests in flight have reserved, and reserves the slots of the
// users it does not watch yet: back-to-back watches cannot pass the limit
// before their replies add the users. The caller returns the slots with
// reserve once its requests are answered.
func (p *presence) admit(s *session, users []string) (int, *protocol.Error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	have, open := p.watching[s]
	fresh := 0
	for _, u := range users {
		if _, ok := have[u]; !ok {
			fresh++
		}
	}
	limit := s.g.cfg.Limits.MaxPresenceWatch
	if !open || len(have)+p.pending[s]+fresh > limit {
		return 0, protocol.Errorf(protocol.CodeTooLarge, "a session watches the presence of at most %d users", limit)
	}
	p.pending[s] += fresh
	return fresh, nil
}

// reserve adds n (or, negative, returns) watch slots held by s's
// requests in flight.
func (p *presence) reserve(s *session, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending[s] += n; p.pending[s] <= 0 {
		delete(p.pending, s)
	}
}

// added records that s watches u, whose actor just registered this
// gateway and answered with u's profile.
func (p *presence) added(s *session, u string, result []byte) {
	var r struct {
		User protocol.User `json:"user"`
	}
	_ = json.Unmarshal(result, &r)
	p.mu.Lock()
	defer p.mu.Unlock()
	have, open := p.watching[s]
	if !open {
		// The session ended meanwhile: drop the lease unless another
		// local session uses it.
		if len(p.watchers[u]) == 0 {
			off := false
			p.report(u, user.PresenceArgs{Watch: &off})
		}
		return
	}
	if have == nil {
		have = make(map[string]struct{})
		p.watching[s] = have
	}
	have[u] = struct{}{}
	ws := p.watchers[u]
	if ws == nil {
		ws = make(map[*session]struct{})
		p.watchers[u] = ws
	}
	ws[s] = struct{}{}
	p.status[u] = r.User.Status
}

// unwatch handles presence.unwatch.
func (p *presence) unwatch(s *session, args []byte, done answer) {
	users, perr := p.users(s, args)
	if perr != nil {
		done(errorReply(perr))
		return
	}
	p.mu.Lock()
	for _, u := range users {
		if _, ok := p.watching[s][u]; ok {
			p.dropWatcherLocked(s, u)
		}
	}
	p.mu.Unlock()
	done(resultReply([]byte("{}")))
}

// users decodes and checks the users of presence.watch/unwatch.
func (p *presence) users(s *session, args []byte) ([]string, *protocol.Error) {
	var a protocol.PresenceArgs
	if perr := protocol.DecodeArgs(args, &a); perr != nil {
		return nil, perr
	}
	if max := s.g.cfg.Limits.MaxHistoryLimit; len(a.Users) > max {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "%d users, at most %d per request", len(a.Users), max)
	}
	seen := make(map[string]bool, len(a.Users))
	out := make([]string, 0, len(a.Users))
	for _, u := range a.Users {
		if perr := s.g.checkID("users", u); perr != nil {
			return nil, perr
		}
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out, nil
}

// eventRouter is the node's cluster.Handler: presence events go to the
// presence table; everything else is the hub's (embedded, so whatever the
// hub handles stays its own).
type eventRouter struct {
	*hub
	presence *presence
}

// Sheddable: presence events are not, since the presence table keeps the
// status they carry and no seq would show one missing; channel events are
// (the hub replays what a shed batch held).
// Notices (channel.added, channel.removed) are not either: nothing would
// replay them.
func (r eventRouter) Sheddable(ev *clusterpb.Events) bool {
	_, presence := user.PresenceUser(ev.Channel)
	_, notice := user.NoticeUser(ev.Channel)
	return !presence && !notice
}

func (r eventRouter) Events(ev *clusterpb.Events) {
	if u, ok := user.PresenceUser(ev.Channel); ok {
		r.presence.deliver(u, ev)
		return
	}
	if u, ok := user.NoticeUser(ev.Channel); ok {
		r.presence.notify(u, ev)
		return
	}
	r.hub.Events(ev)
}

// notify delivers a user actor's notices to every local session of the
// user that has connected. It runs on the inbox goroutine.
func (p *presence) notify(userID string, ev *clusterpb.Events) {
	p.mu.Lock()
	targets := slices.Clone(p.sessions[userID])
	p.mu.Unlock()
	n := 0
	for _, s := range targets {
		if !s.authed.Load() {
			continue // its connect has not answered yet
		}
		for _, e := range ev.Events {
			s.send(e.Frame)
			n++
		}
	}
	if m := p.g.cfg.Metrics; m.Deliveries != nil {
		m.Deliveries(n)
	}
}
