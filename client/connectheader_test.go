package client

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// seen is what a gateway saw of a client's connect.
type seen struct {
	header string // the upgrade's Switchboard-Connect
	frame  []byte // the client's first frame after the upgrade (unmasked payload)
	opcode byte
}

// connectGateway answers one upgrade; when take, with Switchboard-Connect
// set and the connect's reply right after the 101, else with a plain 101
// and the reply once a text frame came. It reports the header and the
// client's first frame.
func connectGateway(t *testing.T, take bool) (string, <-chan seen) {
	out := make(chan seen, 1)
	u := requestGateway(t, func(req *http.Request, br *bufio.Reader, conn net.Conn) {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		s := seen{header: req.Header.Get(protocol.ConnectHeader)}
		defer func() { out <- s }()
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n"
		reply := `{"id":0,"result":{"session_id":"s1","user":{"id":"zoe"}}}`
		frame := append([]byte{0x81, byte(len(reply))}, reply...)
		if take {
			resp += protocol.ConnectHeader + ": " + protocol.ConnectTaken + "\r\n\r\n" + string(frame)
		} else {
			resp += "\r\n"
		}
		if _, err := conn.Write([]byte(resp)); err != nil {
			return
		}
		// The client's first frame (short: a connect or a close).
		var h [6]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return
		}
		s.opcode = h[0] & 0x0f
		s.frame = make([]byte, h[1]&0x7f)
		if _, err := io.ReadFull(br, s.frame); err != nil {
			return
		}
		for i := range s.frame {
			s.frame[i] ^= h[2+i%4]
		}
		if !take && s.opcode == protocol.FrameText {
			_, _ = conn.Write(frame)
		}
	})
	return u, out
}

// TestConnectGoesInTheUpgrade: the client sends its connect in the
// upgrade's Switchboard-Connect header (ASCII, the same frame), and sends
// no connect frame when the gateway took it; a gateway that did not
// (no Switchboard-Connect in its 101) gets the connect as a frame; with
// ConnectFrame the header is not sent.
func TestConnectGoesInTheUpgrade(t *testing.T) {
	const want = `{"id":0,"op":"connect","args":{"user_id":"zoe","name":"Zoë"}}`
	for _, c := range []struct {
		name          string
		take, inFrame bool
	}{{"taken", true, false}, {"not taken", false, false}, {"ConnectFrame", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			u, got := connectGateway(t, c.take)
			cl, err := Dial(testCtx(t), Options{URLs: []string{u}, UserID: "zoe", Name: "Zoë", NoReconnect: true,
				CloseTimeout: 50 * time.Millisecond, ConnectFrame: c.inFrame})
			if err != nil {
				t.Fatal(err)
			}
			if id := cl.Session().SessionID; id != "s1" {
				t.Fatalf("session %q", id)
			}
			cl.Close()
			s := <-got
			switch {
			case c.inFrame && s.header != "":
				t.Fatalf("ConnectFrame sent the header %q", s.header)
			case !c.inFrame && s.header != `{"id":0,"op":"connect","args":{"user_id":"zoe","name":"Zo\u00eb"}}`:
				t.Fatalf("header %q", s.header)
			}
			if !c.inFrame {
				var a, b any
				if json.Unmarshal([]byte(s.header), &a) != nil || json.Unmarshal([]byte(want), &b) != nil || string(mustJSON(a)) != string(mustJSON(b)) {
					t.Fatalf("the header means %v, want %s", a, want)
				}
			}
			if c.take && s.opcode != protocol.FrameClose {
				t.Fatalf("after a taken connect the client's first frame is opcode %#x %q, want its close", s.opcode, s.frame)
			}
			if !c.take && (s.opcode != protocol.FrameText || string(s.frame) != want) {
				t.Fatalf("first frame opcode %#x %q, want the connect %s", s.opcode, s.frame, want)
			}
		})
	}
}
