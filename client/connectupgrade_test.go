package client

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// seen is what a gateway saw of a client's connect.
type seen struct {
	offered []string // the upgrade's subprotocols
	frame   []byte   // the client's first frame after the upgrade (unmasked payload)
	opcode  byte
}

// connectGateway answers one upgrade; when take, selecting
// switchboard.v1.json.connected and with the connect's reply right after
// the 101, else with a plain 101 and the reply once a text frame came. It
// reports the subprotocols offered and the client's first frame.
func connectGateway(t *testing.T, take bool) (string, <-chan seen) {
	out := make(chan seen, 1)
	u := requestGateway(t, func(req *http.Request, br *bufio.Reader, conn net.Conn) {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		var s seen
		for p := range strings.SplitSeq(req.Header.Get("Sec-WebSocket-Protocol"), ",") {
			s.offered = append(s.offered, strings.TrimSpace(p))
		}
		defer func() { out <- s }()
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n"
		reply := `{"id":0,"result":{"session_id":"s1","user":{"id":"zoe"}}}`
		frame := append([]byte{0x81, byte(len(reply))}, reply...)
		if take {
			resp += "Sec-WebSocket-Protocol: " + protocol.ConnectedSubprotocol + "\r\n\r\n" + string(frame)
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

// TestConnectGoesInTheUpgrade: the client offers its connect frame as a
// subprotocol (base64url), with switchboard.v1.json.connected, and sends
// no connect frame when the gateway selected that; a gateway that did not
// (an older one) gets the connect as a frame; with ConnectFrame only the
// plain subprotocol is offered.
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
			offered := []string{protocol.ConnectedSubprotocol, subprotocol, protocol.ConnectSubprotocol([]byte(want))}
			if c.inFrame {
				offered = []string{subprotocol}
			}
			if !slices.Equal(s.offered, offered) {
				t.Fatalf("offered %q, want %q", s.offered, offered)
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

// TestFirstRequestsArePackedWithConnect: Options.First go after the
// connect frame in the message the upgrade offers, with ids of their own;
// replies the gateway packs into connect's message (as a server may)
// reach their Done.
func TestFirstRequestsArePackedWithConnect(t *testing.T) {
	offered := make(chan string, 1)
	u := requestGateway(t, func(req *http.Request, br *bufio.Reader, conn net.Conn) {
		for p := range strings.SplitSeq(req.Header.Get("Sec-WebSocket-Protocol"), ",") {
			if p = strings.TrimSpace(p); strings.HasPrefix(p, protocol.ConnectSubprotocolPrefix) {
				b, _ := base64.RawURLEncoding.DecodeString(p[len(protocol.ConnectSubprotocolPrefix):])
				offered <- string(b)
			}
		}
		reply := `{"id":0,"result":{"session_id":"s1","user":{"id":"zoe"}}}` + "\n" + `{"id":1,"result":{"channel":{"id":"stage"},"seq":7}}`
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n" +
			"Sec-WebSocket-Protocol: " + protocol.ConnectedSubprotocol + "\r\n\r\n" + string(append([]byte{0x81, byte(len(reply))}, reply...))
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(resp)); err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, br) // until the client closes
	})
	got := make(chan string, 1)
	cl, err := Dial(testCtx(t), Options{URLs: []string{u}, UserID: "zoe", NoReconnect: true, CloseTimeout: 50 * time.Millisecond,
		First: []Request{{Op: protocol.OpChannelJoin, Args: protocol.JoinArgs{Channel: "stage"}, Done: func(res json.RawMessage, err error) {
			got <- fmt.Sprint(string(res), " ", err)
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const want = `{"id":0,"op":"connect","args":{"user_id":"zoe"}}` + "\n" + `{"id":1,"op":"channel.join","args":{"channel":"stage"}}`
	if o := <-offered; o != want {
		t.Fatalf("offered %q, want %q", o, want)
	}
	if r := <-got; r != `{"channel":{"id":"stage"},"seq":7} <nil>` {
		t.Fatalf("Done got %s", r)
	}
	if seq, ok := cl.LastSeq("stage"); !ok || seq != 7 {
		t.Fatalf("the join's position %d %v, want 7", seq, ok)
	}
}
