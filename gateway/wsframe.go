package gateway

import (
	"encoding/binary"

	"github.com/switchboard-chat/switchboard/protocol"
)

// WebSocket framing of what the server writes (RFC 6455 §5.2). A
// server's frames are not masked, so a message's bytes are the same on
// every connection: an event is framed once per gateway, and the same
// bytes are queued on every session that gets it and written to each
// socket as they are. Every frame is one whole message (FIN set).

// maxFrameHeader is the longest header of a server frame: two bytes and
// a 64-bit length.
const maxFrameHeader = 10

func frameHeaderLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	}
	return maxFrameHeader
}

// putFrameHeader writes the header of a frame of op with an n-byte
// payload into b, which is frameHeaderLen(n) long.
func putFrameHeader(b []byte, op byte, n int) {
	b[0] = 0x80 | op
	switch len(b) {
	case 2:
		b[1] = byte(n)
	case 4:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
}

// frameMessage returns payload framed as one message of op, in a new
// slice.
func frameMessage(op byte, payload []byte) []byte {
	h := frameHeaderLen(len(payload))
	b := make([]byte, h+len(payload))
	putFrameHeader(b[:h], op, len(payload))
	copy(b[h:], payload)
	return b
}

// newFrameBuf returns an empty buffer with room for a frame's header in
// front: append a payload to it, and frameInPlace makes it a message
// without copying the payload.
func newFrameBuf(sizeHint int) []byte {
	return make([]byte, maxFrameHeader, maxFrameHeader+sizeHint)
}

// frameInPlace frames the payload b holds after newFrameBuf's headroom
// as a text message.
func frameInPlace(b []byte) []byte {
	n := len(b) - maxFrameHeader
	h := frameHeaderLen(n)
	msg := b[maxFrameHeader-h:]
	putFrameHeader(msg[:h], protocol.FrameText, n)
	return msg
}

// closeMessage is the close frame of r: its code and as much of its text
// as a control frame holds.
func closeMessage(r closeReason) []byte {
	text := r.text
	if len(text) > 123 {
		text = text[:123]
	}
	p := make([]byte, 2+len(text))
	binary.BigEndian.PutUint16(p, uint16(r.code))
	copy(p[2:], text)
	return frameMessage(protocol.FrameClose, p)
}

// pingMessage is the ping the gateway sends every session (empty: any
// pong answers it).
var pingMessage = frameMessage(protocol.FramePing, nil)

// frameCache frames the frames of a fan-out once: consecutive calls with
// the same frame (the same bytes in memory) return the same message.
type frameCache struct{ frame, msg []byte }

func (c *frameCache) message(frame []byte) []byte {
	if len(frame) != len(c.frame) || len(frame) == 0 || &frame[0] != &c.frame[0] {
		c.frame, c.msg = frame, frameMessage(protocol.FrameText, frame)
	}
	return c.msg
}
