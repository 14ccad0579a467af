// Package raftstore keeps the Raft state of every shard replica a node holds
// in the node's one Pebble database, and serves it to go.etcd.io/raft as a
// raft.Storage per replica.
//
// Key layout (big-endian fixed-width integers; shard is a uint32):
//
//	0x00 name                       node-local records (format version, cluster id, ...)
//	0x01 shard 0x01                 HardState                ┐ unreplicated state of this
//	0x01 shard 0x02                 TruncatedState           │ replica: never in snapshots,
//	0x01 shard 0x03                 this node's replica ID   │ rewritten when a snapshot
//	0x01 shard 0x04                 tombstone                │ is applied
//	0x01 shard 0x05 index(u64)      log entry                ┘
//	0x02 shard 0x00                 AppliedState             ┐ the replicated state machine:
//	0x02 shard kind ...             scope data (persistence) ┘ what a snapshot carries
//
// A shard's snapshot is its state span [0x02 shard, 0x02 shard+1); wiping a
// replica is two range deletions. Writing a log entry at index i deletes
// every persisted entry above the last one written.
package raftstore

import (
	"encoding/binary"
	"math"
)

// Top-level key prefixes.
const (
	prefixNode  byte = 0x00
	prefixRaft  byte = 0x01
	prefixState byte = 0x02
)

// Suffixes of a replica's unreplicated raft keys.
const (
	suffixHardState byte = 0x01
	suffixTruncated byte = 0x02
	suffixReplicaID byte = 0x03
	suffixTombstone byte = 0x04
	suffixLog       byte = 0x05
)

// appliedSuffix is the key of a shard's AppliedState within its state
// span. Scope kinds are printable letters, so 0x00 sorts before all of
// them and never collides with scope data.
const appliedSuffix byte = 0x00

func shardKey(prefix byte, shard uint32, extra int) []byte {
	b := make([]byte, 0, 5+extra)
	b = append(b, prefix)
	return binary.BigEndian.AppendUint32(b, shard)
}

func raftKey(shard uint32, suffix byte) []byte {
	return append(shardKey(prefixRaft, shard, 1), suffix)
}

// HardStateKey is the key of a replica's HardState.
func HardStateKey(shard uint32) []byte { return raftKey(shard, suffixHardState) }

// TruncatedStateKey is the key of a replica's TruncatedState.
func TruncatedStateKey(shard uint32) []byte { return raftKey(shard, suffixTruncated) }

// ReplicaIDKey is the key of the ID of the shard's replica on this node.
func ReplicaIDKey(shard uint32) []byte { return raftKey(shard, suffixReplicaID) }

// TombstoneKey is the key of a removed replica's tombstone: the lowest
// replica ID this node may still hold of the shard.
func TombstoneKey(shard uint32) []byte { return raftKey(shard, suffixTombstone) }

// LogKey is the key of the log entry at index.
func LogKey(shard uint32, index uint64) []byte {
	b := append(shardKey(prefixRaft, shard, 9), suffixLog)
	return binary.BigEndian.AppendUint64(b, index)
}

// RaftSpan is [lower, upper) over every unreplicated key of the shard.
func RaftSpan(shard uint32) (lower, upper []byte) {
	return spanOf(prefixRaft, shard)
}

// StatePrefix is the prefix of every key of the shard's state machine.
func StatePrefix(shard uint32) []byte { return shardKey(prefixState, shard, 0) }

// StateSpan is [lower, upper) over the shard's state machine: what a
// snapshot of the shard carries.
func StateSpan(shard uint32) (lower, upper []byte) {
	return spanOf(prefixState, shard)
}

// AppliedStateKey is the key of the shard's AppliedState.
func AppliedStateKey(shard uint32) []byte {
	return append(shardKey(prefixState, shard, 1), appliedSuffix)
}

func spanOf(prefix byte, shard uint32) (lower, upper []byte) {
	lower = shardKey(prefix, shard, 0)
	if shard == math.MaxUint32 {
		return lower, []byte{prefix + 1}
	}
	return lower, shardKey(prefix, shard+1, 0)
}

// NodeKey is the key of a node-local record.
func NodeKey(name string) []byte {
	b := make([]byte, 0, 1+len(name))
	b = append(b, prefixNode)
	return append(b, name...)
}

// NodeSpan is [lower, upper) over every node-local record.
func NodeSpan() (lower, upper []byte) { return []byte{prefixNode}, []byte{prefixNode + 1} }

// FormatSpan is [lower, upper) over every key of this layout. A store with
// keys outside it was written by an earlier format.
func FormatSpan() (lower, upper []byte) { return []byte{prefixNode}, []byte{prefixState + 1} }
