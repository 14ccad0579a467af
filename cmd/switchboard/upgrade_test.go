package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestPlaintextListenerUpgradesWithoutServer: on a plaintext --listen,
// WebSocket upgrades take the gateway's own listener (gateway.
// UpgradeListener) and sessions connect, join and get events; on the same
// port keep-alive HTTP requests, a GET of /v1/ws that is not an upgrade
// (426) and an upgrade from a refused origin (403) are answered as
// before.
func TestPlaintextListenerUpgradesWithoutServer(t *testing.T) {
	n := testNode(t)
	if got := reflect.TypeOf(n.ln).String(); got != "*gateway.upgradeListener" {
		t.Fatalf("--listen is a %s, want the gateway's upgrade listener", got)
	}
	ctx := ctxT(t)
	alice, bob := dial(t, n, "alice"), dial(t, n, "bob")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "fast", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	m, err := alice.Send(ctx, protocol.SendArgs{Channel: "fast", Text: "through the fast path"})
	if err != nil {
		t.Fatal(err)
	}
	var got protocol.MessageResult
	if e := nextEvent(t, bob, protocol.EventMessageNew); json.Unmarshal(e.Data, &got) != nil || got.Message.ID != m.ID {
		t.Fatalf("bob got %s, want message %s", e.Data, m.ID)
	}

	conn, err := net.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	for i := range 3 {
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on one connection: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "ok" || resp.Close {
			t.Fatalf("request %d: %d %q close=%v", i, resp.StatusCode, b, resp.Close)
		}
	}

	resp, err := http.Get("http://" + n.Addr() + "/v1/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("GET /v1/ws without an upgrade: %d, want 426", resp.StatusCode)
	}

	req, _ := http.NewRequest("GET", "http://"+n.Addr()+"/v1/ws", nil)
	for k, v := range map[string]string{"Origin": "https://elsewhere.example", "Upgrade": "websocket", "Connection": "Upgrade",
		"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="} {
		req.Header.Set(k, v)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(b) == 0 {
		t.Fatalf("upgrade from another origin: %d %q, want 403 with a reason", resp.StatusCode, b)
	}
}
