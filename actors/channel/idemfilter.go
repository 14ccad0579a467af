package channel

import (
	"hash/maphash"

	"github.com/switchboard-chat/switchboard/persistence"
)

// idemFilter is a Bloom filter of a channel's idempotency keys. Nearly
// every send has a client id the channel has never seen, and proving that
// took a store read (a Get that misses: the memtables, then each level's
// filter) on the hottest path there is; the filter proves it from memory
// instead. It holds every key of the channel — those the store held when
// it was built, those written but not yet stored (the idempotency cache's
// dirty keys), and every key written since — so "no" is always right; a
// "maybe" (a key it holds, or about 1 % of new ones) reads the store as
// before.
type idemFilter struct {
	bits     []uint64
	n, limit int // keys added; keys it is sized for
}

// idemFilterKeys bounds a filter (1.25 MB at 10 bits a key): a channel
// with more messages reads the store for every send, as before.
const idemFilterKeys = 1 << 20

// idemFilterHashes is the number of bits set per key: 7 for 10 bits a
// key (about 1 % of new keys read the store).
const idemFilterHashes = 7

var idemSeed = maphash.MakeSeed()

func newIdemFilter(limit int) *idemFilter {
	words := (limit*10 + 63) / 64
	return &idemFilter{bits: make([]uint64, words), limit: limit}
}

// positions calls fn with each bit of key (double hashing).
func (f *idemFilter) positions(key []byte, fn func(word int, mask uint64) bool) {
	h := maphash.Bytes(idemSeed, key)
	h1, h2 := uint32(h), uint32(h>>32)|1
	nbits := uint32(len(f.bits) * 64)
	for i := range uint32(idemFilterHashes) {
		b := (h1 + i*h2) % nbits
		if !fn(int(b/64), 1<<(b%64)) {
			return
		}
	}
}

func (f *idemFilter) add(key []byte) {
	f.n++
	f.positions(key, func(w int, m uint64) bool { f.bits[w] |= m; return true })
}

// mayHave reports whether key may be in the channel; false is certain.
func (f *idemFilter) mayHave(key []byte) bool {
	has := true
	f.positions(key, func(w int, m uint64) bool { has = f.bits[w]&m != 0; return has })
	return has
}

func (f *idemFilter) full() bool { return f.n >= f.limit }

// idemKeys returns the channel's filter, built on first use (and rebuilt,
// twice the size, when it fills); nil when the channel has too many
// messages for one, or the store could not be read: lookups then read
// the store.
func (s *State) idemKeys() *idemFilter {
	if s.idemF != nil && !s.idemF.full() {
		return s.idemF
	}
	s.idemF = nil
	// A key per message at most (system messages have none), and room
	// for as many again before it fills.
	keys := int(s.meta.Channel.LastSegment)
	if keys > idemFilterKeys/2 {
		return nil
	}
	f := newIdemFilter(max(1024, 2*keys))
	r := persistence.Range{Limit: 4096}
	for {
		recs, err := s.log.Scan(persistence.TableIdem, r)
		if err != nil {
			return nil
		}
		for _, rec := range recs {
			f.add(rec.Key)
		}
		if len(recs) < r.Limit {
			break
		}
		r.After = recs[len(recs)-1].Key
	}
	// Keys written but not in the store yet (the entry being built, and
	// appended ones the scan may predate) are the cache's dirty ones.
	s.idem.eachDirty(func(k idemKey, _ uint64) { f.add(idemStoreKey(k.user, k.clientID)) })
	if f.full() {
		return nil // more keys than messages: read the store
	}
	s.idemF = f
	return f
}
