// Package directory holds the rules of one shard of the public-channel
// directory (channels.query) as a pure state machine, like packages
// channel and user: it reads through a persistence.Reader and returns the
// entry to persist.
//
// The directory is sharded by what a query filters on: one shard per
// channel type ("type:community") and one per tag ("tag:music"). Each
// shard is a virtual actor placed like a channel, so it moves, hands off
// and survives restarts with the same machinery. A channel tells the
// shards of its type and tags whenever its listing changes (created,
// made public or private, tags changed, deleted), and again when it is
// activated, so a notification lost to a node failure is repaired the next
// time the channel runs. Each notification carries the channel's listing
// version, and a shard keeps the newest, so late or repeated ones do no
// harm. A shard answers a query with channel ids; the gateway then asks
// each channel for its current record, which drops any entry that is
// stale (and the channel tells the shard to forget it).
//
// Entries are ordered newest channel first (by creation time, then id);
// a shard keeps its entries in the store and only what is not yet durable
// in memory, so its memory does not grow with the number of channels.
package directory

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Internal ops (never accepted from clients).
const (
	OpPut   = "_dir.put"   // args: Entry; a notification
	OpQuery = "_dir.query" // args: QueryArgs → QueryResult
)

// Prefix starts every shard id. Shards are scopes of the channel kind; the
// space keeps their ids out of reach of clients, whose channel ids are
// printable ASCII without spaces.
const Prefix = "dir "

// maxShardID keeps shard ids within what a scope id may be.
const maxShardID = 200

// TypeShard is the shard of channels of one type.
func TypeShard(typ string) string { return Prefix + "type:" + typ }

// TagShard is the shard of channels with one tag. Long tags are hashed.
func TagShard(tag string) string {
	id := Prefix + "tag:" + tag
	if len(id) > maxShardID {
		h := sha256.Sum256([]byte(tag))
		id = Prefix + "tag#" + hex.EncodeToString(h[:16])
	}
	return id
}

// IsShard reports whether a channel-kind scope id is a directory shard.
func IsShard(id string) bool { return strings.HasPrefix(id, Prefix) }

// Entry is a channel's listing as a shard keeps it.
type Entry struct {
	ID        string   `json:"id"`
	Type      string   `json:"type"`
	Tags      []string `json:"tags,omitempty"`
	Listed    bool     `json:"listed"` // public and not deleted
	CreatedMS int64    `json:"created_ms"`
	Version   uint64   `json:"version"`
}

