package gateway

import (
	"bytes"
	"encoding/json"
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

// origin is who a request comes from: a WebSocket session, or a request
// of the server HTTP API (api.go). Both go through dispatch: the same
// checks, the same limits, the same actors.
type origin interface {
	// caller identifies the requester to the actors (a fresh copy).
	caller() *clusterpb.Caller
	// acquire takes an in-flight slot; false means the origin is gone and
	// wants no reply. release returns the slot. A session blocks its read
	// loop while it has MaxInflight requests out; an HTTP request holds a
	// slot of the node's for its whole life, so its acquire never waits.
	acquire() bool
	release()
	// channelOp is told of each channel request made for the origin
	// (perms: a token join's grant, else nil) before it is sent, and
	// returns what sees its reply on the inbox goroutine before the
	// requester does (nil: nothing). A session's watches and join-token
	// grants follow the replies this way.
	channelOp(op, ch string, perms []string) func(*clusterpb.Reply)
}

// answer receives the reply of one request, exactly once.
type answer func(*clusterpb.Reply)

func errorReply(e *protocol.Error) *clusterpb.Reply {
	return &clusterpb.Reply{Error: &clusterpb.Error{Code: string(e.Code), Message: e.Message, RetryAfterMs: e.RetryAfterMS}}
}

func resultReply(b []byte) *clusterpb.Reply { return &clusterpb.Reply{Result: b} }

var internalReply = errorReply(protocol.Errorf(protocol.CodeInternal, "internal error"))

// logoutReply answers a logout; the answer that gets it also ends the
// session (handleFrame).
var logoutReply = resultReply([]byte("{}"))

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
	op, ok := protocol.LookupOp(req.Op)
	if !ok {
		s.replyError(id, protocol.Errorf(protocol.CodeBadRequest, "unknown op %q", req.Op))
		return
	}
	start := time.Now()
	done := func(rep *clusterpb.Reply) {
		s.observe(op.Name, rep, start)
		if rep == logoutReply {
			// The reply and the close in one step: an event of the
			// user's that comes meanwhile does not reach a client that
			// logged out.
			s.endAfter(resultMessage(id, rep.Result), reasonLogout)
			return
		}
		s.reply(id, rep)
	}
	if perr := s.throttle(op.Name, start); perr != nil {
		done(errorReply(perr))
		return
	}
	if op.Route == protocol.RouteSession {
		if _, perr := op.Decode(args); perr != nil {
			done(errorReply(perr))
			return
		}
		s.sessionOp(op.Name)(s, args, done)
		return
	}
	s.g.dispatch(s, op, args, done)
}

// sessionOp returns the handler of an op the session answers itself
// (protocol.RouteSession), nil for any other. Its args are checked.
func (s *session) sessionOp(name string) func(s *session, args []byte, done answer) {
	switch name {
	case protocol.OpLogout:
		return func(s *session, _ []byte, done answer) { done(logoutReply) }
	case protocol.OpPing:
		return func(_ *session, _ []byte, done answer) { done(resultReply([]byte("{}"))) }
	case protocol.OpPresenceWatch:
		return func(s *session, args []byte, done answer) { s.g.presence.watch(s, args, done) }
	case protocol.OpPresenceUnwatch:
		return func(s *session, args []byte, done answer) { s.g.presence.unwatch(s, args, done) }
	case protocol.OpConnect:
		return func(s *session, _ []byte, done answer) {
			done(errorReply(protocol.Errorf(protocol.CodeInvalidState, "already connected")))
		}
	}
	return nil
}

// dispatch runs one op for o: an arg the op does not take is refused,
// then the op goes where the table routes it; done gets the reply.
//
// The types of the args are checked where they are decoded: here for
// what the gateway reads, by the actor for the rest (the same
// bad_request, naming the field). So the hot ops (a send, a read mark)
// cost the gateway a scan of their keys and the decode of their channel,
// not a second full decode.
func (g *Gateway) dispatch(o origin, op protocol.Op, args []byte, done answer) {
	if perr := op.CheckArgs(args); perr != nil {
		done(errorReply(perr))
		return
	}
	var v any
	if gatewayReads(op, args) {
		v = op.New()
		if perr := protocol.DecodeArgs(args, v); perr != nil {
			done(errorReply(perr))
			return
		}
	}
	c := o.caller()
	if op.AsUser && c.User == "" {
		done(errorReply(protocol.Errorf(protocol.CodeBadRequest, "%s acts as a user: name one with the %s header", op.Name, protocol.HeaderUser)))
		return
	}
	switch op.Route {
	case protocol.RouteUser:
		g.call(o, &clusterpb.Request{Kind: kindUser, Target: c.User, Op: op.Name, Args: args}, done)
	case protocol.RouteGateway:
		gatherOp(op.Name)(g, o, v, done)
	case protocol.RouteChannel:
		g.channelOp(o, op, args, v, done)
	default:
		done(errorReply(protocol.Errorf(protocol.CodeBadRequest, "%s needs a WebSocket session", op.Name)))
	}
}

