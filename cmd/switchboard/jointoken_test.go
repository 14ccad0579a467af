package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/protocol"
)

// tokenConn is a raw session of a node with an auth key.
type tokenConn struct {
	*rawConn
	id int
}

func tokenDial(t *testing.T, addr string, s *auth.Signer, user string) *tokenConn {
	t.Helper()
	c := &tokenConn{rawConn: rawDialAddr(t, addr), id: 1}
	if m := c.connectToken(sessionToken(t, s, user, time.Hour)); m["result"] == nil {
		t.Fatalf("connect %s: %v", user, m)
	}
	return c
}

func (c *tokenConn) do(op string, args any) map[string]any {
	c.t.Helper()
	c.id++
	b, _ := json.Marshal(map[string]any{"id": c.id, "op": op, "args": args})
	c.write(string(b))
	return c.reply()
}

func (c *tokenConn) ok(op string, args any) {
	c.t.Helper()
	if m := c.do(op, args); m["result"] == nil {
		c.t.Fatalf("%s %v: %v", op, args, m)
	}
}

func (c *tokenConn) refused(op string, args any, code protocol.Code) {
	c.t.Helper()
	if m := c.do(op, args); errCode(m) != string(code) {
		c.t.Fatalf("%s %v: %v, want %s", op, args, m, code)
	}
}

// TestJoinTokensAreRevokedAndSingleUse: a kick, a ban or a removal voids
// the join tokens issued to that user for that channel before it (a
// later one works), and a token with a jti is good for one join; both
// hold across a restart of the node.
func TestJoinTokensAreRevokedAndSingleUse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node process")
	}
	t.Parallel()
	const secret = "join-token-secret"
	signer := auth.NewSigner(secret)
	args := []string{"--listen", "127.0.0.1:0", "--cluster-bind", "127.0.0.1:0", "--data", t.TempDir(),
		"--failure-detection", "fast", "--auth-secret", secret, "--node-name", "tokens"}
	p := startProc(t, args...)
	// issued mints a join token issued at iat (a real issuer's tokens
	// minted after a kick carry a later second).
	issued := func(user, jti string, iat time.Time) string {
		tok, err := signer.JoinToken(auth.Join{User: user, Channel: "vip", Perms: []string{"read", "write"}, ID: jti, IssuedAt: iat}, 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	join := func(tok string) map[string]any { return map[string]any{"channel": "vip", "token": tok} }
	alice := tokenDial(t, p.addr, signer, "alice")
	alice.ok("channel.create", map[string]any{"id": "vip", "type": "private"})
	bob := tokenDial(t, p.addr, signer, "bob")

	old := issued("bob", "", time.Now())
	bob.ok("channel.join", join(old))
	alice.ok("member.kick", map[string]any{"channel": "vip", "user": "bob"})
	bob.refused("channel.join", join(old), protocol.CodeTokenInvalid)
	// A token issued after the kick works (the next second: iat counts
	// in seconds, and one of the kick's second is refused too).
	later := issued("bob", "", time.Now().Add(time.Second))
	bob.ok("channel.join", join(later))
	bob.ok("channel.join", join(later)) // no jti: good more than once

	// A removal and a ban (even once lifted) void earlier tokens too.
	for _, u := range []string{"dave", "erin"} {
		c := tokenDial(t, p.addr, signer, u)
		tok := issued(u, "", time.Now())
		c.ok("channel.join", join(tok))
		if u == "dave" {
			alice.ok("members.remove", map[string]any{"channel": "vip", "users": []string{u}})
		} else {
			alice.ok("member.ban", map[string]any{"channel": "vip", "user": u, "duration_min": 0})
			alice.ok("member.unban", map[string]any{"channel": "vip", "user": u})
		}
		c.refused("channel.join", join(tok), protocol.CodeTokenInvalid)
	}

	// Single use.
	carol := tokenDial(t, p.addr, signer, "carol")
	once := issued("carol", "once-1", time.Now())
	carol.ok("channel.join", join(once))
	carol.ok("channel.leave", map[string]any{"channel": "vip"})
	carol.refused("channel.join", join(once), protocol.CodeTokenInvalid)
	carol.ok("channel.join", join(issued("carol", "once-2", time.Now())))

	// Both hold across a restart.
	p.kill()
	p = startProc(t, args...)
	bob = tokenDial(t, p.addr, signer, "bob")
	bob.refused("channel.join", join(old), protocol.CodeTokenInvalid)
	bob.ok("channel.join", join(later))
	carol = tokenDial(t, p.addr, signer, "carol")
	carol.ok("channel.leave", map[string]any{"channel": "vip"})
	for _, jti := range []string{"once-1", "once-2"} {
		carol.refused("channel.join", join(issued("carol", jti, time.Now().Add(-time.Minute))), protocol.CodeTokenInvalid)
	}
	carol.ok("channel.join", join(issued("carol", fmt.Sprint("once-", time.Now().UnixNano()), time.Now())))
}
