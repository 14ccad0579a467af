package persistence

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// Key layout. Every record belongs to a scope (one channel or one user),
// kept in the state span of the shard the scope hashes to, and to a table
// within the scope:
//
//	0x02 shard (4 bytes) | scope kind (1 byte) | len(id) (1 byte) | id | table (1 byte) | key
//
// so all of a scope's records are one contiguous range, inside its shard's
// span (what a snapshot of the shard carries), and within a table keys sort
// by their encoding. Sequence numbers (segments, seqs) are big-endian
// uint64 so that history is a forward or reverse range scan. The rest of
// the store (raft logs, node records) is laid out by package raftstore.

// Kind is the kind of scope a record belongs to.
type Kind byte

// Scope kinds.
const (
	KindChannel Kind = 'c'
	KindUser    Kind = 'u'
)

// Table names a table within a scope.
type Table byte

// Tables.
const (
	TableMeta    Table = 'a' // key: empty; value: the scope's state record
	TableEvent   Table = 'e' // key: seq; value: the encoded event frame
	TableIdem    Table = 'i' // key: user 0x00 client id; value: segment
	TableMessage Table = 'm' // key: segment; value: the message record
	TableMember  Table = 'u' // key: user id; value: the member record
	TableAux     Table = 'x' // free-form per-scope records (reactions, flags, ...)
)

// MaxIDLen is the longest scope id the key layout can hold.
const MaxIDLen = 255

// Scope identifies one actor's records.
type Scope struct {
	Kind Kind
	ID   string
}

func (s Scope) String() string { return fmt.Sprintf("%c/%s", s.Kind, s.ID) }

// check reports whether the key layout can hold the scope: an id longer
// than MaxIDLen would wrap its length byte and alias another scope's keys.
func (s Scope) check() error {
	switch {
	case s.Kind != KindChannel && s.Kind != KindUser:
		return fmt.Errorf("%w: scope kind %q", ErrInvalid, s.Kind)
	case len(s.ID) > MaxIDLen:
		return fmt.Errorf("%w: scope id of %d bytes (at most %d)", ErrInvalid, len(s.ID), MaxIDLen)
	}
	return nil
}

// prefix returns the key prefix shared by all of the scope's records in
// shard.
func (s Scope) prefix(shard uint32) []byte {
	b := make([]byte, 0, 5+2+len(s.ID)+1+16)
	b = append(b, raftstore.StatePrefix(shard)...)
	b = append(b, byte(s.Kind), byte(len(s.ID)))
	return append(b, s.ID...)
}

// key returns the full key of one record.
func (s Scope) key(shard uint32, t Table, k []byte) []byte {
	b := s.prefix(shard)
	b = append(b, byte(t))
	return append(b, k...)
}

// tableBounds returns [lower, upper) covering one table of the scope.
func (s Scope) tableBounds(shard uint32, t Table) (lower, upper []byte) {
	lower = s.key(shard, t, nil)
	return lower, prefixEnd(lower)
}

// scopeBounds returns [lower, upper) covering every record of the scope.
func (s Scope) scopeBounds(shard uint32) (lower, upper []byte) {
	lower = s.prefix(shard)
	return lower, prefixEnd(lower)
}

// prefixEnd returns the least key above every key that starts with p, or
// nil (no bound) when there is none (p is all 0xff). Bounds built by
// incrementing the table byte, or by appending 0xff bytes, are wrong for
// table 0xff and for keys that start with 0xff.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// U64 encodes n as an 8-byte big-endian key.
func U64(n uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n)
}

// ParseU64 decodes an 8-byte big-endian key.
func ParseU64(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}
