package protocol

import "encoding/binary"

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
