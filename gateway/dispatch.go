package gateway

import (
	"bytes"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/actors/user"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

const (
	kindChannel = clusterpb.Kind_KIND_CHANNEL
	kindUser    = clusterpb.Kind_KIND_USER
)

// channelOps are routed to the channel named by args.channel.
var channelOps = map[string]bool{
	protocol.OpChannelGet: true, protocol.OpChannelUpdate: true, protocol.OpChannelDelete: true,
	protocol.OpChannelJoin: true, protocol.OpChannelLeave: true, protocol.OpChannelWatch: true,
	protocol.OpChannelUnwatch: true, protocol.OpMembersList: true, protocol.OpMembersAdd: true,
	protocol.OpMembersRemove: true, protocol.OpMembersInvite: true, protocol.OpMessageSend: true,
	protocol.OpMessageEdit: true, protocol.OpMessageDelete: true, protocol.OpMessagesHistory: true,
	protocol.OpReactionAdd: true, protocol.OpReactionRemove: true, protocol.OpMessageFlag: true,
	protocol.OpMessageFavorite: true, protocol.OpTypingStart: true, protocol.OpTypingStop: true,
	protocol.OpReadMark: true, protocol.OpMemberMute: true, protocol.OpMemberUnmute: true,
	protocol.OpMemberBan: true, protocol.OpMemberUnban: true, protocol.OpMemberKick: true,
	protocol.OpMemberRoles: true, protocol.OpChannelMute: true, protocol.OpChannelUnmute: true,
}

// handleFrame handles one request frame. frame aliases the read buffer:
// anything kept past this call is copied.
func (s *session) handleFrame(frame []byte) {
	if closed, _ := s.out.state(); closed {
		// The session is ending (logout, slow consumer, drain): later
		// frames, even of the same message, are not run — nothing could
		// answer them, and a client that logged out meant it.
		return
	}
	req, perr := protocol.DecodeRequest(frame)
	id := bytes.Clone([]byte(req.ID))
	if perr != nil {
		s.replyError(id, perr)
		return
	}
	args := bytes.Clone([]byte(req.Args))
	if req.Op == protocol.OpConnect {
		s.connect(id, args)
		return
	}
	if !s.authed.Load() {
		s.replyError(id, protocol.Errorf(protocol.CodeUnauthenticated, "connect first"))
		return
	}
	switch req.Op {
	case protocol.OpLogout:
		s.replyResult(id, []byte("{}"))
		s.out.close(reasonLogout)
	case protocol.OpMe, protocol.OpUserUpdate:
		s.call(id, kindUser, s.user, req.Op, args)
	case protocol.OpUsersGet:
		s.usersGet(id, args)
	case protocol.OpPresenceWatch:
		s.g.presence.watch(s, id, args)
	case protocol.OpPresenceUnwatch:
		s.g.presence.unwatch(s, id, args)
	case protocol.OpChannelCreate:
		s.channelCreate(id, args)
	case protocol.OpChannelsList:
		s.channelsList(id, args)
	case protocol.OpChannelsQuery:
		s.channelsQuery(id, args) // query.go
	default:
		if !channelOps[req.Op] {
			s.replyError(id, protocol.Errorf(protocol.CodeBadRequest, "unknown op %q", req.Op))
			return
		}
		var ref protocol.ChannelRef
		if perr := protocol.DecodeArgs(args, &ref); perr != nil {
			s.replyError(id, perr)
			return
		}
		if req.Op == protocol.OpChannelJoin && s.tokenJoin(id, args) { // joins.go
			return
		}
		if perr := s.checkID("channel", ref.Channel); perr != nil {
			s.replyError(id, perr)
			return
		}
		s.dropGrant(req.Op, ref.Channel)
		if req.Op == protocol.OpMessageSend && s.sendWithFiles(id, ref.Channel, args) {
			return
		}
		s.call(id, kindChannel, ref.Channel, req.Op, args)
	}
}

// checkID validates an id the client chose.
func (s *session) checkID(field, v string) *protocol.Error {
	return checkID(field, v, s.g.cfg.Limits.MaxIDLen)
}

// checkID validates an id: 1 to max bytes of printable ASCII, no spaces.
func checkID(field, v string, max int) *protocol.Error {
	if v == "" {
		return protocol.Errorf(protocol.CodeBadRequest, "%s is required", field)
	}
	if len(v) > max {
		return protocol.Errorf(protocol.CodeTooLong, "%s is %d bytes, the limit is %d", field, len(v), max)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return protocol.Errorf(protocol.CodeBadRequest, "%s may hold only printable ASCII without spaces", field)
		}
	}
	return nil
}