// Shards are the shards that list e (none when it is not listed).
func (e *Entry) Shards() []string {
	if !e.Listed {
		return nil
	}
	out := []string{TypeShard(e.Type)}
	for _, t := range e.Tags {
		if id := TagShard(t); !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// belongs reports whether e is listed by shard.
func (e *Entry) belongs(shard string) bool {
	return slices.Contains(e.Shards(), shard)
}

// Key is e's position in a shard: newest first, then by id.
func (e *Entry) Key() []byte {
	b := binary.BigEndian.AppendUint64(nil, math.MaxUint64-uint64(e.CreatedMS))
	return append(b, e.ID...)
}

// QueryArgs ask a shard for the entries after a cursor.
type QueryArgs struct {
	// After is the hex key to continue after ("" = from the start).
	After string   `json:"after,omitempty"`
	Limit int      `json:"limit"`
	Type  string   `json:"type,omitempty"`
	Tags  []string `json:"tags,omitempty"`
}

// QueryResult lists matching entries in key order. Last is the hex key
// of the last entry examined and Done says nothing follows it: a shard
// examines a bounded number of entries per query, so a page may hold
// fewer than Limit while Done is false.
type QueryResult struct {
	Entries []Hit  `json:"entries"`
	Last    string `json:"last,omitempty"`
	Done    bool   `json:"done"`
}

// Hit is one matching entry.
type Hit struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// maxExamined bounds the entries one filtered query reads.
const maxExamined = 512

// Records in the shard's aux table:
//
//	'i' id  → Entry (newest version seen; Listed false once removed)
//	's' key → Entry (the listed entries, in order)
const (
	prefixID  = 'i'
	prefixKey = 's'
)

func idKey(id string) []byte { return append([]byte{prefixID}, id...) }

func sortKey(k []byte) []byte { return append([]byte{prefixKey}, k...) }

// Effects is what one command produced.
type Effects struct {
	Result []byte
	Err    *protocol.Error
	Entry  *persistence.Entry
	Index  uint64
}

// State is one shard.
type State struct {
	id    string
	log   persistence.Reader
	index uint64
	// pending are records written by entries not yet durable: the store
	// may not hold them yet. nil values are deletions.
	pending map[string]pendingRecord
}

type pendingRecord struct {
	value []byte
	index uint64
}

// Load returns the shard id reading through log. Nothing is read until a
// command needs it.
func Load(id string, log persistence.Reader) *State {
	return &State{id: id, log: log, pending: make(map[string]pendingRecord)}
}

// Committed tells the shard entries up to index are durable.
func (s *State) Committed(index uint64) {
	for k, p := range s.pending {
		if p.index <= index {
			delete(s.pending, k)
		}
	}
}

// Pending reports whether some entry is not yet durable.
func (s *State) Pending() bool { return len(s.pending) > 0 }

// Handle applies one command.
func (s *State) Handle(op string, args json.RawMessage, _ time.Time) *Effects {
	eff := &Effects{}
	var result any
	var perr *protocol.Error
	switch op {
	case OpPut:
		perr = s.put(args, eff)
		result = struct{}{}
	case OpQuery:
		result, perr = s.query(args)
	default:
		perr = protocol.Errorf(protocol.CodeBadRequest, "unknown op %q", op)
	}
	if perr != nil {
		eff.Entry, eff.Index = nil, 0 // refusals write nothing (put validates first)
		eff.Err = perr
		return eff
	}
	b, err := json.Marshal(result)
	if err != nil {
		panic("directory: encode result: " + err.Error())
	}
	eff.Result = b
	return eff
}

func (s *State) get(k []byte) ([]byte, error) {
	if p, ok := s.pending[string(k)]; ok {
		if p.value == nil {
			return nil, persistence.ErrNotFound
		}
		return p.value, nil
	}
	return s.log.Get(persistence.TableAux, k)
}

func (s *State) write(eff *Effects, k, v []byte) {
	if eff.Entry == nil {
		s.index++
		eff.Entry = &persistence.Entry{}
		eff.Index = s.index
	}
	if v == nil {
		eff.Entry.Del(persistence.TableAux, k)
	} else {
		eff.Entry.Put(persistence.TableAux, k, v)
	}
	s.pending[string(k)] = pendingRecord{value: v, index: eff.Index}
}

// put applies a channel's listing if it is newer than the one held.
func (s *State) put(args json.RawMessage, eff *Effects) *protocol.Error {
	var e Entry
	if err := protocol.DecodeArgs(args, &e); err != nil {
		return err
	}
	if e.ID == "" || len(e.ID) > persistence.MaxIDLen {
		return protocol.Errorf(protocol.CodeBadRequest, "invalid entry id")
	}
	var old *Entry
	switch v, err := s.get(idKey(e.ID)); {
	case errors.Is(err, persistence.ErrNotFound):
	case err != nil:
		return protocol.Errorf(protocol.CodeInternal, "storage read failed")
	default:
		old = new(Entry)
		if json.Unmarshal(v, old) != nil {
			old = nil // a corrupt record is replaced
		}
	}
	if old != nil && old.Version >= e.Version {
		return nil
	}
	e.Listed = e.belongs(s.id)
	if old != nil && old.Listed && (!e.Listed || !bytes.Equal(old.Key(), e.Key())) {
		s.write(eff, sortKey(old.Key()), nil)
	}
	b, _ := json.Marshal(&e)
	if e.Listed {
		s.write(eff, sortKey(e.Key()), b)
	}
	// The id record stays when the entry leaves, so an older listing that
	// arrives late cannot bring it back.
	s.write(eff, idKey(e.ID), b)
	return nil
}

// query returns the listed entries after args.After that match its
// filters.
func (s *State) query(args json.RawMessage) (*QueryResult, *protocol.Error) {
	var a QueryArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.Limit < 1 || a.Limit > 1000 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "limit must be between 1 and 1000")
	}
	after, err := hex.DecodeString(a.After)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "invalid cursor")
	}
	filtered := a.Type != "" || len(a.Tags) > 0
	chunk := a.Limit + 1
	if filtered {
		chunk = maxExamined
	}
	recs, truncated, err := s.scan(after, chunk)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeInternal, "storage read failed")
	}
	res := &QueryResult{Entries: []Hit{}}
	for i, r := range recs {
		var e Entry
		if json.Unmarshal(r.value, &e) != nil {
			continue
		}
		if matches(&e, a.Type, a.Tags) {
			if len(res.Entries) == a.Limit {
				// A match beyond the page: stop before it.
				return res, nil
			}
			res.Entries = append(res.Entries, Hit{ID: e.ID, Key: hex.EncodeToString(r.key)})
		}
		res.Last = hex.EncodeToString(r.key)
		if i == len(recs)-1 {
			res.Done = !truncated
		}
	}
	if len(recs) == 0 {
		res.Done = true
	}
	return res, nil
}

func matches(e *Entry, typ string, tags []string) bool {
	if typ != "" && e.Type != typ {
		return false
	}
	for _, t := range tags {
		if !slices.Contains(e.Tags, t) {
			return false
		}
	}
	return true
}

type record struct {
	key   []byte // the sort key, without its prefix
	value []byte
}

// scan returns up to n listed entries after key after, merging the store
// with what is pending, and whether more may follow.
func (s *State) scan(after []byte, n int) ([]record, bool, error) {
	lower := sortKey(after)
	upper := []byte{prefixKey + 1}
	var pend []string
	for k := range s.pending {
		if k[0] == prefixKey && k > string(lower) {
			pend = append(pend, k)
		}
	}
	r := persistence.Range{After: lower, Before: upper, Limit: n + len(pend)}
	stored, err := s.log.Scan(persistence.TableAux, r)
	if err != nil {
		return nil, false, fmt.Errorf("directory %s: %w", s.id, err)
	}
	truncated := len(stored) == r.Limit
	merged := make(map[string][]byte, len(stored)+len(pend))
	for _, rec := range stored {
		merged[string(rec.Key)] = rec.Value
	}
	for _, k := range pend {
		if truncated && k > string(stored[len(stored)-1].Key) {
			continue // read with the next page
		}
		if v := s.pending[k].value; v != nil {
			merged[k] = v
		} else {
			delete(merged, k)
		}
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > n {
		keys, truncated = keys[:n], true
	}
	out := make([]record, len(keys))
	for i, k := range keys {
		out[i] = record{key: []byte(k[1:]), value: merged[k]}
	}
	return out, truncated, nil
}

// ReadOnly reports whether op never writes an entry: a store that refuses
// writes (a full disk) still serves it.
func ReadOnly(op string) bool { return op == OpQuery }
