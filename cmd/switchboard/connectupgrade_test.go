package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/gateway"
	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/protocol"
)

// upgradeConn is a WebSocket opened by hand, to see the upgrade's bytes.
type upgradeConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
	// first is what the first read after the request returned.
	first []byte
}

// upgradeRequest is a WebSocket upgrade request's head for addr, with
// extra header lines (each "Name: value").
func upgradeRequest(addr string, extra ...string) string {
	req := "GET /v1/ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: " + gateway.Subprotocol + "\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	return req + "\r\n"
}

// maskedFrame is payload as a client's masked text frame (under 64 KiB).
func maskedFrame(payload []byte) []byte {
	mask := [4]byte{9, 8, 7, 6}
	f := []byte{0x81, 0x80 | byte(len(payload))}
	if len(payload) >= 126 {
		f = []byte{0x81, 0x80 | 126, byte(len(payload) >> 8), byte(len(payload))}
	}
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	return f
}

// upgradeWith sends an upgrade request with extra header lines (each
// "Name: value") and reads the answer's head.
func upgradeWith(t *testing.T, addr string, extra ...string) *upgradeConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(upgradeRequest(addr, extra...))); err != nil {
		t.Fatal(err)
	}
	u := &upgradeConn{t: t, conn: conn}
	buf := make([]byte, 64<<10)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	u.first = buf[:n]
	u.br = bufio.NewReader(io.MultiReader(bytes.NewReader(u.first), conn))
	if u.resp, err = http.ReadResponse(u.br, nil); err != nil {
		t.Fatalf("the answer: %v", err)
	}
	return u
}

// frame reads the server's next WebSocket message and decodes its one
// frame.
func (u *upgradeConn) frame() map[string]any {
	u.t.Helper()
	body := readServerMessage(u.t, u.br)
	var m map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(body), &m); err != nil {
		u.t.Fatalf("frame %q: %v", body, err)
	}
	return m
}

// readServerMessage reads one unmasked text message of at most 64 KiB
// (a server's) from br.
func readServerMessage(t *testing.T, br *bufio.Reader) []byte {
	t.Helper()
	var head [2]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		t.Fatalf("read a message: %v", err)
	}
	size := int(head[1] & 0x7f)
	if size == 126 {
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			t.Fatal(err)
		}
		size = int(ext[0])<<8 | int(ext[1])
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	return body
}

// send writes one masked text frame.
func (u *upgradeConn) send(payload string) {
	u.t.Helper()
	if _, err := u.conn.Write(maskedFrame([]byte(payload))); err != nil {
		u.t.Fatal(err)
	}
}

// offerConnect is the Sec-WebSocket-Protocol line of an upgrade that
// offers frame as its connect.
func offerConnect(frame string) string {
	return "Sec-WebSocket-Protocol: " + protocol.ConnectedSubprotocol + ", " + gateway.Subprotocol + ", " + protocol.ConnectSubprotocol([]byte(frame))
}

// subprotocolsLine is a Sec-WebSocket-Protocol line offering ps.
func subprotocolsLine(ps ...string) string {
	return "Sec-WebSocket-Protocol: " + strings.Join(ps, ", ")
}