// gatherOp returns the handler of an op the gateway answers by asking
// several actors (protocol.RouteGateway), nil for any other. v is the
// op's decoded args.
func gatherOp(name string) func(g *Gateway, o origin, v any, done answer) {
	switch name {
	case protocol.OpUsersGet:
		return func(g *Gateway, o origin, v any, done answer) { g.usersGet(o, v.(*protocol.UsersGetArgs), done) }
	case protocol.OpChannelsList:
		return func(g *Gateway, o origin, v any, done answer) {
			g.channelsList(o, v.(*protocol.ChannelsListArgs), done)
		}
	case protocol.OpChannelsQuery:
		return func(g *Gateway, o origin, v any, done answer) {
			g.channelsQuery(o, v.(*protocol.ChannelsQueryArgs), done)
		}
	}
	return nil
}

// gatewayReads reports whether the gateway itself reads an op's args
// (else only their channel, and the actor the rest).
func gatewayReads(op protocol.Op, args []byte) bool {
	if op.Route != protocol.RouteChannel {
		return true
	}
	switch op.Name {
	case protocol.OpChannelCreate, protocol.OpChannelJoin, protocol.OpMembersAdd, protocol.OpMembersInvite:
		return true
	case protocol.OpMessageSend:
		return bytes.Contains(args, []byte(`"attachments"`))
	}
	return false
}

// channelOp routes an op to the channel its args name, after what the
// gateway itself decides: a new channel's id, a join token, that added
// users exist, a send's attachments. v is the decoded args when
// gatewayReads, else nil.
func (g *Gateway) channelOp(o origin, op protocol.Op, args []byte, v any, done answer) {
	switch op.Name {
	case protocol.OpChannelCreate:
		g.channelCreate(o, v.(*protocol.ChannelCreateArgs), args, done)
		return
	case protocol.OpChannelJoin:
		if a := v.(*protocol.JoinArgs); a.Token != "" {
			g.tokenJoin(o, a, done) // joins.go
			return
		}
	}
	var ch string
	if v != nil {
		ch = op.StringArg(v, "channel")
	} else {
		var ref protocol.ChannelRef
		if perr := protocol.DecodeArgs(args, &ref); perr != nil {
			done(errorReply(perr))
			return
		}
		ch = ref.Channel
	}
	if perr := g.checkID("channel", ch); perr != nil {
		done(errorReply(perr))
		return
	}
	req := &clusterpb.Request{Kind: kindChannel, Target: ch, Op: op.Name, Args: args}
	switch op.Name {
	case protocol.OpMembersAdd, protocol.OpMembersInvite:
		g.whenUsersExist(o, v.(*protocol.MembersArgs).Users, req, done)
		return
	case protocol.OpMessageSend:
		if a, _ := v.(*protocol.SendArgs); a != nil && len(a.Attachments) > 0 {
			g.sendWithFiles(o, ch, args, a.Attachments, done) // files.go
			return
		}
	}
	g.call(o, req, done)
}

// channelCreate picks the new channel's id and routes the create to it:
// the id the client chose, the distinct id of a conversation's members,
// or a fresh random one.
func (g *Gateway) channelCreate(o origin, a *protocol.ChannelCreateArgs, args []byte, done answer) {
	target := a.ID
	fresh := false
	switch {
	case a.Distinct:
		if target != "" {
			done(errorReply(protocol.Errorf(protocol.CodeBadRequest, "a distinct conversation's id is derived from its members; leave id out")))
			return
		}
		target = channel.DistinctID(append(append([]string{}, a.Members...), o.caller().User))
	case target == "":
		target = "ch-" + randomID() + randomID()
		fresh = true
	}
	if perr := g.checkID("id", target); perr != nil {
		done(errorReply(perr))
		return
	}
	req := &clusterpb.Request{Kind: kindChannel, Target: target, Op: protocol.OpChannelCreate, Args: args, Fresh: fresh}
	if a.Distinct {
		g.whenUsersExist(o, a.Members, req, done)
		return
	}
	g.call(o, req, done)
}

// whenUsersExist routes req once every user in users is known (has
// connected, or was created by PUT /v1/users/{id}); a user never seen is
// not_found, so a typo never becomes a member. Lists the channel would
// refuse anyway (empty, too long, a malformed id) go to it unchecked, to
// be refused with its own words.
func (g *Gateway) whenUsersExist(o origin, users []string, req *clusterpb.Request, done answer) {
	var uniq []string
	for _, u := range users {
		if g.checkID("users", u) != nil || len(users) > maxUsersPerOp {
			g.call(o, req, done)
			return
		}
		if !contains(uniq, u) {
			uniq = append(uniq, u)
		}
	}
	if !o.acquire() {
		return
	}
	c := o.caller()
	reqs := make([]*clusterpb.Request, len(uniq))
	for i, u := range uniq {
		reqs[i] = &clusterpb.Request{Kind: kindUser, Target: u, Op: user.OpGet, Caller: c}
	}
	g.gather(reqs, func(reps []*clusterpb.Reply) {
		for i, rep := range reps {
			if rep.Error == nil {
				continue
			}
			o.release()
			if protocol.Code(rep.Error.Code) == protocol.CodeNotFound {
				rep = errorReply(protocol.Errorf(protocol.CodeNotFound, "no user %q: a user exists once it has connected or been created with PUT /v1/users/{id}", uniq[i]))
			}
			done(rep)
			return
		}
		g.callHeld(o, req, done)
	})
}

