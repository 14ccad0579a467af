package protocol

import (
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// What the Go client and the gateway share of WebSocket framing (RFC
// 6455).

// ValidCloseCode reports whether a WebSocket close frame may carry code
// (RFC 6455 §7.4: 1004–1006 and 1015 are never sent; 3000–4999 are
// registered and private codes, Switchboard's own among them).
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// MaskBytes XORs b, a frame's payload from its first byte, with the
// frame's masking key (RFC 6455 §5.3; key is the header's four bytes read
// little-endian, so its low byte is the first), eight bytes at a time. It
// masks a client's payload and unmasks it alike.
func MaskBytes(key uint32, b []byte) {
	k := uint64(key) | uint64(key)<<32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k)
	}
	for ; i < len(b); i++ {
		b[i] ^= byte(key >> (8 * (i & 3)))
	}
}

// Subprotocol is the WebSocket subprotocol of the JSON encoding, which
// the gateway speaks and the Go client asks for.
const Subprotocol = "switchboard.v1.json"

// A connect in the upgrade (docs/protocol.md, "Connect in the upgrade"):
// beside the encoding's subprotocol a client offers
// ConnectSubprotocol(its connect frame) and ConnectedSubprotocol. A server
// that takes the frame selects ConnectedSubprotocol, and the frame's reply
// is the first frame it sends; one that selects the plain subprotocol (an
// older server) took nothing, and the client sends its connect as a frame.
// Subprotocols are what a browser's WebSocket can send and read of the
// handshake: it sets no other header and shows none of the answer's.
const (
	ConnectedSubprotocol     = "switchboard.v1.json.connected"
	ConnectSubprotocolPrefix = "switchboard.connect."
)

// ConnectSubprotocol is the subprotocol that carries frame: the prefix and
// the frame in base64url without padding (a subprotocol is an HTTP token).
func ConnectSubprotocol(frame []byte) string {
	return ConnectSubprotocolPrefix + base64.RawURLEncoding.EncodeToString(frame)
}

// WebSocket opcodes (RFC 6455 §5.2).
const (
	FrameContinuation byte = 0x0
	FrameText         byte = 0x1
	FrameBinary       byte = 0x2
	FrameClose        byte = 0x8
	FramePing         byte = 0x9
	FramePong         byte = 0xa
)

// MaxControlPayload is the largest payload of a control frame (§5.5).
const MaxControlPayload = 125

// Close codes of RFC 6455 (§7.4.1) that the gateway and the Go client
// send or read; docs/protocol.md lists them with Switchboard's own (4000
// and up, the gateway's).
const (
	CloseNormalClosure   = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseNoStatus        = 1005 // a close frame without a code (§7.1.5; never sent)
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseInternalError   = 1011
	CloseTryAgainLater   = 1013
)

// FrameViolation returns why a frame may not be read, judging by its
// header's first two bytes b0 and b1, or "" when nothing forbids it: its
// reserved bits are set (no extension is agreed), it is masked the wrong
// way (fromClient: the reader is the server, and a client's frames are
// masked, a server's never, §5.1), its opcode is unknown, it is a
// fragmented or long control frame, or a continuation outside a message
// or a new message inside a fragmented one (inMessage: one is in
// progress). The reader closes the connection with 1002 and this text.
func FrameViolation(b0, b1 byte, fromClient, inMessage bool) string {
	fin, op, n := b0&0x80 != 0, b0&0x0f, b1&0x7f
	switch {
	case b0&0x70 != 0:
		return "reserved bits set (no extension was agreed)"
	case fromClient && b1&0x80 == 0:
		return "unmasked frame from the client"
	case !fromClient && b1&0x80 != 0:
		return "masked frame from the server"
	case op > FramePong || (op > FrameBinary && op < FrameClose):
		return "unknown opcode 0x" + strconv.FormatUint(uint64(op), 16)
	case op >= FrameClose && (!fin || n > MaxControlPayload):
		return "fragmented or long control frame"
	case op == FrameContinuation && !inMessage:
		return "continuation frame outside a message"
	case op != FrameContinuation && op < FrameClose && inMessage:
		return "new message inside a fragmented one"
	}
	return ""
}

// AppendFrameHeader appends to b the header of a final frame of op with
// an n-byte payload (RFC 6455 §5.2: its length in 7, 16 or 64 bits), the
// mask bit set when masked (a client's frame: the caller appends the
// masking key).
func AppendFrameHeader(b []byte, op byte, n int, masked bool) []byte {
	var m byte
	if masked {
		m = 0x80
	}
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, m|byte(n))
	case n <= 0xffff:
		return append(b, m|126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, m|127), uint64(n))
	}
}

// FrameHeaderLen returns the length of the header of a frame whose
// second byte is b1: 2 bytes, 2 or 8 more for an extended payload length,
// and 4 more for a masking key when the frame is masked.
func FrameHeaderLen(b1 byte) int {
	h := 2
	switch b1 & 0x7f {
	case 126:
		h += 2
	case 127:
		h += 8
	}
	if b1&0x80 != 0 {
		h += 4
	}
	return h
}

// FramePayloadLen returns the payload length a frame header states; hdr
// holds at least FrameHeaderLen(hdr[1]) bytes.
func FramePayloadLen(hdr []byte) uint64 {
	switch n := hdr[1] & 0x7f; n {
	case 126:
		return uint64(binary.BigEndian.Uint16(hdr[2:]))
	case 127:
		return binary.BigEndian.Uint64(hdr[2:])
	default:
		return uint64(n)
	}
}

// ParseClose reads a close frame's payload: its code (CloseNoStatus when
// it is empty) and reason, or why the frame is refused (a one-byte
// payload, a code no endpoint sends, a reason that is not UTF-8).
func ParseClose(p []byte) (code int, reason string, violation string) {
	switch {
	case len(p) == 0:
		return CloseNoStatus, "", ""
	case len(p) == 1:
		return 0, "", "one-byte close frame"
	}
	code, reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
	if !ValidCloseCode(code) || !utf8.ValidString(reason) {
		return 0, "", "invalid close frame"
	}
	return code, reason, ""
}