// TestConnectInTheUpgrade: a connect offered in the upgrade's
// subprotocols is answered as the connection's first frame, the 101
// selects switchboard.v1.json.connected, and the 101 and that reply reach
// the client in one write; the session then works as one connected by a
// frame. A connect refused there leaves the connection open for a connect
// frame, as a refused connect frame does; another op offered there is
// refused as before a connect; a bad offer refuses the upgrade.
func TestConnectInTheUpgrade(t *testing.T) {
	n := testNode(t, func(c *Config) { c.Limits.MaxFrameBytes = 2048 })

	t.Run("connected", func(t *testing.T) {
		u := upgradeWith(t, n.Addr(), offerConnect(`{"id":7,"op":"connect","args":{"user_id":"zoe","name":"Zoë 🎉"}}`))
		if p := u.resp.Header.Get("Sec-WebSocket-Protocol"); u.resp.StatusCode != http.StatusSwitchingProtocols || p != protocol.ConnectedSubprotocol {
			t.Fatalf("answer %s, subprotocol %q", u.resp.Status, p)
		}
		if u.br.Buffered() == 0 {
			t.Fatalf("the first read held the 101 only (%d bytes), not the connect's reply with it", len(u.first))
		}
		m := u.frame()
		res, _ := m["result"].(map[string]any)
		user, _ := res["user"].(map[string]any)
		if m["id"] != 7.0 || user["id"] != "zoe" || user["name"] != "Zoë 🎉" {
			t.Fatalf("reply %v", m)
		}
		u.send(`{"id":8,"op":"me"}`)
		if m := u.frame(); m["id"] != 8.0 || m["result"] == nil {
			t.Fatalf("me: %v", m)
		}
		u.send(`{"id":9,"op":"connect","args":{"user_id":"zed"}}`)
		if m := u.frame(); errCode(m) != string(protocol.CodeInvalidState) {
			t.Fatalf("a second connect: %v", m)
		}
	})

	t.Run("refused, then a connect frame", func(t *testing.T) {
		u := upgradeWith(t, n.Addr(), offerConnect(`{"id":1,"op":"connect","args":{"user_id":"no spaces allowed"}}`))
		if u.resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("answer %s", u.resp.Status)
		}
		if m := u.frame(); m["id"] != 1.0 || errCode(m) != string(protocol.CodeBadRequest) {
			t.Fatalf("reply %v", m)
		}
		u.send(`{"id":2,"op":"connect","args":{"user_id":"after"}}`)
		if m := u.frame(); m["id"] != 2.0 || m["result"] == nil {
			t.Fatalf("connect frame: %v", m)
		}
	})

	t.Run("another op", func(t *testing.T) {
		u := upgradeWith(t, n.Addr(), offerConnect(`{"id":3,"op":"me"}`))
		if m := u.frame(); m["id"] != 3.0 || errCode(m) != string(protocol.CodeUnauthenticated) {
			t.Fatalf("reply %v", m)
		}
	})

	t.Run("not JSON", func(t *testing.T) {
		u := upgradeWith(t, n.Addr(), offerConnect("connect please"))
		if m := u.frame(); errCode(m) != string(protocol.CodeBadRequest) {
			t.Fatalf("reply %v", m)
		}
	})

	t.Run("a head over the fast path's buffer", func(t *testing.T) {
		// Served by net/http: the 101 is written at once, the reply after.
		u := upgradeWith(t, n.Addr(), "X-Pad: "+strings.Repeat("p", 5000), offerConnect(`{"id":4,"op":"connect","args":{"user_id":"padded"}}`))
		if u.resp.StatusCode != http.StatusSwitchingProtocols || u.resp.Header.Get("Sec-WebSocket-Protocol") != protocol.ConnectedSubprotocol {
			t.Fatalf("answer %s", u.resp.Status)
		}
		if m := u.frame(); m["id"] != 4.0 || m["result"] == nil {
			t.Fatalf("reply %v", m)
		}
	})

	for _, c := range []struct {
		name  string
		lines []string
	}{
		{"two connects", []string{offerConnect(`{"id":1,"op":"connect","args":{"user_id":"a"}}`), subprotocolsLine(protocol.ConnectSubprotocol([]byte(`{"id":2,"op":"connect","args":{"user_id":"b"}}`)))}},
		{"without switchboard.v1.json.connected", []string{subprotocolsLine(gateway.Subprotocol, protocol.ConnectSubprotocol([]byte(`{"id":1,"op":"connect","args":{"user_id":"a"}}`)))}},
		{"empty", []string{subprotocolsLine(protocol.ConnectedSubprotocol, protocol.ConnectSubprotocolPrefix)}},
		{"not base64url", []string{subprotocolsLine(protocol.ConnectedSubprotocol, protocol.ConnectSubprotocolPrefix+"e30=")}},
		{"over max_frame_bytes", []string{offerConnect(`{"id":1,"op":"connect","args":{"user_id":"a","name":"` + strings.Repeat("n", 2100) + `"}}`)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := upgradeWith(t, n.Addr(), c.lines...)
			body, _ := io.ReadAll(u.resp.Body)
			if u.resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), protocol.ConnectSubprotocolPrefix) {
				t.Fatalf("answer %s %q, want 400 naming the subprotocol", u.resp.Status, body)
			}
		})
	}
	// The five upgrades whose offer was taken are counted (connected, refused then a frame, another op, not JSON, over 4 KiB), the refused not.
	if !bytes.Contains(scrape(t, n), []byte("switchboard_connects_in_upgrade_total 5\n")) {
		t.Fatal("switchboard_connects_in_upgrade_total is not 5")
	}
}

