package security

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Cluster keys encrypt and authenticate gossip (AES-GCM, memberlist's
// keyring). A node holds one or more: the first (primary) encrypts what it
// sends, every one is tried on what it receives, so a new key is rolled
// out in three steps without a node ever failing to understand another:
// add it (second) everywhere, make it first everywhere, drop the old one.

// ParseKeys parses cluster keys: base64 AES keys of 16, 24 or 32 bytes,
// separated by commas or new lines, the primary first. Lines starting with
// # are comments (a key file may say what each key is).
func ParseKeys(s string) ([][]byte, error) {
	var keys [][]byte
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for f := range strings.SplitSeq(line, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			k, err := base64.StdEncoding.DecodeString(f)
			if err != nil {
				return nil, fmt.Errorf("cluster key %d is not base64: %w", len(keys)+1, err)
			}
			switch len(k) {
			case 16, 24, 32:
			default:
				return nil, fmt.Errorf("cluster key %d is %d bytes: it must be 16, 24 or 32 (AES-128, -192, -256); switchboard certs create-cluster-key makes one", len(keys)+1, len(k))
			}
			for _, prev := range keys {
				if bytes.Equal(prev, k) {
					return nil, fmt.Errorf("cluster key %d (%s) is given twice", len(keys)+1, KeyFingerprint(k))
				}
			}
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no cluster key given")
	}
	return keys, nil
}

// KeyFingerprint names a key in logs without giving it away: the first 8
// hex digits of its SHA-256.
func KeyFingerprint(k []byte) string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:4])
}

// Fingerprints names keys in logs.
func Fingerprints(keys [][]byte) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = KeyFingerprint(k)
	}
	return out
}

// NewKey returns a new random 32-byte cluster key, base64.
func NewKey() string {
	var k [32]byte
	_, _ = rand.Read(k[:]) // crypto/rand.Read never fails
	return base64.StdEncoding.EncodeToString(k[:])
}
