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
//	file\0 <file id>                    → segment of the message carrying it
//
// Segments are 8-byte big-endian, so a user's reactions or favorites on a
// page of messages are one range scan, and a thread is a range scan of its
// index. User ids never hold a NUL (they are printable ASCII).
const (
	nsReact  = "react\x00"
	nsFav    = "fav\x00"
	nsCount  = "ucount\x00"
	nsThread = "thread\x00"
	nsFile   = "file\x00"
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

func fileKey(id string) []byte { return append([]byte(nsFile), id...) }

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