// TestConnectInTheUpgradeWithTokens: a session token offered in the
// upgrade connects; an expired one gets token_expired, as a connect frame does.
func TestConnectInTheUpgradeWithTokens(t *testing.T) {
	const secret = "upgrade-secret"
	n := testNode(t, func(c *Config) { c.DevAuth, c.AuthSecret = false, secret })
	s := auth.NewSigner(secret)
	for _, c := range []struct {
		ttl  time.Duration
		code string
	}{{time.Minute, ""}, {-time.Minute, string(protocol.CodeTokenExpired)}} {
		tok := sessionToken(t, s, "tokened", c.ttl)
		u := upgradeWith(t, n.Addr(), offerConnect(`{"id":1,"op":"connect","args":{"token":"`+tok+`"}}`))
		m := u.frame()
		if errCode(m) != c.code || (c.code == "" && m["result"] == nil) {
			t.Fatalf("ttl %v: reply %v, want code %q", c.ttl, m, c.code)
		}
	}
}

// TestRequestsPackedWithTheConnect: frames a client packs after its
// connect in the upgrade's offer are handled in order right after it,
// and their replies reach the client in the same read as the 101 and
// connect's reply; after a refused connect they are answered
// unauthenticated; a packed frame that gets no reply holds the others
// back a moment only.
func TestRequestsPackedWithTheConnect(t *testing.T) {
	n := testNode(t)
	host := dial(t, n, "host")
	expect(t, host, protocol.OpChannelCreate, map[string]any{"id": "stage", "type": "live"}, "")
	expect(t, host, protocol.OpMessageSend, map[string]any{"channel": "stage", "text": "before", "client_id": "b1"}, "")

	t.Run("connect and join", func(t *testing.T) {
		u := upgradeWith(t, n.Addr(), offerConnect(`{"id":1,"op":"connect","args":{"user_id":"viewer"}}`+"\n"+
			`{"id":2,"op":"channel.join","args":{"channel":"stage"}}`))
		if u.resp.Header.Get("Sec-WebSocket-Protocol") != protocol.ConnectedSubprotocol {
			t.Fatalf("answer %s", u.resp.Status)
		}
		if m := u.frame(); m["id"] != 1.0 || m["result"] == nil {
			t.Fatalf("connect: %v", m)
		}
		m := u.frame()
		res, _ := m["result"].(map[string]any)
		ch, _ := res["channel"].(map[string]any)
		if m["id"] != 2.0 || ch["id"] != "stage" || res["seq"] == nil {
			t.Fatalf("join: %v", m)
		}
		if !bytes.Contains(u.first, []byte(`{"id":2,`)) {
			t.Fatalf("the first read (%d bytes) did not hold the join's reply with the 101 and connect's", len(u.first))
		}
		// The session is a member now: the channel's next message reaches it.
		expect(t, host, protocol.OpMessageSend, map[string]any{"channel": "stage", "text": "after", "client_id": "a1"}, "")
		for {
			m := u.frame()
			if m["event"] == protocol.EventMessageNew {
				data, _ := m["data"].(map[string]any)
				msg, _ := data["message"].(map[string]any)
				if msg["text"] != "after" {
					t.Fatalf("first message event %v", m)
				}
				break
			}
		}
	})

	t.Run("refused connect", func(t *testing.T) {
		u := upgradeWith(t, n.Addr(), offerConnect(`{"id":1,"op":"connect","args":{"user_id":"no spaces allowed"}}`+"\n"+
			`{"id":2,"op":"channel.join","args":{"channel":"stage"}}`))
		if m := u.frame(); m["id"] != 1.0 || errCode(m) != string(protocol.CodeBadRequest) {
			t.Fatalf("connect: %v", m)
		}
		if m := u.frame(); m["id"] != 2.0 || errCode(m) != string(protocol.CodeUnauthenticated) {
			t.Fatalf("join: %v", m)
		}
	})

	t.Run("a frame without a reply", func(t *testing.T) {
		// me answers nothing when it has no id: the hold ends after a
		// moment, and connect's reply goes out then.
		u := upgradeWith(t, n.Addr(), offerConnect(`{"id":1,"op":"connect","args":{"user_id":"typist"}}`+"\n"+
			`{"op":"me"}`))
		if m := u.frame(); m["id"] != 1.0 || m["result"] == nil {
			t.Fatalf("connect: %v", m)
		}
		u.send(`{"id":3,"op":"me"}`)
		if m := u.frame(); m["id"] != 3.0 || m["result"] == nil {
			t.Fatalf("me: %v", m)
		}
	})
}