// maxUsersPerOp bounds the users one members.add or members.invite names
// (the channel refuses more: too_large).
const maxUsersPerOp = 100

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// call routes a request for o and answers with what comes back.
func (g *Gateway) call(o origin, req *clusterpb.Request, done answer) {
	if !o.acquire() {
		return
	}
	g.callHeld(o, req, done)
}

// callHeld is call for a caller that holds o's in-flight slot; the reply
// returns it. A request without a Caller is sent as o.
func (g *Gateway) callHeld(o origin, req *clusterpb.Request, done answer) {
	if req.Caller == nil {
		req.Caller = o.caller()
	}
	var seen func(*clusterpb.Reply)
	if req.Kind == kindChannel {
		seen = o.channelOp(req.Op, req.Target, req.Caller.Perms)
	}
	g.cl.Request(req, g.cfg.RequestTimeout, func(rep *clusterpb.Reply) {
		o.release()
		if seen != nil {
			seen(rep)
		}
		done(rep)
	})
}

// checkID validates an id the client chose.
func (g *Gateway) checkID(field, v string) *protocol.Error {
	return checkID(field, v, g.cfg.Limits.MaxIDLen)
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
func (g *Gateway) pageLimit(n int) (int, *protocol.Error) {
	l := g.cfg.Limits
	if n == 0 {
		return l.DefaultHistoryLimit, nil
	}
	if n < 1 || n > l.MaxHistoryLimit {
		return 0, protocol.Errorf(protocol.CodeBadRequest, "limit must be between 1 and %d", l.MaxHistoryLimit)
	}
	return n, nil
}

// A session is an origin.

func (s *session) caller() *clusterpb.Caller {
	return &clusterpb.Caller{User: s.user, Admin: s.admin, Session: s.id, Gateway: s.g.cl.Address(), Name: s.name, Image: s.image}
}

// throttle takes one of the session's requests at now (a ping and a
// logout are free), or refuses the request with when the next may come.
func (s *session) throttle(op string, now time.Time) *protocol.Error {
	if s.requests == nil || op == protocol.OpPing || op == protocol.OpLogout {
		return nil
	}
	return throttled(s.requests, now, "a session makes at most %g requests a second, %d at once: retry after retry_after_ms")
}

// acquire takes an in-flight slot, blocking the read loop while the
// session has MaxInflight requests outstanding.
func (s *session) acquire() bool {
	select {
	case s.inflight <- struct{}{}:
		return true
	default:
	}
	// Full: wait. (Asking the context for Done allocates its channel,
	// which a session that never waits does without.)
	select {
	case s.inflight <- struct{}{}:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *session) release() { <-s.inflight }

// channelOp: a join, watch, unwatch or leave the client issues drops the
// session's join-token grant in the channel, and a token join records
// its own once answered (joins.go); a reply that started or stopped a
// watch updates the hub, on the inbox goroutine, before the client sees
// the reply.
func (s *session) channelOp(op, ch string, perms []string) func(*clusterpb.Reply) {
	var mark uint64
	if perms != nil {
		mark = s.grants.mark()
	} else {
		s.dropGrant(op, ch)
	}
	return func(rep *clusterpb.Reply) {
		if rep.Error != nil {
			return
		}
		if rep.Watching {
			s.g.hub.watch(s, ch, rep.Seq)
		} else if rep.Unwatching {
			s.g.hub.unwatch(s, ch)
		}
		if perms != nil {
			s.grants.setIf(ch, perms, mark)
		}
	}
}

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

func (s *session) observe(op string, rep *clusterpb.Reply, start time.Time) {
	if m := s.g.cfg.Metrics; m.Request != nil {
		m.observe(op, rep, start)
	}
}

func (m *Metrics) observe(op string, rep *clusterpb.Reply, start time.Time) {
	if m.Request == nil {
		return
	}
	code := "ok"
	if rep.Error != nil {
		code = string(replyError(rep).Code)
	}
	m.Request(op, code, time.Since(start))
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

// decodeResult decodes a successful reply's result into v; a result
// that does not decode is an internal error.
func decodeResult(rep *clusterpb.Reply, v any) *clusterpb.Reply {
	if rep.Error != nil {
		return rep
	}
	if json.Unmarshal(rep.Result, v) != nil {
		return internalReply
	}
	return nil
}

// sessionsClosed tells a channel that a session of this gateway ended.
func (g *Gateway) sessionsClosed(ch, session string) {
	g.cl.SendToOwner(kindChannel, ch, clusterpb.Wrap(&clusterpb.Envelope_SessionsClosed{
		SessionsClosed: &clusterpb.SessionsClosed{Channel: ch, Gateway: g.cl.Address(), Sessions: []string{session}},
	}))
}
