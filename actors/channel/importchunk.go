package channel

import (
	"encoding/binary"
	"slices"

	"github.com/switchboard-chat/switchboard/persistence"
)

// importChunk is what one chunk of an import changes, decided when it
// was staged (importstage.go) and applied as it is when the import
// commits (importcommit.go): the records to write as they are, and the
// changes that depend on what the channel holds at that moment.
type importChunk struct {
	// ops are records written as they are: messages, their aux records
	// (reactions, thread index, files, the index of imported ids) and
	// their idempotency keys.
	ops []persistence.Op
	// autoParents are top-level messages among ops whose reply_count is
	// counted from the replies imported (the record had none).
	autoParents []uint64
	// members are member records, written unless the user has one by
	// then.
	members []stagedMember
	// reactors counts the reactions each user gains (their counts).
	reactors map[string]int64
	// bumps counts the replies each message that was already in the
	// channel gains (their reply_count).
	bumps map[uint64]int64
	// lastMsg is the highest segment among ops (0: none).
	lastMsg uint64
}

// stagedMember is one member record of an import.
type stagedMember struct {
	user   string
	record []byte // the encoded memberRecord
	line   int64
}

func newImportChunk() *importChunk {
	return &importChunk{reactors: map[string]int64{}, bumps: map[uint64]int64{}}
}

// empty reports whether the chunk changes nothing.
func (c *importChunk) empty() bool {
	return len(c.ops) == 0 && len(c.members) == 0 && len(c.reactors) == 0 && len(c.bumps) == 0
}

// size estimates the bytes the chunk writes.
func (c *importChunk) size() int {
	n := 0
	for _, op := range c.ops {
		n += len(op.Key) + len(op.Value) + 8
	}
	for _, m := range c.members {
		n += len(m.user) + len(m.record) + 8
	}
	return n + 24*(len(c.reactors)+len(c.bumps))
}

// The encoding: uvarint counts and lengths, then the bytes.

func (c *importChunk) encode() []byte {
	b := make([]byte, 0, c.size()+64)
	uv := func(v uint64) { b = binary.AppendUvarint(b, v) }
	bs := func(p []byte) { uv(uint64(len(p))); b = append(b, p...) }
	uv(uint64(len(c.ops)))
	for _, op := range c.ops {
		b = append(b, byte(op.Table))
		bs(op.Key)
		bs(op.Value)
	}
	uv(uint64(len(c.autoParents)))
	for _, s := range c.autoParents {
		uv(s)
	}
	uv(uint64(len(c.members)))
	for _, m := range c.members {
		bs([]byte(m.user))
		bs(m.record)
		uv(uint64(m.line))
	}
	users := make([]string, 0, len(c.reactors))
	for u := range c.reactors {
		users = append(users, u)
	}
	slices.Sort(users)
	uv(uint64(len(users)))
	for _, u := range users {
		bs([]byte(u))
		uv(uint64(c.reactors[u]))
	}
	segs := make([]uint64, 0, len(c.bumps))
	for s := range c.bumps {
		segs = append(segs, s)
	}
	slices.Sort(segs)
	uv(uint64(len(segs)))
	for _, s := range segs {
		uv(s)
		uv(uint64(c.bumps[s]))
	}
	uv(c.lastMsg)
	return b
}

// chunkReader reads what encode wrote; the first problem sticks.
type chunkReader struct {
	b   []byte
	bad bool
}

func (r *chunkReader) uv() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *chunkReader) bytes() []byte {
	n := r.uv()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

// count reads a count, bounded by the bytes left (each item takes one at
// least), so a corrupt count cannot make a huge allocation.
func (r *chunkReader) count() int {
	n := r.uv()
	if n > uint64(len(r.b)) {
		r.bad = true
		return 0
	}
	return int(n)
}

func decodeImportChunk(b []byte) (*importChunk, error) {
	r := &chunkReader{b: b}
	c := newImportChunk()
	n := r.count()
	c.ops = make([]persistence.Op, 0, n)
	for i := 0; i < n && !r.bad; i++ {
		if len(r.b) == 0 {
			r.bad = true
			break
		}
		t := persistence.Table(r.b[0])
		r.b = r.b[1:]
		c.ops = append(c.ops, persistence.Op{Table: t, Key: r.bytes(), Value: r.bytes()})
	}
	n = r.count()
	for i := 0; i < n && !r.bad; i++ {
		c.autoParents = append(c.autoParents, r.uv())
	}
	n = r.count()
	for i := 0; i < n && !r.bad; i++ {
		c.members = append(c.members, stagedMember{user: string(r.bytes()), record: r.bytes(), line: int64(r.uv())})
	}
	n = r.count()
	for i := 0; i < n && !r.bad; i++ {
		u := string(r.bytes())
		c.reactors[u] = int64(r.uv())
	}
	n = r.count()
	for i := 0; i < n && !r.bad; i++ {
		s := r.uv()
		c.bumps[s] = int64(r.uv())
	}
	c.lastMsg = r.uv()
	if r.bad || len(r.b) != 0 {
		return nil, ErrCorrupt
	}
	return c, nil
}