// TestFirstRequestsGoWithTheConnect: the Go client's Options.First are
// answered to their Done before Dial's caller sees anything of the
// channel, whether the gateway takes the upgrade's offer or gets the
// packed message as a frame (ConnectFrame); when the connect is refused,
// Dial fails and no Done is called.
func TestFirstRequestsGoWithTheConnect(t *testing.T) {
	n := testNode(t)
	host := dial(t, n, "host")
	expect(t, host, protocol.OpChannelCreate, map[string]any{"id": "stage", "type": "live"}, "")
	url := "ws://" + n.Addr() + "/v1/ws"
	for _, inFrame := range []bool{false, true} {
		type outcome struct {
			res json.RawMessage
			err error
		}
		// Replies from different channels may come in either order.
		got, missing := make(chan outcome, 1), make(chan outcome, 1)
		first := []client.Request{
			{Op: protocol.OpChannelJoin, Args: protocol.JoinArgs{Channel: "stage"}, Done: func(res json.RawMessage, err error) { got <- outcome{res, err} }},
			{Op: protocol.OpChannelJoin, Args: protocol.JoinArgs{Channel: "nowhere"}, Done: func(res json.RawMessage, err error) { missing <- outcome{res, err} }},
		}
		c, err := client.Dial(ctxT(t), client.Options{URLs: []string{url}, UserID: "viewer", ConnectFrame: inFrame, First: first})
		if err != nil {
			t.Fatal(err)
		}
		o := <-got
		if seq, ok := protocol.MemberUint(o.res, "seq"); o.err != nil || !ok {
			t.Fatalf("ConnectFrame %v: join: %s %v (seq %d)", inFrame, o.res, o.err, seq)
		}
		if o := <-missing; codeOf(o.err) != protocol.CodeNotFound {
			t.Fatalf("ConnectFrame %v: join of a channel that does not exist: %v", inFrame, o.err)
		}
		expect(t, host, protocol.OpMessageSend, map[string]any{"channel": "stage", "text": "hello", "client_id": fmt.Sprint("h", inFrame)}, "")
		if e := nextEvent(t, c, protocol.EventMessageNew); e.Channel != "stage" {
			t.Fatalf("event %+v", e)
		}
		c.Close()
	}
	called := make(chan struct{}, 1)
	_, err := client.Dial(ctxT(t), client.Options{URLs: []string{url}, UserID: "no spaces allowed", NoReconnect: true,
		First: []client.Request{{Op: protocol.OpChannelJoin, Args: protocol.JoinArgs{Channel: "stage"}, Done: func(json.RawMessage, error) { called <- struct{}{} }}}})
	if codeOf(err) != protocol.CodeBadRequest {
		t.Fatalf("refused connect: %v", err)
	}
	select {
	case <-called:
		t.Fatal("Done was called for a connect that failed")
	default:
	}
}
