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

// frameMessage returns payload framed as one message of op, in a new
// slice.
func frameMessage(op byte, payload []byte) []byte {
	b := make([]byte, 0, frameHeaderLen(len(payload))+len(payload))
	return append(protocol.AppendFrameHeader(b, op, len(payload), false), payload...)
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
	protocol.AppendFrameHeader(msg[:0], protocol.FrameText, n, false) // into msg[:h]
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
