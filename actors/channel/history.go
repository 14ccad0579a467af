package channel

// Reading history: messages.history pages, the walk over the store's
// chunks that finds a page's messages, and how a caller sees them.

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

func (s *State) handleHistory(c Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a protocol.HistoryArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	l := s.cfg.Limits
	limit := l.DefaultHistoryLimit
	if a.Limit != nil {
		if *a.Limit < 1 || *a.Limit > l.MaxHistoryLimit {
			return nil, badRequest("limit must be between 1 and %d", l.MaxHistoryLimit)
		}
		limit = *a.Limit
	}
	if err := checkText("search", a.Search, l.MaxNameLen); err != nil {
		return nil, err
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if err := s.canRead(c, m); err != nil {
		return nil, err
	}
	q := pageQuery{limit: limit}
	if a.After != nil {
		q.after, q.forward = *a.After, true
	}
	if a.Before != nil {
		if *a.Before == 0 {
			// Nothing lies below segment 0 (0 is not "unbounded" here).
			return protocol.HistoryResult{Messages: []*protocol.Message{}}, nil
		}
		q.before = *a.Before
	}
	var thread func(*protocol.Message) bool
	var parentSeg uint64
	switch {
	case a.ParentID != "":
		p, perr := s.threadParent(a.ParentID)
		if perr != nil {
			return nil, perr
		}
		parentSeg = p.Segment
		parent := a.ParentID
		thread = func(m *protocol.Message) bool { return m.ParentID == parent }
	case a.TopLevel:
		thread = func(m *protocol.Message) bool { return m.ParentID == "" }
	}
	q.filter = thread
	if a.Search != "" {
		// Every word of the query, case-insensitive, anywhere in the
		// text; deleted messages have no text left to match.
		words := strings.Fields(strings.ToLower(a.Search))
		q.filter = func(m *protocol.Message) bool {
			return (thread == nil || thread(m)) && !m.Deleted && containsAll(strings.ToLower(m.Text), words)
		}
	}
	var msgs []*protocol.Message
	var more bool
	var next uint64
	var err error
	if parentSeg != 0 {
		msgs, more, next, err = s.threadPage(parentSeg, q)
	} else {
		msgs, more, next, err = s.page(q)
	}
	if err != nil {
		return nil, internal(err)
	}
	view, perr := s.viewMessages(c, msgs)
	if perr != nil {
		return nil, perr
	}
	res := protocol.HistoryResult{Messages: view, HasMore: more}
	switch {
	case more && q.forward:
		res.NextAfter = &next
	case more:
		res.NextBefore = &next
	}
	return res, nil
}

// pageQuery selects a page of messages: segments strictly between after
// and before (0: unbounded), the oldest matching ones when forward, else the
// newest; at most limit of them, matching filter when set.
type pageQuery struct {
	after, before uint64
	forward       bool
	limit         int
	filter        func(*protocol.Message) bool
}

// maxScanned bounds how many messages one filtered page may examine
// (RichConfig.ScanBudget overrides it).
const maxScanned = 10000

func (s *State) scanBudget() int {
	if b := s.cfg.Rich.ScanBudget; b > 0 {
		return b
	}
	return maxScanned
}

// page returns one page in ascending segment order, whether more
// matching messages lie beyond it and, when they do, the bound the next
// page starts from (exclusive): the page's last message, or the last
// segment examined when the scan budget ran out first. It reads the
// cache, then the store in chunks; writes not yet durable are only in the
// cache (pinned there), so the cache's copy of a segment always wins.
func (s *State) page(q pageQuery) ([]*protocol.Message, bool, uint64, error) {
	lo, hi := q.after+1, s.meta.Channel.LastSegment // inclusive bounds
	if q.before != 0 && q.before-1 < hi {
		hi = q.before - 1
	}
	var out []*protocol.Message
	scanned := 0
	// Walk segments from one end, served by the cache or by store reads
	// of chunks of misses. Segments the store was read for and that hold
	// nothing (an imported history may have gaps) are stepped over.
	w := newPageWalk(s, lo, hi, q.forward, q.limit+1)
	seg := hi
	if q.forward {
		seg = lo
	}
	inRange := func(x uint64) bool { return x >= lo && x <= hi && x != 0 }
	var last uint64 // the last segment examined
	for inRange(seg) && len(out) <= q.limit {
		if scanned >= s.scanBudget() {
			return finishPage(out, q), true, last, nil
		}
		m, err := w.message(seg)
		if err != nil {
			return nil, false, 0, err
		}
		scanned++
		last = seg
		if m != nil && (q.filter == nil || q.filter(m)) {
			out = append(out, m)
		}
		seg = w.next(seg)
	}
	more := len(out) > q.limit
	var next uint64
	if more {
		out = out[:q.limit]
		next = out[q.limit-1].Segment
	}
	return finishPage(out, q), more, next, nil
}

// finishPage puts a page into ascending order.
func finishPage(out []*protocol.Message, q pageQuery) []*protocol.Message {
	if !q.forward {
		slices.Reverse(out)
	}
	return out
}

// Bounds of the store chunks a page walk reads.
const (
	minPageChunk = 16
	maxPageChunk = 1024
)

// pageWalk reads the messages of one page walk. On a cache miss it reads a
// chunk of the store in the walk's direction and keeps it for the rest of
// the walk, so a cold page costs a range scan or two, not one read per
// message. The chunk is kept here, not only in the cache: the cache may be
// smaller than a chunk, and then it would evict the chunk as it stored it.
// What the chunk covered and did not hold is a gap the walk steps over
// (next), but for writes not yet durable, which only the cache holds.
type pageWalk struct {
	s      *State
	step   int
	lo, hi uint64
	chunk  int // size of the next chunk; it doubles as the walk goes on
	read   map[uint64]*protocol.Message
	keys   []uint64 // the segments read holds, in walk order
	edge   uint64   // the last segment the chunk covered, in walk order (0: none)
	dirty  []uint64 // segments in [lo, hi] the cache holds undurable writes of, in walk order
}

func newPageWalk(s *State, lo, hi uint64, forward bool, chunk int) *pageWalk {
	w := &pageWalk{s: s, step: -1, lo: lo, hi: hi, chunk: chunk}
	if forward {
		w.step = 1
	}
	s.msgs.eachDirty(func(seg uint64, _ *protocol.Message) {
		if seg >= lo && seg <= hi {
			w.dirty = append(w.dirty, seg)
		}
	})
	slices.SortFunc(w.dirty, w.cmp)
	return w
}

// cmp orders segments in walk order.
func (w *pageWalk) cmp(a, b uint64) int {
	if a == b {
		return 0
	}
	if (a < b) == (w.step > 0) {
		return -1
	}
	return 1
}

// firstFrom returns the first of keys (in walk order) at or after seg.
func (w *pageWalk) firstFrom(keys []uint64, seg uint64) (uint64, bool) {
	i, _ := slices.BinarySearchFunc(keys, seg, w.cmp)
	if i < len(keys) {
		return keys[i], true
	}
	return 0, false
}

// next returns the segment to examine after seg: the next one the chunk
// read holds, or the first past what it covered, unless a write not yet
// durable comes first.
func (w *pageWalk) next(seg uint64) uint64 {
	cand := uint64(int64(seg) + int64(w.step))
	if w.edge != 0 && w.cmp(cand, w.edge) <= 0 {
		if k, ok := w.firstFrom(w.keys, cand); ok {
			cand = k
		} else {
			cand = uint64(int64(w.edge) + int64(w.step))
		}
	}
	if d, ok := w.firstFrom(w.dirty, uint64(int64(seg)+int64(w.step))); ok && w.cmp(d, cand) < 0 {
		cand = d
	}
	return cand
}

func (w *pageWalk) message(seg uint64) (*protocol.Message, error) {
	// The cache first: it holds every record not yet durable.
	if m, ok := w.s.msgs.get(seg); ok {
		return m, nil
	}
	if m, ok := w.read[seg]; ok {
		return m, nil
	}
	n := min(max(w.chunk, minPageChunk), maxPageChunk)
	w.chunk = n * 2
	r := persistence.Range{Limit: n}
	if w.step > 0 {
		r.After = persistence.U64(seg - 1)
		r.Before = persistence.U64(w.hi + 1)
	} else {
		r.Reverse = true
		r.Before = persistence.U64(seg + 1)
		if w.lo > 1 {
			r.After = persistence.U64(w.lo - 1)
		}
	}
	recs, err := w.s.log.Scan(persistence.TableMessage, r)
	if err != nil {
		return nil, err
	}
	w.read = make(map[uint64]*protocol.Message, len(recs))
	w.keys = w.keys[:0]
	// The chunk covers up to its last record, or to the walk's end when
	// it came back short.
	w.edge = w.hi
	if w.step < 0 {
		w.edge = w.lo
	}
	for _, rec := range recs {
		k, _ := persistence.ParseU64(rec.Key)
		w.keys = append(w.keys, k)
		if w.s.msgs.isDirty(k) {
			continue // the cache holds a newer version
		}
		m, err := decodeMessage(rec.Value)
		if err != nil {
			return nil, err
		}
		w.read[k] = m
		if _, ok := w.s.msgs.get(k); !ok {
			w.s.msgs.put(k, m)
		}
	}
	if len(recs) == n {
		w.edge = w.keys[len(w.keys)-1]
	}
	if m, ok := w.s.msgs.get(seg); ok {
		return m, nil
	}
	return w.read[seg], nil
}

// viewMessage is a message as the caller sees it: with the caller's
// my_reactions and favorite (best effort, see personalize) and, for
// moderators, flag_count.
func (s *State) viewMessage(c Caller, m *protocol.Message) *protocol.Message {
	return s.withFlagCount(c, s.personalize(c, m))
}

// viewMessages is a page as the caller sees it.
func (s *State) viewMessages(c Caller, ms []*protocol.Message) ([]*protocol.Message, *protocol.Error) {
	out, err := s.personalizeAll(c, ms)
	if err != nil {
		return nil, internal(err)
	}
	for i, m := range out {
		out[i] = s.withFlagCount(c, m)
	}
	return out, nil
}
