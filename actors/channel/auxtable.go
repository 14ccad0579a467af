package channel

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/switchboard-chat/switchboard/persistence"
)

// Rich-messaging records live in the channel's TableAux, so they stay in
// the channel's scope (and move with it on a hand-off). Every key starts
// with a namespace name and a NUL, so other concerns can share the table:
//
//	react\0 <user> \0 <segment> <name>  → ""   one user's reaction
//	fav\0 <user> \0 <segment>           → ""   one user's favorite
//	ucount\0 <user>                     → userCounts (JSON)
//	thread\0 <parent seg> <reply seg>   → ""   the thread index
//	msgreact\0 <segment> <user> \0 <name> → "" a reaction, by message
//	msgfav\0 <segment> <user>           → ""   a favorite, by message
//	file\0 <file id> \0 <segment>       → ""   a message carrying the file
//	file\0 <file id>                    → segment (JSON): the same, as
//	                                           written before the set above
//
// Segments are 8-byte big-endian, so a user's reactions or favorites on a
// page of messages are one range scan, and a thread is a range scan of its
// index. The by-message copies of reactions and favorites let a deletion
// find and remove every one a message holds (deletion.go); those made
// before the copies existed stay behind, unseen, as they always did. User
// and file ids never hold a NUL (they are printable ASCII).
const (
	nsReact    = "react\x00"
	nsFav      = "fav\x00"
	nsCount    = "ucount\x00"
	nsThread   = "thread\x00"
	nsMsgReact = "msgreact\x00"
	nsMsgFav   = "msgfav\x00"
	nsFile     = "file\x00"
)

func reactUserPrefix(user string) []byte {
	return append(append([]byte(nsReact), user...), 0)
}

func reactKey(user string, seg uint64, name string) []byte {
	return append(append(reactUserPrefix(user), persistence.U64(seg)...), name...)
}

func favUserPrefix(user string) []byte {
	return append(append([]byte(nsFav), user...), 0)
}

func favKey(user string, seg uint64) []byte {
	return append(favUserPrefix(user), persistence.U64(seg)...)
}

func countKey(user string) []byte { return append([]byte(nsCount), user...) }

func threadPrefix(parent uint64) []byte {
	return append([]byte(nsThread), persistence.U64(parent)...)
}

func threadKey(parent, reply uint64) []byte {
	return append(threadPrefix(parent), persistence.U64(reply)...)
}

func msgReactPrefix(seg uint64) []byte {
	return append([]byte(nsMsgReact), persistence.U64(seg)...)
}

func msgReactKey(seg uint64, user, name string) []byte {
	return append(append(append(msgReactPrefix(seg), user...), 0), name...)
}

func msgFavPrefix(seg uint64) []byte {
	return append([]byte(nsMsgFav), persistence.U64(seg)...)
}

func msgFavKey(seg uint64, user string) []byte { return append(msgFavPrefix(seg), user...) }

// fileKey is the record of a file written before files kept a set of
// messages (fileSegKey); it is still read, and deleted with its message.
func fileKey(id string) []byte { return append([]byte(nsFile), id...) }

func fileSegPrefix(id string) []byte { return append(fileKey(id), 0) }

func fileSegKey(id string, seg uint64) []byte {
	return append(fileSegPrefix(id), persistence.U64(seg)...)
}

// prefixEnd is the least key above every key that starts with p (nil: none).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// auxPrefix returns the aux records whose keys start with p, in key order,
// at most limit of them (0: all). p itself is never a key.
func (s *State) auxPrefix(p []byte, limit int) ([]persistence.Record, error) {
	return s.auxScan(p, prefixEnd(p), limit, false)
}

// auxVal is a cached aux record; ok is false for a key known absent.
type auxVal struct {
	v  []byte
	ok bool
}

// auxGet reads one aux record through the cache, which holds every record
// written by an entry not yet durable.
func (s *State) auxGet(key []byte) ([]byte, bool, error) {
	if v, ok := s.rich.aux.get(string(key)); ok {
		return v.v, v.ok, nil
	}
	v, err := s.log.Get(persistence.TableAux, key)
	if errors.Is(err, persistence.ErrNotFound) {
		s.rich.aux.put(string(key), auxVal{})
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read aux: %w", err)
	}
	s.rich.aux.put(string(key), auxVal{v: v, ok: true})
	return v, true, nil
}

// auxPut writes one aux record with the current entry.
func (s *State) auxPut(key, v []byte) {
	if v == nil {
		v = []byte{}
	}
	s.entry().Put(persistence.TableAux, key, v)
	s.rich.aux.write(string(key), auxVal{v: v, ok: true}, s.cur.Index)
}

// auxDel deletes one aux record with the current entry.
func (s *State) auxDel(key []byte) {
	s.entry().Del(persistence.TableAux, key)
	s.rich.aux.write(string(key), auxVal{}, s.cur.Index)
}

// auxScan returns the aux records with after < key < before (before nil:
// unbounded), in key order (descending when reverse), at most limit of them
// (0: all). Records written by entries not yet durable are merged in: the
// store may not hold them yet.
func (s *State) auxScan(after, before []byte, limit int, reverse bool) ([]persistence.Record, error) {
	in := func(k []byte) bool {
		return bytes.Compare(k, after) > 0 && (before == nil || bytes.Compare(k, before) < 0)
	}
	// Pending writes in range: a pending delete may hide a stored record,
	// so ask the store for that many more.
	var dirty []persistence.Record
	deleted := map[string]bool{}
	s.rich.aux.eachDirty(func(k string, v auxVal) {
		if !in([]byte(k)) {
			return
		}
		if v.ok {
			dirty = append(dirty, persistence.Record{Key: []byte(k), Value: v.v})
		} else {
			deleted[k] = true
		}
	})
	n := limit
	if n > 0 {
		n += len(dirty) + len(deleted)
	}
	recs, err := s.log.Scan(persistence.TableAux, persistence.Range{After: after, Before: before, Limit: n, Reverse: reverse})
	if err != nil {
		return nil, fmt.Errorf("scan aux: %w", err)
	}
	if len(dirty) == 0 && len(deleted) == 0 {
		return recs, nil
	}
	out := recs[:0]
	for _, r := range recs {
		if !deleted[string(r.Key)] && !s.rich.aux.isDirty(string(r.Key)) {
			out = append(out, r)
		}
	}
	out = append(out, dirty...)
	slices.SortFunc(out, func(a, b persistence.Record) int {
		if reverse {
			return bytes.Compare(b.Key, a.Key)
		}
		return bytes.Compare(a.Key, b.Key)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
