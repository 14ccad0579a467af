package gateway

import (
	"encoding/json"
	"time"

	"golang.org/x/time/rate"

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
	login := user.LoginArgs{Name: name, Image: image, PresenceTTLMS: s.g.presence.ttl().Milliseconds()}
	done := make(chan *clusterpb.Reply, 1)
	s.route(kindUser, userID, user.OpLogin, login.Append(nil), func(rep *clusterpb.Reply) { done <- rep })
	var rep *clusterpb.Reply
	select {
	case rep = <-done:
	case <-s.ctx.Done():
		return
	}
	// The user's actor answers {"user": the session's view of the user}
	// (online, admin as the token says), sent on as it is.
	var userJSON []byte
	switch {
	case rep.Error != nil && protocol.Code(rep.Error.Code) == protocol.CodeUnavailable:
		// The user's node is down or the user is moving: the session is
		// still good, its profile comes from the token's claims.
		s.g.log.Info("connect without the user's profile", "user", userID, "err", rep.Error.Message)
		userJSON = protocol.AppendUser(nil, &protocol.User{ID: userID, Name: name, Image: image, Status: protocol.StatusOnline, Admin: admin})
	case rep.Error != nil:
		s.g.presence.closed(s) // not connected after all
		s.replyError(id, replyError(rep))
		return
	default:
		var ok bool
		if userJSON, ok = userOfLogin(rep.Result); !ok {
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
	if r := s.g.cfg.SessionRate; r > 0 {
		s.requests = rate.NewLimiter(rate.Limit(r), s.g.cfg.SessionBurst)
	}
	s.authed.Store(true)
	s.replyResultNow(id, s.g.connectResult(s.id, userJSON, time.Now()))
}

// userOfLogin is the user object of a login result, {"user":{...}}.
func userOfLogin(res []byte) ([]byte, bool) {
	const prefix = `{"user":{`
	if len(res) < len(prefix)+2 || string(res[:len(prefix)]) != prefix || res[len(res)-1] != '}' {
		return nil, false
	}
	u := res[len(prefix)-1 : len(res)-1]
	return u, json.Valid(u)
}

// connectResult encodes a protocol.ConnectResult as encoding/json does,
// with the user object given (encoded) and the limits encoded once.
func (g *Gateway) connectResult(sessionID string, userJSON []byte, now time.Time) []byte {
	b := make([]byte, 0, 64+len(sessionID)+len(userJSON)+len(protocol.TimeLayout)+len(g.limitsJSON))
	b = append(b, `{"session_id":`...)
	b = protocol.AppendString(b, sessionID)
	b = append(b, `,"user":`...)
	b = append(b, userJSON...)
	b = append(b, `,"server_time":"`...)
	b = protocol.At(now).UTC().AppendFormat(b, protocol.TimeLayout)
	b = append(b, `","limits":`...)
	b = append(b, g.limitsJSON...)
	return append(b, '}')
}