// pageLimit validates a page size (0: the default).
func (s *session) pageLimit(n int) (int, *protocol.Error) {
	l := s.g.cfg.Limits
	if n == 0 {
		return l.DefaultHistoryLimit, nil
	}
	if n < 1 || n > l.MaxHistoryLimit {
		return 0, protocol.Errorf(protocol.CodeBadRequest, "limit must be between 1 and %d", l.MaxHistoryLimit)
	}
	return n, nil
}

// replyUsers answers with {users}: the user of each reply, in order,
// leaving out users that do not exist.
func (s *session) replyUsers(id []byte, reps []*clusterpb.Reply) {
	users := make([]json.RawMessage, 0, len(reps))
	for _, rep := range reps {
		if rep.Error != nil {
			if protocol.Code(rep.Error.Code) == protocol.CodeNotFound {
				continue
			}
			s.replyError(id, replyError(rep))
			return
		}
		var u struct {
			User json.RawMessage `json:"user"`
		}
		if json.Unmarshal(rep.Result, &u) == nil {
			users = append(users, u.User)
		}
	}
	res, _ := json.Marshal(map[string]any{"users": users})
	s.replyResult(id, res)
}

func (s *session) caller() *clusterpb.Caller {
	return &clusterpb.Caller{User: s.user, Admin: s.admin, Session: s.id, Gateway: s.g.cl.Address(), Name: s.name, Image: s.image}
}

