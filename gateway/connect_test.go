package gateway

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestConnectResultIsEncodingJSON: the connect result, assembled from the
// user object the user's actor encoded and the limits encoded once, is
// byte for byte what encoding/json writes for protocol.ConnectResult.
func TestConnectResultIsEncodingJSON(t *testing.T) {
	t.Parallel()
	limits := protocol.DefaultLimits()
	limits.MaxTags = 3
	lj, _ := json.Marshal(limits)
	g := &Gateway{limitsJSON: lj}
	now := time.Date(2026, 12, 6, 9, 30, 1, 234567891, time.FixedZone("x", 3600))
	type plainUser protocol.User
	for _, u := range []protocol.User{
		{ID: "alice", Status: protocol.StatusOnline},
		{ID: "bob", Name: "B <&> \"b\"", Image: "i.png", Description: "d\n", Metadata: json.RawMessage(`{"k":["<v>"]}`),
			Status: protocol.StatusOnline, LastSeen: protocol.At(now), Admin: true, CreatedAt: protocol.At(now), UpdatedAt: protocol.At(now)},
	} {
		login, _ := json.Marshal(struct {
			User plainUser `json:"user"`
		}{plainUser(u)})
		uj, ok := userOfLogin(login)
		if !ok {
			t.Fatalf("login result %s refused", login)
		}
		got := g.connectResult("s-1<", uj, now)
		want, _ := json.Marshal(struct {
			SessionID  string          `json:"session_id"`
			User       plainUser       `json:"user"`
			ServerTime protocol.Time   `json:"server_time"`
			Limits     protocol.Limits `json:"limits"`
		}{"s-1<", plainUser(u), protocol.At(now), limits})
		if string(got) != string(want) {
			t.Fatalf("connect result\n%s\nwant\n%s", got, want)
		}
	}
}

// TestUserOfLogin: only a login result's shape is taken; anything else
// fails the connect (internal) rather than reaching the client.
func TestUserOfLogin(t *testing.T) {
	t.Parallel()
	for res, want := range map[string]string{
		`{"user":{"id":"a"}}`:             `{"id":"a"}`,
		`{"user":{"id":"a"},"x":{"b":1}}`: "",
		`{"user":{"id":"a"`:               "",
		`{"usr":{"id":"a"}}`:              "",
		`{"user":{}}`:                     "{}",
		`{"user":{"id":}}`:                "",
		``:                                "",
	} {
		u, ok := userOfLogin([]byte(res))
		if ok != (want != "") || string(u) != want && ok {
			t.Errorf("%s: %s %v, want %q", res, u, ok, want)
		}
	}
}
