package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ErrCorrupt means a stored record does not decode.
var ErrCorrupt = errors.New("raftstore: corrupt record")

// ReplicaDesc says where one replica of a shard lives. Replica IDs are
// never reused within a shard; a store ID identifies one data directory
// (a wiped node comes back with a new one, and its old replicas are gone).
type ReplicaDesc struct {
	ID    uint64
	Node  string
	Store uint64
}

// AppliedState is the replicated bookkeeping of a shard's state machine,
// written with the effects of every applied batch of entries: the index
// and term applied, the configuration in force and where its replicas
// live.
type AppliedState struct {
	Index, Term uint64
	ConfState   *pb.ConfState
	// Replicas describes every replica the ConfState names, by ID.
	Replicas []ReplicaDesc
	// NextReplicaID is the ID the next added replica gets.
	NextReplicaID uint64
	// ConfIndex is the index of the last conf change applied.
	ConfIndex uint64
}

// Replica returns the descriptor of replica id.
func (a *AppliedState) Replica(id uint64) (ReplicaDesc, bool) {
	for _, r := range a.Replicas {
		if r.ID == id {
			return r, true
		}
	}
	return ReplicaDesc{}, false
}

// Clone returns a deep copy.
func (a AppliedState) Clone() AppliedState {
	a.Replicas = slices.Clone(a.Replicas)
	if a.ConfState != nil {
		a.ConfState = proto.Clone(a.ConfState).(*pb.ConfState)
	}
	return a
}

const appliedVersion = 1

// Encode returns the record stored under AppliedStateKey.
func (a *AppliedState) Encode() []byte {
	cs, _ := proto.Marshal(a.ConfState) // a ConfState always marshals
	b := make([]byte, 0, 48+len(cs)+24*len(a.Replicas))
	b = append(b, appliedVersion)
	b = binary.AppendUvarint(b, a.Index)
	b = binary.AppendUvarint(b, a.Term)
	b = binary.AppendUvarint(b, a.NextReplicaID)
	b = binary.AppendUvarint(b, a.ConfIndex)
	b = binary.AppendUvarint(b, uint64(len(cs)))
	b = append(b, cs...)
	b = binary.AppendUvarint(b, uint64(len(a.Replicas)))
	for _, r := range a.Replicas {
		b = binary.AppendUvarint(b, r.ID)
		b = binary.AppendUvarint(b, r.Store)
		b = binary.AppendUvarint(b, uint64(len(r.Node)))
		b = append(b, r.Node...)
	}
	return b
}

// DecodeAppliedState decodes a record stored under AppliedStateKey.
func DecodeAppliedState(v []byte) (AppliedState, error) {
	var a AppliedState
	d := decoder{b: v}
	if d.byte() != appliedVersion {
		return a, fmt.Errorf("%w: applied state of unknown version", ErrCorrupt)
	}
	a.Index, a.Term, a.NextReplicaID, a.ConfIndex = d.uvarint(), d.uvarint(), d.uvarint(), d.uvarint()
	cs := d.bytes()
	a.ConfState = &pb.ConfState{}
	if d.err == nil {
		if err := proto.Unmarshal(cs, a.ConfState); err != nil {
			return a, fmt.Errorf("%w: applied conf state: %v", ErrCorrupt, err)
		}
	}
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		r := ReplicaDesc{ID: d.uvarint(), Store: d.uvarint()}
		r.Node = string(d.bytes())
		a.Replicas = append(a.Replicas, r)
	}
	if d.err != nil || len(d.b) != 0 {
		return AppliedState{}, fmt.Errorf("%w: applied state", ErrCorrupt)
	}
	return a, nil
}

// TruncatedState is the index and term of the last entry removed from the
// log (by truncation or a snapshot): the log starts just above it.
type TruncatedState struct {
	Index, Term uint64
}

func (t TruncatedState) encode() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), t.Index)
	return binary.BigEndian.AppendUint64(b, t.Term)
}

func decodeTruncated(v []byte) (TruncatedState, error) {
	if len(v) != 16 {
		return TruncatedState{}, fmt.Errorf("%w: truncated state", ErrCorrupt)
	}
	return TruncatedState{Index: binary.BigEndian.Uint64(v), Term: binary.BigEndian.Uint64(v[8:])}, nil
}

func encodeU64(n uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n) }

func decodeU64(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: integer of %d bytes", ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// decoder reads uvarints and length-prefixed bytes, remembering the first
// error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = ErrCorrupt
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = ErrCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = ErrCorrupt
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}
