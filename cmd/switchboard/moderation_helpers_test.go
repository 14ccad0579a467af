package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/protocol"
)

// testSecret signs the session and join tokens of authNode.
const testSecret = "moderation-test-secret"

// authNode boots a node in production auth mode: every session needs a
// token signed with testSecret.
func authNode(t *testing.T) *Node {
	t.Helper()
	return testNode(t, func(c *Config) { c.DevAuth, c.AuthSecret = false, testSecret })
}

// dialAs connects user to n with a session token (admin: a global admin).
func dialAs(t *testing.T, n *Node, user string, admin bool) *client.Client {
	t.Helper()
	tok, err := auth.NewSigner(testSecret).SessionToken(auth.Session{User: user, Admin: admin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URLs: []string{"ws://" + n.Addr() + "/v1/ws"}, Token: tok, NoReconnect: true})
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mintJoin mints a join token the way `switchboard token` does, through
// the command itself.
func mintJoin(t *testing.T, user, ch, perms string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := token([]string{"--secret", testSecret, "--user", user, "--channel", ch, "--perms", perms, "--ttl", "5m"}, &out, &errb); err != nil {
		t.Fatalf("switchboard token: %v: %s", err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// codeOf returns the wire code of a failed call ("" when it succeeded).
func codeOf(err error) protocol.Code {
	var e *protocol.Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return "not a protocol error: " + protocol.Code(err.Error())
	}
	return ""
}

// expect runs one call and checks its outcome ("" = success).
func expect(t *testing.T, c *client.Client, op string, args any, want protocol.Code) json.RawMessage {
	t.Helper()
	var res json.RawMessage
	err := c.Call(ctxT(t), op, args, &res)
	if got := codeOf(err); got != want {
		t.Fatalf("%s %v: got %q (%v), want %q", op, args, got, err, want)
	}
	return res
}

// a builds op args for channel ch.
func a(ch string, kv ...any) map[string]any {
	m := map[string]any{"channel": ch}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// nextMessage waits for the next message.new on c and returns its channel
// and message.
func nextMessage(t *testing.T, c *client.Client) (string, protocol.Message) {
	t.Helper()
	e := nextEvent(t, c, protocol.EventMessageNew)
	var d protocol.MessageResult
	if err := json.Unmarshal(e.Data, &d); err != nil || d.Message == nil {
		t.Fatalf("message.new %s: %v", e.Data, err)
	}
	return e.Channel, *d.Message
}
