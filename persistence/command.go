package persistence

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// A command is what a scope's actor proposes to its shard: the scope and
// the ops of one entry. Every replica applies it below Raft, so its
// decoding and application are deterministic and validated in full before
// anything is written.
//
//	version (1) | kind (1) | len(id) (uvarint) | id | count (uvarint) | op*
//	op: table (1) | flags (1) | len(key) (uvarint) | key | len(value or to) (uvarint) | value or to
//
// flags: 1 delete, 2 delete a range [key, to).

const commandVersion = 1

const (
	flagDelete = 1 << iota
	flagRange
)

// EncodeCommand encodes e as a command of scope sc.
func EncodeCommand(sc Scope, e *Entry) ([]byte, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: nil entry", ErrInvalid)
	}
	if err := sc.check(); err != nil {
		return nil, err
	}
	n := 4 + len(sc.ID)
	for _, op := range e.Ops {
		n += 2 + 2*binary.MaxVarintLen32 + len(op.Key) + len(op.Value) + len(op.DeleteTo)
	}
	b := make([]byte, 0, n)
	b = append(b, commandVersion, byte(sc.Kind))
	b = appendBytes(b, []byte(sc.ID))
	b = binary.AppendUvarint(b, uint64(len(e.Ops)))
	for _, op := range e.Ops {
		var flags byte
		second := op.Value
		if op.Delete {
			flags |= flagDelete
			second = nil
			if op.DeleteTo != nil {
				flags |= flagRange
				second = op.DeleteTo
			}
		}
		b = append(b, byte(op.Table), flags)
		b = appendBytes(b, op.Key)
		b = appendBytes(b, second)
	}
	return b, nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// DecodeCommand decodes a command.
func DecodeCommand(cmd []byte) (Scope, *Entry, error) {
	var sc Scope
	bad := func(what string) (Scope, *Entry, error) {
		return sc, nil, fmt.Errorf("%w: command: %s", ErrInvalid, what)
	}
	if len(cmd) < 2 || cmd[0] != commandVersion {
		return bad("unknown version")
	}
	sc.Kind = Kind(cmd[1])
	rest := cmd[2:]
	id, rest, ok := readBytes(rest)
	if !ok {
		return bad("scope id")
	}
	sc.ID = string(id)
	if err := sc.check(); err != nil {
		return sc, nil, err
	}
	count, n := binary.Uvarint(rest)
	if n <= 0 || count > uint64(len(rest)) {
		return bad("op count")
	}
	rest = rest[n:]
	e := &Entry{Ops: make([]Op, 0, count)}
	for range count {
		if len(rest) < 2 {
			return bad("op header")
		}
		op := Op{Table: Table(rest[0])}
		flags := rest[1]
		if flags&^(flagDelete|flagRange) != 0 || flags == flagRange {
			return bad("op flags")
		}
		var second []byte
		if op.Key, rest, ok = readBytes(rest[2:]); !ok {
			return bad("op key")
		}
		if second, rest, ok = readBytes(rest); !ok {
			return bad("op value")
		}
		switch {
		case flags&flagRange != 0:
			op.Delete, op.DeleteTo = true, second
		case flags&flagDelete != 0:
			op.Delete = true
		default:
			op.Value = second
		}
		e.Ops = append(e.Ops, op)
	}
	if len(rest) != 0 {
		return bad("trailing bytes")
	}
	return sc, e, nil
}

func readBytes(b []byte) (v, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	end := k + int(n)
	return b[k:end:end], b[end:], true
}

// writeOps writes the ops of scope sc into w in order.
func writeOps(w pebble.Writer, shard uint32, sc Scope, ops []Op) error {
	for _, op := range ops {
		var err error
		key := sc.key(shard, op.Table, op.Key)
		switch {
		case op.Delete && op.DeleteTo != nil:
			err = w.DeleteRange(key, sc.key(shard, op.Table, op.DeleteTo), nil)
		case op.Delete:
			err = w.Delete(key, nil)
		default:
			if op.Value == nil {
				op.Value = []byte{}
			}
			err = w.Set(key, op.Value, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// StateMachine applies the commands of scopes' actors to the shards' state
// spans: the state machine every replica runs below Raft.
type StateMachine struct{}

// Apply decodes cmd in full and writes its ops under shard's span into b;
// a command that does not decode writes nothing.
func (StateMachine) Apply(b *pebble.Batch, shard uint32, cmd []byte) error {
	sc, e, err := DecodeCommand(cmd)
	if err != nil {
		return err
	}
	return writeOps(b, shard, sc, e.Ops)
}
