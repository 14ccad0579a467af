package channel

import (
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

func tokenJoin(ch string, g TokenGrant) TokenJoinArgs {
	return TokenJoinArgs{WatchArgs: protocol.WatchArgs{Channel: ch}, Grant: &g}
}

// TestSingleUseTokensAreBounded: a channel keeps at most MaxJTIs unexpired
// jtis (past it, token joins with a jti are rate limited until one
// expires), and expired ones are pruned as new ones come.
func TestSingleUseTokensAreBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxJTIs = 2 })
	h.do(caller("owner"), protocol.OpChannelCreate, map[string]any{"type": protocol.TypePrivate})
	exp := h.now.Add(time.Minute).UnixMilli()
	for i, u := range []string{"u1", "u2"} {
		ok[map[string]any](h, tokenCaller(u, PermRead), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{ID: "j" + u, ExpiresMS: exp, IssuedAtMS: h.now.UnixMilli()}))
		if n := h.s.jtiCount(); n != i+1 {
			t.Fatalf("%d jtis kept, want %d", n, i+1)
		}
	}
	err := h.fail(tokenCaller("u3", PermRead), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{ID: "ju3", ExpiresMS: exp}), protocol.CodeRateLimited)
	if err.RetryAfterMS <= 0 {
		t.Errorf("no retry_after_ms: %v", err)
	}
	// A token without a jti is not bounded.
	ok[map[string]any](h, tokenCaller("u4", PermRead), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{ExpiresMS: exp}))
	// Once they expire (and the skew passes), new ones take their place.
	h.tick(time.Minute + jtiSkew + time.Second)
	later := h.now.Add(time.Minute).UnixMilli()
	ok[map[string]any](h, tokenCaller("u3", PermRead), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{ID: "ju3", ExpiresMS: later}))
	if n := h.s.jtiCount(); n != 1 {
		t.Fatalf("%d jtis kept after pruning, want 1", n)
	}
	// An expired jti is forgotten: a new token reusing it is accepted once.
	ok[map[string]any](h, tokenCaller("u1", PermRead), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{ID: "ju1", ExpiresMS: later}))
	h.fail(tokenCaller("u1", PermRead), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{ID: "ju1", ExpiresMS: later}), protocol.CodeTokenInvalid)
	h.reload()
	h.fail(tokenCaller("u3", PermRead), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{ID: "ju3", ExpiresMS: later}), protocol.CodeTokenInvalid)
}

// TestKickRevokesEarlierTokens: tokens issued in or before the second of
// a kick are refused; a grant is only read with perms (a client cannot
// send one).
func TestKickRevokesEarlierTokens(t *testing.T) {
	h := newHarness(t)
	h.do(caller("owner"), protocol.OpChannelCreate, map[string]any{"type": protocol.TypePrivate})
	iat := h.now.UnixMilli()
	ok[map[string]any](h, tokenCaller("bob", PermWrite), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{IssuedAtMS: iat}))
	h.tick(300 * time.Millisecond)
	ok[map[string]any](h, caller("owner"), protocol.OpMemberKick, map[string]any{"channel": channelID, "user": "bob"})
	h.fail(tokenCaller("bob", PermWrite), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{IssuedAtMS: iat}), protocol.CodeTokenInvalid)
	h.fail(tokenCaller("bob", PermWrite), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{IssuedAtMS: h.now.UnixMilli()}), protocol.CodeTokenInvalid)
	h.fail(tokenCaller("bob", PermWrite), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{}), protocol.CodeTokenInvalid)
	ok[map[string]any](h, tokenCaller("bob", PermWrite), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{IssuedAtMS: h.now.Add(time.Second).UnixMilli()}))
	// Without perms the args' grant is ignored: a plain join of a private
	// channel stays forbidden.
	ok[map[string]any](h, caller("owner"), protocol.OpMemberKick, map[string]any{"channel": channelID, "user": "bob"})
	h.fail(caller("bob"), protocol.OpChannelJoin, tokenJoin(channelID, TokenGrant{IssuedAtMS: h.now.Add(time.Hour).UnixMilli()}), protocol.CodeForbidden)
}
