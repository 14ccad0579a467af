package gateway

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Reading a client's frames (RFC 6455 §5). A client's frames are masked;
// messages may be fragmented, with control frames between the fragments.
// The session's read loop reads them from its connection's small buffered
// reader; what it cannot accept ends the session with a close frame of the
// reason's code: 1002 for a broken frame, 1009 for a message over the
// limit.

// closeError is the client's close frame: the session ends.
type closeError struct {
	code   StatusCode // protocol.CloseNoStatus when the frame had none
	reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("websocket: the client closed (%d %q)", e.code, e.reason)
}

// frameError is a frame the session refused: it has queued a close frame
// of code, and ends.
type frameError struct {
	code StatusCode
	msg  string
}

func (e *frameError) Error() string {
	return fmt.Sprintf("websocket: %s (closed with %d)", e.msg, e.code)
}

// readMessage reads frames until a whole data message (its payload, its
// fragments joined, appended to buf[:0]) or a control frame outside a
// message (nil: nothing to handle; the caller then holds no buffer while
// it waits for the next). Pings are answered, pongs noted, and a close
// frame answered and returned as a *closeError.
func (s *session) readMessage(buf []byte) ([]byte, error) {
	msg := buf[:0]
	inMessage := false
	for {
		// The header is read in place (Peek: the reader's buffer, which
		// is larger than any header), without a copy or an allocation.
		hdr, err := s.br.Peek(2)
		if err != nil {
			return nil, err
		}
		if v := protocol.FrameViolation(hdr[0], hdr[1], true, inMessage); v != "" {
			return nil, s.refuse(protocol.CloseProtocolError, v)
		}
		fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0f
		size := protocol.FrameHeaderLen(hdr[1]) // masked: FrameViolation saw to it
		if hdr, err = s.br.Peek(size); err != nil {
			return nil, err
		}
		n := protocol.FramePayloadLen(hdr)
		key := binary.LittleEndian.Uint32(hdr[size-4:])
		_, _ = s.br.Discard(size) // buffered: it cannot fail
		if op >= protocol.FrameClose {
			var ctl [protocol.MaxControlPayload]byte
			p := ctl[:n]
			if _, err := io.ReadFull(s.br, p); err != nil {
				return nil, err
			}
			protocol.MaskBytes(key, p)
			if err := s.control(op, p); err != nil || !inMessage {
				return nil, err
			}
			continue
		}
		if limit := uint64(s.g.cfg.Limits.MaxFrameBytes); n > limit-uint64(len(msg)) {
			return nil, s.refuse(protocol.CloseMessageTooBig, fmt.Sprintf("message over max_frame_bytes (%d)", limit))
		}
		start := len(msg)
		msg = slices.Grow(msg, int(n))[:start+int(n)]
		if _, err := io.ReadFull(s.br, msg[start:]); err != nil {
			return nil, err
		}
		protocol.MaskBytes(key, msg[start:])
		if fin {
			return msg, nil
		}
		inMessage = true
	}
}

// control handles a control frame's payload p (unmasked).
func (s *session) control(op byte, p []byte) error {
	switch op {
	case protocol.FramePing:
		s.queueControl(frameMessage(protocol.FramePong, p))
	case protocol.FramePong:
		s.ponged()
	case protocol.FrameClose:
		code, reason, v := protocol.ParseClose(p)
		if v != "" {
			return s.refuse(protocol.CloseProtocolError, v)
		}
		ce := &closeError{code: StatusCode(code), reason: reason}
		answer := p[:min(len(p), 2)] // the code, echoed (none: an empty close frame)
		// Unless the server has sent its own already.
		s.queueControl(frameMessage(protocol.FrameClose, answer))
		return ce
	}
	return nil
}

// refuse queues a close frame of code and msg and returns the error that
// ends the session.
func (s *session) refuse(code StatusCode, msg string) error {
	s.queueControl(closeMessage(closeReason{code, msg}))
	return &frameError{code, msg}
}
