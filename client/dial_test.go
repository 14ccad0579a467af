package client

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestDialSkipsGatewaysThatCannotTakeTheSession: Dial passes over a
// gateway nothing listens on, one that accepts but never answers (a
// paused process) and one that answers unavailable, and connects to the
// next; a refusal every gateway would give ends it at once.
func TestDialSkipsGatewaysThatCannotTakeTheSession(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ws://" + ln.Addr().String() + "/v1/ws"
	ln.Close()
	paused := newFakeGateway(t, "paused", 0)
	paused.gate.pause()
	busy := refusingGateway(t, protocol.CodeUnavailable)
	live := newFakeGateway(t, "live", 0)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{URLs: []string{dead, paused.url(), busy, live.url()}, UserID: "u", StallTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	var res json.RawMessage
	if err := c.Call(ctx, protocol.OpChannelGet, protocol.ChannelRef{Channel: "c"}, &res); err != nil {
		t.Fatal(err)
	}
	if s := serverOf(t, res); s != "live" {
		t.Fatalf("connected to %q, want the live gateway", s)
	}

	denied := refusingGateway(t, protocol.CodeTokenInvalid)
	_, err = Dial(ctx, Options{URLs: []string{dead, denied, live.url()}, UserID: "u", StallTimeout: 200 * time.Millisecond})
	var perr *protocol.Error
	if !errors.As(err, &perr) || perr.Code != protocol.CodeTokenInvalid {
		t.Fatalf("dial past a refusal: %v, want token_invalid", err)
	}
	if live.connects.Load() != 1 {
		t.Fatal("Dial went on past a refusal every gateway would give")
	}
	tokens := 0
	_, err = Dial(ctx, Options{URLs: []string{dead, live.url()}, StallTimeout: 200 * time.Millisecond,
		TokenFunc: func() (string, error) { tokens++; return "", errors.New("no token") }})
	if err == nil || !strings.Contains(err.Error(), "no token") || tokens != 1 || live.connects.Load() != 1 {
		t.Fatalf("dial without a token: %v (%d tokens asked)", err, tokens)
	}
}

// refusingGateway answers every connect with an error of code.
func refusingGateway(t *testing.T, code protocol.Code) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answerConnect(w, r, `{"id":0,"error":{"code":"`+string(code)+`","message":"no"}}`)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}
