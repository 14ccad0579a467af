package channel

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Join tokens the channel remembers. The gateway verifies a join token's
// signature and expiry; the channel decides what only it can know:
//
//   - A kick, a ban or a removal of a user revokes every join token issued
//     to that user for this channel before it: a token whose iat is in the
//     same second as the last of them, or earlier (or that has no iat),
//     is refused (token_invalid). A token issued later is honoured.
//   - A token with a jti claim is good for one join: the channel keeps the
//     jti until the token expires (and a minute more, for clock skew) and
//     refuses it again (token_invalid).
//
// Both live in the channel's aux table, so they survive restarts and move
// with the channel:
//
//	tokrev\0 <user>               → unix ms of the last revocation
//	jti\0 <jti>                   → unix ms the token expires
//	jtiexp\0 <exp ms> <jti>       → ""   (oldest first, for pruning)
//	jtin                          → how many jtis are kept (decimal)
const (
	nsTokenRevoked = "tokrev\x00"
	nsJTI          = "jti\x00"
	nsJTIExpiry    = "jtiexp\x00"
	jtiCountKey    = "jtin"
)

// TokenGrant is what the gateway tells the channel of the join token a
// channel.join carries (never the token itself).
type TokenGrant struct {
	// IssuedAtMS is the token's iat (0: none).
	IssuedAtMS int64 `json:"iat_ms,omitempty"`
	// ID is the token's jti ("": none, the token may be used again).
	ID string `json:"jti,omitempty"`
	// ExpiresMS is the token's exp.
	ExpiresMS int64 `json:"exp_ms"`
}

// TokenJoinArgs are the args of a channel.join the gateway forwards for a
// join token. Grant counts only with the perms the gateway sends along
// (Caller.Perms); a client cannot send perms.
type TokenJoinArgs struct {
	protocol.WatchArgs
	Grant *TokenGrant `json:"_grant,omitempty"`
}

// Bounds of the jtis a channel keeps.
const (
	// MaxJTILen bounds a jti the channel keeps.
	MaxJTILen = 256
	// jtiSkew keeps a jti past its token's expiry, for the clock skew the
	// gateway tolerates.
	jtiSkew = time.Minute
	// pruneJTIs is how many expired jtis one token join deletes.
	pruneJTIs = 16
)

func tokenRevokedKey(user string) []byte { return append([]byte(nsTokenRevoked), user...) }

func jtiKey(id string) []byte { return append([]byte(nsJTI), id...) }

func jtiExpiryKey(expMS int64, id string) []byte {
	return append(append([]byte(nsJTIExpiry), persistence.U64(uint64(max(expMS, 0)))...), id...)
}

// revokeTokens records that user's join tokens issued until now are void.
func (s *State) revokeTokens(user string, now time.Time) {
	s.auxPut(tokenRevokedKey(user), strconv.AppendInt(nil, now.UnixMilli(), 10))
}

// checkGrant refuses a join token the channel knows to be void: revoked
// by a kick, ban or removal since it was issued, or a single-use token
// used already. It writes nothing.
func (s *State) checkGrant(user string, g *TokenGrant, now time.Time) *protocol.Error {
	v, ok, err := s.auxGet(tokenRevokedKey(user))
	if err != nil {
		return internal(err)
	}
	if ok {
		revoked, _ := strconv.ParseInt(string(v), 10, 64)
		if g.IssuedAtMS == 0 || g.IssuedAtMS/1000 <= revoked/1000 {
			return protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: it was issued before you were removed from %s; ask for a new one", s.id)
		}
	}
	if g.ID == "" {
		return nil
	}
	if len(g.ID) > MaxJTILen {
		return protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: its jti is over %d bytes", MaxJTILen)
	}
	v, ok, err = s.auxGet(jtiKey(g.ID))
	if err != nil {
		return internal(err)
	}
	if ok {
		if exp, _ := strconv.ParseInt(string(v), 10, 64); now.Before(time.UnixMilli(exp).Add(jtiSkew)) {
			return protocol.Errorf(protocol.CodeTokenInvalid, "token invalid: it was used already (its jti makes it single-use)")
		}
	}
	if n := s.jtiCount(); n >= s.cfg.MaxJTIs {
		if oldest, err := s.auxPrefix([]byte(nsJTIExpiry), 1); err == nil && len(oldest) == 1 {
			exp := int64(binary.BigEndian.Uint64(oldest[0].Key[len(nsJTIExpiry):]))
			if now.Before(time.UnixMilli(exp).Add(jtiSkew)) {
				e := protocol.Errorf(protocol.CodeRateLimited, "%s keeps %d single-use join tokens, its bound; retry once one expires", s.id, n)
				e.RetryAfterMS = retryMS(time.UnixMilli(exp).Add(jtiSkew).Sub(now))
				return e
			}
		}
	}
	return nil
}

// useGrant records a single-use token's jti (after the join succeeded),
// and deletes a few jtis that have expired.
func (s *State) useGrant(g *TokenGrant, now time.Time) {
	if g.ID == "" {
		return
	}
	n := s.jtiCount()
	if old, ok, err := s.auxGet(jtiKey(g.ID)); err == nil && ok {
		// Expired and now used again: its index record goes.
		exp, _ := strconv.ParseInt(string(old), 10, 64)
		s.auxDel(jtiExpiryKey(exp, g.ID))
		n--
	}
	s.auxPut(jtiKey(g.ID), strconv.AppendInt(nil, g.ExpiresMS, 10))
	s.auxPut(jtiExpiryKey(g.ExpiresMS, g.ID), nil)
	n++
	if expired, err := s.auxPrefix([]byte(nsJTIExpiry), pruneJTIs); err == nil {
		for _, r := range expired {
			exp := int64(binary.BigEndian.Uint64(r.Key[len(nsJTIExpiry):]))
			id := string(r.Key[len(nsJTIExpiry)+8:])
			if !now.After(time.UnixMilli(exp).Add(jtiSkew)) || id == g.ID {
				break
			}
			s.auxDel(r.Key)
			s.auxDel(jtiKey(id))
			n--
		}
	}
	s.auxPut([]byte(jtiCountKey), strconv.AppendInt(nil, int64(max(n, 0)), 10))
}

// jtiCount is how many jtis the channel keeps.
func (s *State) jtiCount() int {
	v, ok, err := s.auxGet([]byte(jtiCountKey))
	if err != nil || !ok {
		return 0
	}
	n, _ := strconv.Atoi(string(v))
	return n
}

// grantOf returns the token grant of a token join's args (nil: none, or
// not a token join: only the gateway sends perms).
func grantOf(c Caller, args json.RawMessage) *TokenGrant {
	if c.Perms == nil {
		return nil
	}
	var a TokenJoinArgs
	if protocol.DecodeArgs(args, &a) != nil {
		return nil
	}
	return a.Grant
}