// acquire takes an in-flight slot, blocking the read loop while the
// session has MaxInflight requests outstanding.
func (s *session) acquire() bool {
	select {
	case s.inflight <- struct{}{}:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *session) release() { <-s.inflight }

// route sends one request as this session; done gets the reply. A
// channel request carries the session's join-token grant for the channel
// (see joins.go; the hub's batched re-watch carries it per session).
func (s *session) route(kind clusterpb.Kind, target, op string, args []byte, done func(*clusterpb.Reply)) {
	c := s.caller()
	if kind == kindChannel {
		c.Perms = s.grants.get(target)
	}
	req := &clusterpb.Request{Kind: kind, Target: target, Op: op, Args: args, Caller: c}
	s.g.cl.Request(req, s.g.cfg.RequestTimeout, done)
}

// call routes a client request and replies with what comes back. A reply
// that started or stopped a watch updates the hub first, on the inbox
// goroutine, before the reply is queued.
func (s *session) call(id []byte, kind clusterpb.Kind, target, op string, args []byte) {
	s.callReq(id, &clusterpb.Request{Kind: kind, Target: target, Op: op, Args: args})
}

func (s *session) callReq(id []byte, req *clusterpb.Request) { s.callReqThen(id, req, nil) }

// callReqThen is callReq with a hook that sees the reply (on the inbox
// goroutine) before the client does. A request without a Caller is sent
// as this session.
func (s *session) callReqThen(id []byte, req *clusterpb.Request, then func(*clusterpb.Reply)) {
	if !s.acquire() {
		return
	}
	start := time.Now()
	kind, target, op := req.Kind, req.Target, req.Op
	if req.Caller == nil {
		req.Caller = s.caller()
	}
	s.g.cl.Request(req, s.g.cfg.RequestTimeout, func(rep *clusterpb.Reply) {
		s.release()
		s.observe(op, rep, start)
		if rep.Error == nil && kind == kindChannel {
			if rep.Watching {
				s.g.hub.watch(s, target, rep.Seq)
			} else if rep.Unwatching {
				s.g.hub.unwatch(s, target)
			}
		}
		if then != nil {
			then(rep)
		}
		s.reply(id, rep)
	})
}

func (s *session) observe(op string, rep *clusterpb.Reply, start time.Time) {
	if m := s.g.cfg.Metrics; m.Request != nil {
		code := "ok"
		if rep.Error != nil {
			code = string(replyError(rep).Code)
		}
		m.Request(op, code, time.Since(start))
	}
}

func (s *session) reply(id []byte, rep *clusterpb.Reply) {
	if rep.Error != nil {
		s.replyError(id, replyError(rep))
		return
	}
	s.replyResult(id, rep.Result)
}

// replyError turns a reply's error into a wire error; an unknown code
// becomes internal.
func replyError(rep *clusterpb.Reply) *protocol.Error {
	e := &protocol.Error{Code: protocol.Code(rep.Error.Code), Message: rep.Error.Message, RetryAfterMS: rep.Error.RetryAfterMs}
	if !e.Code.Known() {
		return &protocol.Error{Code: protocol.CodeInternal, Message: "internal error"}
	}
	return e
}

// connect authenticates the session. It runs in the read loop and waits
// for the user's actor, so frames after connect see an authenticated
// session.
func (s *session) connect(id []byte, args []byte) {
	if s.authed.Load() {
		s.replyError(id, protocol.Errorf(protocol.CodeInvalidState, "already connected"))
		return
	}
	var a protocol.ConnectArgs
	if perr := protocol.DecodeArgs(args, &a); perr != nil {
		s.replyError(id, perr)
		return
	}
	var userID, name, image string
	var admin bool
	switch {
	case a.Token != "":
		sess, perr := s.g.auth.Session(a.Token)
		if perr != nil {
			s.replyError(id, perr)
			return
		}
		userID, name, image, admin = sess.User, sess.Name, sess.Image, sess.Admin
	case s.g.cfg.DevAuth:
		if perr := s.checkID("user_id", a.UserID); perr != nil {
			s.replyError(id, perr)
			return
		}
		userID, name = a.UserID, a.Name
	default:
		s.replyError(id, protocol.Errorf(protocol.CodeUnauthenticated, "token is required"))
		return
	}
	if perr := s.checkID("user", userID); perr != nil {
		s.replyError(id, perr)
		return
	}
	if len(name) > s.g.cfg.Limits.MaxNameLen {
		s.replyError(id, protocol.Errorf(protocol.CodeTooLong, "name is %d bytes, the limit is %d", len(name), s.g.cfg.Limits.MaxNameLen))
		return
	}
	s.user, s.name, s.image, s.admin = userID, name, image, admin
	s.g.presence.opened(s)
	loginArgs, _ := json.Marshal(user.LoginArgs{Name: name, Image: image, PresenceTTLMS: s.g.presence.ttl().Milliseconds()})
	done := make(chan *clusterpb.Reply, 1)
	s.route(kindUser, userID, user.OpLogin, loginArgs, func(rep *clusterpb.Reply) { done <- rep })
	var rep *clusterpb.Reply
	select {
	case rep = <-done:
	case <-s.ctx.Done():
		return
	}
	var u struct {
		User protocol.User `json:"user"`
	}
	switch {
	case rep.Error != nil && protocol.Code(rep.Error.Code) == protocol.CodeUnavailable:
		// The user's node is down or the user is moving: the session is
		// still good, its profile comes from the token's claims.
		s.g.log.Info("connect without the user's profile", "user", userID, "err", rep.Error.Message)
		u.User = protocol.User{ID: userID, Name: name, Image: image}
	case rep.Error != nil:
		s.g.presence.closed(s) // not connected after all
		s.replyError(id, replyError(rep))
		return
	default:
		if err := json.Unmarshal(rep.Result, &u); err != nil {
			s.g.presence.closed(s)
			s.replyError(id, protocol.Errorf(protocol.CodeInternal, "internal error"))
			return
		}
	}
	u.User.Admin = admin
	u.User.Status = "online"
	s.authed.Store(true)
	res, _ := json.Marshal(protocol.ConnectResult{
		SessionID:  s.id,
		User:       u.User,
		ServerTime: protocol.At(time.Now()),
		Limits:     s.g.cfg.Limits,
	})
	s.replyResult(id, res)
}

// channelCreate picks the new channel's id and routes the create to it:
// the id the client chose, the distinct id of a conversation's members,
// or a fresh random one.
func (s *session) channelCreate(id, args []byte) {
	var a protocol.ChannelCreateArgs
	if perr := protocol.DecodeArgs(args, &a); perr != nil {
		s.replyError(id, perr)
		return
	}
	target := a.ID
	fresh := false
	switch {
	case a.Distinct:
		if target != "" {
			s.replyError(id, protocol.Errorf(protocol.CodeBadRequest, "a distinct conversation's id is derived from its members; leave id out"))
			return
		}
		target = channel.DistinctID(append(append([]string{}, a.Members...), s.user))
	case target == "":
		target = "ch-" + randomID() + randomID()
		fresh = true
	}
	if perr := s.checkID("id", target); perr != nil {
		s.replyError(id, perr)
		return
	}
	s.callReq(id, &clusterpb.Request{Kind: kindChannel, Target: target, Op: protocol.OpChannelCreate, Args: args, Fresh: fresh})
}

// fanout sends reqs concurrently and calls done once with every reply, in
// the order of reqs. It holds one in-flight slot.
func (s *session) fanout(reqs []*clusterpb.Request, done func([]*clusterpb.Reply)) {
	if s.acquire() {
		s.fanoutHeld(reqs, done)
	}
}

// fanoutHeld is fanout for a caller that already holds a slot; it releases
// it. It never blocks.
func (s *session) fanoutHeld(reqs []*clusterpb.Request, done func([]*clusterpb.Reply)) {
	reps := make([]*clusterpb.Reply, len(reqs))
	if len(reqs) == 0 {
		s.release()
		done(reps)
		return
	}
	var mu sync.Mutex
	left := len(reqs)
	for i, r := range reqs {
		s.g.cl.Request(r, s.g.cfg.RequestTimeout, func(rep *clusterpb.Reply) {
			mu.Lock()
			reps[i] = rep
			left--
			last := left == 0
			mu.Unlock()
			if last {
				s.release()
				done(reps)
			}
		})
	}
}

// usersGet returns the users with the given ids (unknown ones are left out).
func (s *session) usersGet(id, args []byte) {
	var a struct {
		IDs []string `json:"ids"`
	}
	if perr := protocol.DecodeArgs(args, &a); perr != nil {
		s.replyError(id, perr)
		return
	}
	if len(a.IDs) > s.g.cfg.Limits.MaxHistoryLimit {
		s.replyError(id, protocol.Errorf(protocol.CodeTooLarge, "%d ids, at most %d per request", len(a.IDs), s.g.cfg.Limits.MaxHistoryLimit))
		return
	}
	reqs := make([]*clusterpb.Request, len(a.IDs))
	for i, u := range a.IDs {
		if perr := s.checkID("ids", u); perr != nil {
			s.replyError(id, perr)
			return
		}
		reqs[i] = &clusterpb.Request{Kind: kindUser, Target: u, Op: user.OpGet, Caller: s.caller()}
	}
	s.fanout(reqs, func(reps []*clusterpb.Reply) { s.replyUsers(id, reps) })
}

// channelsList lists the caller's channels, newest activity first. The
// user's actor holds the ids; each channel answers a summary from memory.
// The cursor is the last entry's (last_activity, id).
func (s *session) channelsList(id, args []byte) {
	var a protocol.ChannelsListArgs
	if perr := protocol.DecodeArgs(args, &a); perr != nil {
		s.replyError(id, perr)
		return
	}
	limit, perr := s.pageLimit(a.Limit)
	if perr != nil {
		s.replyError(id, perr)
		return
	}
	var after *listCursor
	if a.Cursor != "" {
		c, ok := parseCursor(a.Cursor)
		if !ok {
			s.replyError(id, protocol.Errorf(protocol.CodeBadRequest, "invalid cursor"))
			return
		}
		after = &c
	}
	if !s.acquire() {
		return
	}
	s.route(kindUser, s.user, user.OpChannels, nil, func(rep *clusterpb.Reply) {
		var ids user.ChannelsResult
		if rep.Error == nil && json.Unmarshal(rep.Result, &ids) != nil {
			rep = &clusterpb.Reply{Error: &clusterpb.Error{Code: string(protocol.CodeInternal), Message: "internal error"}}
		}
		if rep.Error != nil {
			s.release()
			s.replyError(id, replyError(rep))
			return
		}
		reqs := make([]*clusterpb.Request, len(ids.Channels))
		for i, ch := range ids.Channels {
			reqs[i] = &clusterpb.Request{Kind: kindChannel, Target: ch, Op: channel.OpSummary, Caller: s.caller()}
		}
		s.fanoutHeld(reqs, func(reps []*clusterpb.Reply) {
			s.finishList(id, ids.Channels, reps, after, limit)
		})
	})
}

// finishList pages the summaries. A channel that cannot answer does not
// fail the list: it is named in unavailable (on the first page, since
// without its summary it has no place in the order).
func (s *session) finishList(id []byte, ids []string, reps []*clusterpb.Reply, after *listCursor, limit int) {
	var chans []*protocol.Channel
	var unavailable []string
	for i, rep := range reps {
		if rep.Error != nil {
			switch protocol.Code(rep.Error.Code) {
			case protocol.CodeNotMember, protocol.CodeNotFound:
				// left or deleted since the index saw it
			default:
				unavailable = append(unavailable, ids[i])
			}
			continue
		}
		var c protocol.Channel
		if json.Unmarshal(rep.Result, &c) == nil {
			chans = append(chans, &c)
		}
	}
	sort.Slice(chans, func(i, j int) bool { return cursorOf(chans[i]).before(cursorOf(chans[j])) })
	start := 0
	if after != nil {
		start = sort.Search(len(chans), func(i int) bool { return after.before(cursorOf(chans[i])) })
	}
	page := chans[start:]
	res := protocol.ChannelsListResult{Channels: page}
	if after == nil {
		res.Unavailable = unavailable
	}
	if len(page) > limit {
		res.Channels = page[:limit]
		res.Cursor = cursorOf(page[limit-1]).String()
	}
	if res.Channels == nil {
		res.Channels = []*protocol.Channel{}
	}
	b, _ := json.Marshal(res)
	s.replyResult(id, b)
}

// sessionsClosed tells a channel that a session of this gateway ended.
func (g *Gateway) sessionsClosed(ch, session string) {
	g.cl.SendToOwner(kindChannel, ch, clusterpb.Wrap(&clusterpb.Envelope_SessionsClosed{
		SessionsClosed: &clusterpb.SessionsClosed{Channel: ch, Gateway: g.cl.Address(), Sessions: []string{session}},
	}))
}
