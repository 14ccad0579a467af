package raftstore

import (
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// entryCache keeps a replica's most recent log entries in memory, as
// appended, so that raft reads them back without Pebble: a leader applies
// its entries once its followers acknowledge them, after they left raft's
// own memory, and sends them again to a follower that lags a little. It
// is bounded in entries and bytes; older entries are read from the store.
// The engine releases the entries no one reads again soon (ReleaseCache):
// applied here and held by every follower; so a quiet shard caches none.
type entryCache struct {
	ents  []*pb.Entry // consecutive indexes, oldest first
	bytes int
}

// Bounds of one replica's cache.
const (
	cacheEntries = 512
	cacheBytes   = 1 << 20
)

// append records ents (consecutive, as written to the log) after dropping
// whatever they overwrite.
func (c *entryCache) append(ents []*pb.Entry) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].GetIndex()
	if n := len(c.ents); n > 0 {
		switch cf := c.ents[0].GetIndex(); {
		case first <= cf:
			c.reset()
		case first <= c.ents[n-1].GetIndex()+1:
			for _, e := range c.ents[first-cf:] {
				c.bytes -= proto.Size(e)
			}
			clear(c.ents[first-cf:])
			c.ents = c.ents[:first-cf]
		default:
			c.reset() // a gap: start again from ents
		}
	}
	for _, e := range ents {
		c.ents = append(c.ents, e)
		c.bytes += proto.Size(e)
	}
	c.trim()
}

// trim drops the oldest entries past the bounds (one always stays).
func (c *entryCache) trim() {
	n := 0
	for len(c.ents)-n > 1 && (len(c.ents)-n > cacheEntries || c.bytes > cacheBytes) {
		c.bytes -= proto.Size(c.ents[n])
		n++
	}
	if n > 0 {
		clear(c.ents[:n])
		c.ents = append(c.ents[:0], c.ents[n:]...)
	}
}

// dropTo forgets entries up to index (truncated, or released).
func (c *entryCache) dropTo(index uint64) {
	if len(c.ents) == 0 || index < c.ents[0].GetIndex() {
		return
	}
	if index >= c.ents[len(c.ents)-1].GetIndex() {
		c.reset()
		return
	}
	n := int(index - c.ents[0].GetIndex() + 1)
	for _, e := range c.ents[:n] {
		c.bytes -= proto.Size(e)
	}
	clear(c.ents[:n])
	c.ents = append(c.ents[:0], c.ents[n:]...)
}

func (c *entryCache) reset() {
	clear(c.ents)
	c.ents, c.bytes = c.ents[:0], 0
}

// get returns the cached entries [lo, hi) within maxSize (at least one),
// when all of them are cached.
func (c *entryCache) get(lo, hi, maxSize uint64) ([]*pb.Entry, bool) {
	if len(c.ents) == 0 || lo < c.ents[0].GetIndex() || hi-1 > c.ents[len(c.ents)-1].GetIndex() || lo >= hi {
		return nil, false
	}
	off := lo - c.ents[0].GetIndex()
	src := c.ents[off : off+(hi-lo)]
	out := make([]*pb.Entry, 0, len(src))
	var size uint64
	for _, e := range src {
		size += uint64(proto.Size(e))
		if len(out) > 0 && size > maxSize {
			break
		}
		out = append(out, e)
	}
	return out, true
}

// term returns the term of entry i when cached.
func (c *entryCache) term(i uint64) (uint64, bool) {
	if len(c.ents) == 0 || i < c.ents[0].GetIndex() || i > c.ents[len(c.ents)-1].GetIndex() {
		return 0, false
	}
	return c.ents[i-c.ents[0].GetIndex()].GetTerm(), true
}
