package gateway

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/actors/user"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// connect authenticates the session. It runs in the read loop and waits
// for the user's actor, so frames after connect see an authenticated
// session.
func (s *session) connect(id []byte, args []byte) {
	if s.authed.Load() {
		s.replyError(id, protocol.Errorf(protocol.CodeInvalidState, "already connected"))
		return
	}
	op, _ := protocol.LookupOp(protocol.OpConnect)
	v, perr := op.Decode(args)
	if perr != nil {
		s.replyError(id, perr)
		return
	}
	a := v.(*protocol.ConnectArgs)
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
		if perr := s.g.checkID("user_id", a.UserID); perr != nil {
			s.replyError(id, perr)
			return
		}
		userID, name = a.UserID, a.Name
	default:
		s.replyError(id, protocol.Errorf(protocol.CodeUnauthenticated, "token is required"))
		return
	}
	if perr := s.g.checkID("user", userID); perr != nil {
		s.replyError(id, perr)
		return
	}
	if perr := user.CheckClaims(name, image, s.g.cfg.Limits); perr != nil {
		s.replyError(id, perr)
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
	if !s.g.authenticated(s) {
		s.g.presence.closed(s)
		s.replyError(id, &protocol.Error{Code: protocol.CodeUnavailable, Message: "server at its session limit: reconnect later or elsewhere", RetryAfterMS: 1000})
		s.end(reasonFull)
		return
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
