package gateway

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Reading a client's frames (RFC 6455 §5). A client's frames are masked;
// messages may be fragmented, with control frames between the fragments.
// The session's read loop reads them from its connection's small buffered
// reader; what it cannot accept ends the session with a close frame of the
// reason's code: 1002 for a broken frame, 1009 for a message over the
// limit.

const (
	opContinuation byte = 0x0
	opBinary       byte = 0x2
)

// maxControlPayload is the largest payload of a control frame.
const maxControlPayload = 125

// closeError is the client's close frame: the session ends.
type closeError struct {
	code   StatusCode // statusNoStatus when the frame had none
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
		fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0f
		n := uint64(hdr[1] & 0x7f)
		switch {
		case hdr[0]&0x70 != 0:
			return nil, s.refuse(statusProtocolError, "reserved bits set (no extension was agreed)")
		case hdr[1]&0x80 == 0:
			return nil, s.refuse(statusProtocolError, "unmasked frame from the client")
		case op > opPong || (op > opBinary && op < opClose):
			return nil, s.refuse(statusProtocolError, fmt.Sprintf("unknown opcode %#x", op))
		case op >= opClose && (!fin || n > maxControlPayload):
			return nil, s.refuse(statusProtocolError, "fragmented or long control frame")
		case op == opContinuation && !inMessage:
			return nil, s.refuse(statusProtocolError, "continuation frame outside a message")
		case (op == opText || op == opBinary) && inMessage:
			return nil, s.refuse(statusProtocolError, "new message inside a fragmented one")
		}
		ext := 0
		switch n {
		case 126:
			ext = 2
		case 127:
			ext = 8
		}
		size := 2 + ext + 4
		if hdr, err = s.br.Peek(size); err != nil {
			return nil, err
		}
		switch ext {
		case 2:
			n = uint64(binary.BigEndian.Uint16(hdr[2:]))
		case 8:
			n = binary.BigEndian.Uint64(hdr[2:])
		}
		key := binary.LittleEndian.Uint32(hdr[2+ext:])
		_, _ = s.br.Discard(size) // buffered: it cannot fail
		if op >= opClose {
			var ctl [maxControlPayload]byte
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
			return nil, s.refuse(statusMessageTooBig, fmt.Sprintf("message over max_frame_bytes (%d)", limit))
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
	case opPing:
		s.queueControl(frameMessage(opPong, p))
	case opPong:
		s.ponged()
	case opClose:
		ce := &closeError{code: statusNoStatus}
		var answer []byte // no code: an empty close frame
		switch {
		case len(p) == 1:
			return s.refuse(statusProtocolError, "one-byte close frame")
		case len(p) >= 2:
			ce.code, ce.reason = StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])
			if !protocol.ValidCloseCode(int(ce.code)) || !utf8.ValidString(ce.reason) {
				return s.refuse(statusProtocolError, "invalid close frame")
			}
			answer = p[:2] // the code, echoed
		}
		// Unless the server has sent its own already.
		s.queueControl(frameMessage(opClose, answer))
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
