package protocol

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestMaskBytes: the word-at-a-time masking agrees with the definition
// (RFC 6455 §5.3) at every length.
func TestMaskBytes(t *testing.T) {
	key := [4]byte{1, 2, 0x80, 0xff}
	for n := range 40 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		got := bytes.Clone(b)
		MaskBytes(binary.LittleEndian.Uint32(key[:]), got)
		for i := range b {
			if got[i] != b[i]^key[i%4] {
				t.Fatalf("length %d, byte %d: %#x, want %#x", n, i, got[i], b[i]^key[i%4])
			}
		}
	}
}

func TestFrameViolation(t *testing.T) {
	const fin, mask = 0x80, 0x80
	for _, tc := range []struct {
		name              string
		b0, b1            byte
		fromClient, inMsg bool
		want              string // "" for a frame that may be read
	}{
		{"client text", fin | 0x1, mask | 5, true, false, ""},
		{"server text", fin | 0x1, 5, false, false, ""},
		{"first fragment", 0x2, mask | 126, true, false, ""},
		{"continuation", 0x0, mask | 127, true, true, ""},
		{"ping inside a message", fin | 0x9, mask | 125, true, true, ""},
		{"empty close", fin | 0x8, 0, false, false, ""},
		{"reserved bit", fin | 0x40 | 0x1, mask | 1, true, false, "reserved bits set (no extension was agreed)"},
		{"unmasked from a client", fin | 0x1, 1, true, false, "unmasked frame from the client"},
		{"masked from the server", fin | 0x1, mask | 1, false, false, "masked frame from the server"},
		{"data opcode 3", fin | 0x3, mask, true, false, "unknown opcode 0x3"},
		{"control opcode 0xb", fin | 0xb, mask, true, false, "unknown opcode 0xb"},
		{"fragmented ping", 0x9, mask, true, false, "fragmented or long control frame"},
		{"long pong", fin | 0xa, 126, false, false, "fragmented or long control frame"},
		{"continuation first", fin, mask | 1, true, false, "continuation frame outside a message"},
		{"text inside a message", fin | 0x1, 1, false, true, "new message inside a fragmented one"},
		{"binary inside a message", 0x2, mask | 1, true, true, "new message inside a fragmented one"},
	} {
		if got := FrameViolation(tc.b0, tc.b1, tc.fromClient, tc.inMsg); got != tc.want {
			t.Errorf("%s: FrameViolation(%#x, %#x) = %q, want %q", tc.name, tc.b0, tc.b1, got, tc.want)
		}
	}
}

func TestParseClose(t *testing.T) {
	for _, tc := range []struct {
		p         string
		code      int
		reason, v string
	}{
		{"", CloseNoStatus, "", ""},
		{"\x03\xe8", 1000, "", ""},
		{"\x0f\xa0bye", 4000, "bye", ""},
		{"\x03", 0, "", "one-byte close frame"},
		{"\x03\xed", 0, "", "invalid close frame"}, // 1005: never sent
		{"\x03\xe8\xff", 0, "", "invalid close frame"},
	} {
		code, reason, v := ParseClose([]byte(tc.p))
		if code != tc.code || reason != tc.reason || v != tc.v {
			t.Errorf("ParseClose(%q) = %d %q %q, want %d %q %q", tc.p, code, reason, v, tc.code, tc.reason, tc.v)
		}
	}
}

func TestFrameLengths(t *testing.T) {
	for _, tc := range []struct {
		hdr    []byte
		header int
		n      uint64
	}{
		{[]byte{0x81, 0}, 2, 0},
		{[]byte{0x81, 125}, 2, 125},
		{[]byte{0x81, 0x80 | 5, 1, 2, 3, 4}, 6, 5},
		{[]byte{0x82, 126, 0x01, 0x00}, 4, 256},
		{[]byte{0x82, 0x80 | 126, 0xff, 0xff, 1, 2, 3, 4}, 8, 65535},
		{[]byte{0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0}, 10, 1 << 32},
		{[]byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4}, 14, 65536},
	} {
		if h := FrameHeaderLen(tc.hdr[1]); h != tc.header || h != len(tc.hdr) {
			t.Errorf("FrameHeaderLen(%#x) = %d, want %d", tc.hdr[1], h, tc.header)
		}
		if n := FramePayloadLen(tc.hdr); n != tc.n {
			t.Errorf("FramePayloadLen(% x) = %d, want %d", tc.hdr, n, tc.n)
		}
	}
}
