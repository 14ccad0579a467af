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
