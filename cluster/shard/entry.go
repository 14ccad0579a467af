package shard

import (
	"encoding/binary"
	"errors"

	"github.com/switchboard-chat/switchboard/persistence/raftstore"
)

// A normal entry's data is a header and the command:
//
//	format (1 byte) | proposer (uvarint) | proposal id (uvarint) | term (uvarint) | command
//
// The proposer identifies the engine that proposed it (one life of one
// node), so a waiter matches only its own proposals. term is the leader
// term the proposer acted in: every replica applies the command only if
// it equals the term of the entry that carries it, so a command evaluated
// under one leadership never applies under another (RAFT-NOTES §3). The
// empty entry a new leader appends has no data.

const entryFormat = 1

var errBadEntry = errors.New("shard: malformed entry")

type header struct {
	proposer, id, term uint64
}

func encodeEntry(h header, cmd []byte) []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(cmd))
	b = append(b, entryFormat)
	b = binary.AppendUvarint(b, h.proposer)
	b = binary.AppendUvarint(b, h.id)
	b = binary.AppendUvarint(b, h.term)
	return append(b, cmd...)
}

func decodeEntry(data []byte) (header, []byte, error) {
	var h header
	if len(data) == 0 || data[0] != entryFormat {
		return h, nil, errBadEntry
	}
	data = data[1:]
	for _, f := range []*uint64{&h.proposer, &h.id, &h.term} {
		v, n := binary.Uvarint(data)
		if n <= 0 {
			return h, nil, errBadEntry
		}
		*f, data = v, data[n:]
	}
	return h, data, nil
}

// A conf change's context lists where the replicas it adds live, so that
// every replica learns their addresses when it applies the change:
//
//	count (uvarint) | { id (uvarint) | store (uvarint) | len(node) (uvarint) | node }

func encodeReplicas(rs []raftstore.ReplicaDesc) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		b = binary.AppendUvarint(b, r.ID)
		b = binary.AppendUvarint(b, r.Store)
		b = binary.AppendUvarint(b, uint64(len(r.Node)))
		b = append(b, r.Node...)
	}
	return b
}

func decodeReplicas(b []byte) ([]raftstore.ReplicaDesc, error) {
	if len(b) == 0 {
		return nil, nil
	}
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	count, ok := next()
	if !ok || count > 64 {
		return nil, errBadEntry
	}
	out := make([]raftstore.ReplicaDesc, 0, count)
	for range count {
		id, ok1 := next()
		store, ok2 := next()
		n, ok3 := next()
		if !ok1 || !ok2 || !ok3 || n > uint64(len(b)) {
			return nil, errBadEntry
		}
		out = append(out, raftstore.ReplicaDesc{ID: id, Store: store, Node: string(b[:n])})
		b = b[n:]
	}
	if len(b) != 0 {
		return nil, errBadEntry
	}
	return out, nil
}
