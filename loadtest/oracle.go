package loadtest

import (
	"fmt"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
)

// Violation kinds the oracle reports.
const (
	// ViolationGap: a watcher never received an event (a seq) that the
	// channel issued after the watcher joined.
	ViolationGap = "gap"
	// ViolationDuplicate: a watcher received the same seq twice.
	ViolationDuplicate = "duplicate"
	// ViolationReorder: a watcher received a seq after a later one, or a
	// message whose segment is not above the previous message's.
	ViolationReorder = "reorder"
	// ViolationMismatch: two watchers received different messages under
	// one seq.
	ViolationMismatch = "mismatch"
	// ViolationUndelivered: an acknowledged message reached no watcher.
	ViolationUndelivered = "undelivered"
	// ViolationLost: an acknowledged message is missing from history (or
	// history holds another message at its segment).
	ViolationLost = "lost"
	// ViolationHistory: history's segments are not contiguous and
	// ascending.
	ViolationHistory = "history"
	// ViolationRewind: a resume was answered with a reset to a seq below
	// one the watcher had already received.
	ViolationRewind = "rewind"
	// ViolationUnverified: the channel, or a watcher, could not be checked:
	// the final watch or the history re-read failed, no session could read
	// the channel, or the watcher's join failed.
	ViolationUnverified = "unverified"
)

// maxViolations bounds the violations a verdict lists (all are counted).
const maxViolations = 200

// maxMissing bounds the seqs a stream remembers as skipped by gaps.
const maxMissing = 4096

// Violation is one broken guarantee.
type Violation struct {
	Kind    string `json:"kind"`
	Channel string `json:"channel"`
	Segment uint64 `json:"segment,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Watcher string `json:"watcher,omitempty"`
	Detail  string `json:"detail"`
}

func (v Violation) String() string {
	s := fmt.Sprintf("%s: channel %s", v.Kind, v.Channel)
	if v.Segment != 0 {
		s += fmt.Sprintf(" segment %d", v.Segment)
	}
	if v.Seq != 0 {
		s += fmt.Sprintf(" seq %d", v.Seq)
	}
	if v.Watcher != "" {
		s += " watcher " + v.Watcher
	}
	return s + ": " + v.Detail
}

// Verdict is the oracle's judgement of a run.
type Verdict struct {
	OK bool `json:"ok"`
	// Counts are violations by kind.
	Counts     map[string]int64 `json:"counts"`
	Violations []Violation      `json:"violations"`
	// What was checked.
	Channels        int    `json:"channels"`
	Watchers        int    `json:"watchers"`
	Acked           int64  `json:"acked"`
	Delivered       uint64 `json:"delivered"`
	HistoryMessages int64  `json:"history_messages"`
	// AckedMissing counts acknowledged messages (and reactions) that
	// history did not hold.
	AckedMissing int64 `json:"acked_missing_from_history"`
	// ReactionsAcked counts acknowledged reactions (liveroom).
	ReactionsAcked int64 `json:"reactions_acked,omitempty"`
	// ResetSkipped counts seqs watchers did not receive because a resume
	// was answered reset: true (the server announced them as no longer
	// kept); they are not gaps.
	ResetSkipped uint64 `json:"reset_skipped,omitempty"`
	// FinalChecks counts the final checks' requests (channel.watch for the
	// final seq, messages.history for the re-read) by result code. A
	// failed one leaves its channel unverified.
	FinalChecks map[string]map[string]int64 `json:"final_checks,omitempty"`
}

// oracle checks, per channel, that every acknowledged message reached
// every watcher exactly once, in order, with no gap in seq, and that
// history still holds it afterwards.
type oracle struct {
	mu         sync.Mutex // guards the fields below
	counts     map[string]int64
	violations []Violation
	channels   []*chanOracle
}

func newOracle() *oracle { return &oracle{counts: make(map[string]int64)} }

// count adds n to a count the verdict reports.
func (o *oracle) count(key string, n int64) {
	if n == 0 {
		return
	}
	o.mu.Lock()
	o.counts[key] += n
	o.mu.Unlock()
}

func (o *oracle) violate(v Violation) {
	o.mu.Lock()
	o.counts[v.Kind]++
	if len(o.violations) < maxViolations {
		o.violations = append(o.violations, v)
	}
	o.mu.Unlock()
}

// channel registers a channel to check.
func (o *oracle) channel(id string) *chanOracle {
	c := &chanOracle{o: o, id: id, acked: make(map[uint64]string), reactions: make(map[reaction]struct{}), reacted: make(map[reaction]struct{})}
	o.mu.Lock()
	o.channels = append(o.channels, c)
	o.mu.Unlock()
	return c
}

// chanOracle is one channel's truth: what was acknowledged, what each seq
// carried, and each watcher's stream.
type chanOracle struct {
	o     *oracle
	id    string
	table seqTable

	mu      sync.Mutex // guards the fields below
	acked   map[uint64]string
	streams []*stream
	// reactions are the acknowledged reaction.adds, reacted the added
	// reactions some watcher received a reaction.updated for.
	reactions, reacted map[reaction]struct{}
}

// reaction is one user's reaction with one name to one message.
type reaction struct {
	segment    uint64
	user, name string
}

// acked records an acknowledged message.
func (c *chanOracle) ack(segment uint64, clientID string) {
	c.mu.Lock()
	c.acked[segment] = clientID
	c.mu.Unlock()
}

// ackReaction records an acknowledged reaction.add. Adding one already
// held succeeds without an event; the one that added it had the event.
func (c *chanOracle) ackReaction(r reaction) {
	c.mu.Lock()
	c.reactions[r] = struct{}{}
	c.mu.Unlock()
}

// reactionEvent records a reaction.updated a watcher received (its order
// is the stream's business; this is what it carried).
func (c *chanOracle) reactionEvent(r reaction, added bool) {
	if !added {
		return // the load test never removes one
	}
	c.mu.Lock()
	c.reacted[r] = struct{}{}
	c.mu.Unlock()
}

// unverified records that the channel could not be checked, and why.
func (c *chanOracle) unverified(detail string) {
	c.o.violate(Violation{Kind: ViolationUnverified, Channel: c.id, Detail: detail})
}

// watch registers a watcher's stream; call begin when its join or watch
// reply arrives.
func (c *chanOracle) watch(watcher string) *stream {
	s := &stream{c: c, watcher: watcher}
	c.mu.Lock()
	c.streams = append(c.streams, s)
	c.mu.Unlock()
	return s
}

// stream is what one watcher received from one channel. Its methods may
// be called from any goroutine.
type stream struct {
	c       *chanOracle
	watcher string

	mu          sync.Mutex // guards the fields below
	started     bool
	start, last uint64
	lastSegment uint64
	missing     map[uint64]struct{} // seqs a jump skipped, not yet received
	overflow    uint64              // skipped seqs beyond maxMissing
	received    uint64
	resets      []seqRange // seqs resets skipped
	skipped     uint64     // how many
}

// seqRange is the seqs from..to, both included.
type seqRange struct{ from, to uint64 }

// begin sets the position the watch started from (the reply's seq): every
// later seq must arrive, once, in order. Later calls are ignored.
func (s *stream) begin(seq uint64) {
	s.mu.Lock()
	if !s.started {
		s.started, s.start, s.last = true, seq, seq
	}
	s.mu.Unlock()
}

// event records one persisted event; segment is the message's segment
// for message events and 0 for others.
func (s *stream) event(seq uint64, segment uint64) {
	var v *Violation
	s.mu.Lock()
	s.received++
	switch {
	case !s.started:
		v = &Violation{Kind: ViolationReorder, Detail: "event arrived before the join reply"}
	case seq == s.last+1:
		s.last = seq
	case seq > s.last+1:
		for q := s.last + 1; q < seq; q++ {
			if len(s.missing) >= maxMissing {
				s.overflow += seq - q
				break
			}
			if s.missing == nil {
				s.missing = make(map[uint64]struct{})
			}
			s.missing[q] = struct{}{}
		}
		s.last = seq
	case seq <= s.start:
		v = &Violation{Kind: ViolationDuplicate, Detail: fmt.Sprintf("seq at or below the join position %d", s.start)}
	default:
		if _, ok := s.missing[seq]; ok {
			delete(s.missing, seq)
			v = &Violation{Kind: ViolationReorder, Detail: fmt.Sprintf("arrived after seq %d", s.last)}
		} else if s.wasReset(seq) {
			v = &Violation{Kind: ViolationReorder, Detail: "arrived after a reset skipped it"}
		} else {
			v = &Violation{Kind: ViolationDuplicate, Detail: "received twice"}
		}
	}
	if v == nil && segment != 0 {
		if segment <= s.lastSegment {
			v = &Violation{Kind: ViolationReorder, Detail: fmt.Sprintf("segment after segment %d", s.lastSegment)}
		}
		s.lastSegment = segment
	}
	s.mu.Unlock()
	if v != nil {
		v.Channel, v.Seq, v.Segment, v.Watcher = s.c.id, seq, segment, s.watcher
		s.c.o.violate(*v)
	}
	if prev, ok := s.c.table.check(seq, segment); !ok {
		s.c.o.violate(Violation{Kind: ViolationMismatch, Channel: s.c.id, Seq: seq, Segment: segment, Watcher: s.watcher,
			Detail: fmt.Sprintf("another watcher received %s under this seq", describeSlot(prev))})
	}
}

// reset records a resume answered reset: true (the client's synthetic
// client.reset event): the server no longer keeps the events after the
// last seq this watcher received, and the watch goes on after to, the
// resume reply's seq. The seqs in between were announced as skipped:
// they are counted, not gaps. A reset to below the last seq received
// means the channel's seq went back.
func (s *stream) reset(to uint64) {
	var v *Violation
	s.mu.Lock()
	switch {
	case !s.started:
		v = &Violation{Kind: ViolationReorder, Detail: "reset before the join reply"}
	case to < s.last:
		v = &Violation{Kind: ViolationRewind, Detail: fmt.Sprintf("reset to seq %d after seq %d was received", to, s.last)}
	case to > s.last:
		s.resets = append(s.resets, seqRange{s.last + 1, to})
		s.skipped += to - s.last
		s.last = to
	}
	s.mu.Unlock()
	if v != nil {
		v.Channel, v.Seq, v.Watcher = s.c.id, to, s.watcher
		s.c.o.violate(*v)
	}
}

// wasReset reports whether a reset skipped seq; s.mu is held.
func (s *stream) wasReset(seq uint64) bool {
	for _, r := range s.resets {
		if seq >= r.from && seq <= r.to {
			return true
		}
	}
	return false
}

// position returns the last seq received and whether the watch began.
func (s *stream) position() (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.started
}

// finish checks the channel once the run is over: final is the channel's
// last seq, history its messages in ascending segment order (nil when
// history was not read: the caller reports the channel unverified).
func (c *chanOracle) finish(final uint64, history []histMsg) {
	segOf := c.table.segments()
	c.mu.Lock()
	streams := append([]*stream(nil), c.streams...)
	acked := maps.Clone(c.acked)
	reactions := maps.Clone(c.reactions)
	reacted := maps.Clone(c.reacted)
	c.mu.Unlock()

	watching := 0
	for _, s := range streams {
		s.mu.Lock()
		if !s.started {
			s.mu.Unlock()
			c.o.violate(Violation{Kind: ViolationUnverified, Channel: c.id, Watcher: s.watcher, Detail: "the watcher's join failed: nothing it received was checked"})
			continue
		}
		watching++
		c.o.count("_reset_skipped", int64(s.skipped))
		var gaps []uint64
		for q := range s.missing {
			gaps = append(gaps, q)
		}
		for q := s.last + 1; q <= final; q++ {
			gaps = append(gaps, q)
		}
		overflow := s.overflow
		s.mu.Unlock()
		sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
		for _, q := range gaps {
			c.o.violate(Violation{Kind: ViolationGap, Channel: c.id, Seq: q, Segment: segOf.bySeq[q], Watcher: s.watcher, Detail: "never received"})
		}
		if overflow > 0 {
			c.o.count(ViolationGap, int64(overflow))
		}
	}
	if watching > 0 {
		for seg := range acked {
			if _, ok := segOf.seen[seg]; !ok {
				c.o.violate(Violation{Kind: ViolationUndelivered, Channel: c.id, Segment: seg, Detail: "acknowledged, received by no watcher"})
			}
		}
		for r := range reactions {
			if _, ok := reacted[r]; !ok {
				c.o.violate(Violation{Kind: ViolationUndelivered, Channel: c.id, Segment: r.segment, Watcher: r.user,
					Detail: fmt.Sprintf("reaction %q acknowledged, its reaction.updated received by no watcher", r.name)})
			}
		}
	}
	if history == nil {
		return
	}
	c.o.count("_history_messages", int64(len(history)))
	inHistory := make(map[uint64]*histMsg, len(history))
	for i := range history {
		m := &history[i]
		if i > 0 && m.Segment != history[i-1].Segment+1 {
			c.o.violate(Violation{Kind: ViolationHistory, Channel: c.id, Segment: m.Segment,
				Detail: fmt.Sprintf("history jumps from segment %d to %d", history[i-1].Segment, m.Segment)})
		}
		inHistory[m.Segment] = m
	}
	for seg, id := range acked {
		got, ok := inHistory[seg]
		switch {
		case !ok:
			c.o.violate(Violation{Kind: ViolationLost, Channel: c.id, Segment: seg, Detail: "acknowledged, missing from history"})
		case got.ClientID != id:
			c.o.violate(Violation{Kind: ViolationLost, Channel: c.id, Segment: seg, Detail: fmt.Sprintf("history holds client_id %q, the acknowledgement said %q", got.ClientID, id)})
		}
	}
	// Every acknowledged reaction is counted on its message (more may be:
	// a reaction whose reply was lost can still have been added).
	users := make(map[reaction]int64) // by segment and name
	for r := range reactions {
		users[reaction{segment: r.segment, name: r.name}]++
	}
	for k, n := range users {
		m, ok := inHistory[k.segment]
		if ok && m.Reactions[k.name] >= n {
			continue
		}
		var have int64
		if ok {
			have = m.Reactions[k.name]
		}
		c.o.violate(Violation{Kind: ViolationLost, Channel: c.id, Segment: k.segment,
			Detail: fmt.Sprintf("history counts %d %q reactions, %d were acknowledged", have, k.name, n)})
	}
}

// histMsg is what the oracle needs of a history message.
type histMsg struct {
	Segment   uint64
	ClientID  string
	Reactions map[string]int64
}

// verdict returns the judgement after every channel finished.
func (o *oracle) verdict() Verdict {
	o.mu.Lock()
	defer o.mu.Unlock()
	v := Verdict{Counts: make(map[string]int64), Channels: len(o.channels)}
	for k, n := range o.counts {
		switch k {
		case "_history_messages":
			v.HistoryMessages = n
		case "_reset_skipped":
			v.ResetSkipped = uint64(n)
		default:
			v.Counts[k] = n
		}
	}
	v.AckedMissing = o.counts[ViolationLost]
	v.Violations = append([]Violation(nil), o.violations...)
	sort.SliceStable(v.Violations, func(i, j int) bool {
		a, b := v.Violations[i], v.Violations[j]
		if a.Channel != b.Channel {
			return a.Channel < b.Channel
		}
		return a.Seq < b.Seq
	})
	for _, c := range o.channels {
		c.mu.Lock()
		v.Acked += int64(len(c.acked))
		v.ReactionsAcked += int64(len(c.reactions))
		v.Watchers += len(c.streams)
		for _, s := range c.streams {
			s.mu.Lock()
			v.Delivered += s.received
			s.mu.Unlock()
		}
		c.mu.Unlock()
	}
	v.OK = len(v.Counts) == 0
	return v
}

// seqTable records what each seq of a channel carried, so watchers can be
// compared with each other without a lock on the hot path: a chunked
// array of atomic slots, grown under a lock. A slot holds segment+1 for a
// message event and otherEvent for any other persisted event.
type seqTable struct {
	mu     sync.Mutex // serialises growth
	chunks atomic.Pointer[[]*seqChunk]
}

const (
	chunkBits  = 12
	chunkSize  = 1 << chunkBits
	otherEvent = uint64(1) << 63
)

type seqChunk [chunkSize]atomic.Uint64

func (t *seqTable) slot(seq uint64) *atomic.Uint64 {
	ci := int(seq >> chunkBits)
	if cs := t.chunks.Load(); cs != nil && ci < len(*cs) {
		return &(*cs)[ci][seq&(chunkSize-1)]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var cs []*seqChunk
	if p := t.chunks.Load(); p != nil {
		cs = *p
	}
	if ci >= len(cs) {
		grown := make([]*seqChunk, ci+1, max(ci+1, 2*len(cs)))
		copy(grown, cs)
		for i := len(cs); i <= ci; i++ {
			grown[i] = new(seqChunk)
		}
		t.chunks.Store(&grown)
		cs = grown
	}
	return &cs[ci][seq&(chunkSize-1)]
}

// check records that seq carried segment (0: not a message) and reports
// whether that agrees with what was recorded before.
func (t *seqTable) check(seq, segment uint64) (prev uint64, ok bool) {
	want := otherEvent
	if segment != 0 {
		want = segment + 1
	}
	p := t.slot(seq)
	// Every watcher of the channel checks the same slot: a load first
	// keeps the slot's cache line shared once the first one set it.
	if prev = p.Load(); prev == 0 && p.CompareAndSwap(0, want) {
		return 0, true
	}
	prev = p.Load()
	return prev, prev == want
}

func describeSlot(v uint64) string {
	if v == otherEvent {
		return "a non-message event"
	}
	return fmt.Sprintf("segment %d", v-1)
}

type segIndex struct {
	bySeq map[uint64]uint64   // seq → segment
	seen  map[uint64]struct{} // segments some watcher received
}

// segments indexes the table: which segment each seq carried.
func (t *seqTable) segments() segIndex {
	idx := segIndex{bySeq: make(map[uint64]uint64), seen: make(map[uint64]struct{})}
	p := t.chunks.Load()
	if p == nil {
		return idx
	}
	for ci, c := range *p {
		for i := range c {
			v := c[i].Load()
			if v == 0 || v == otherEvent {
				continue
			}
			seq := uint64(ci)<<chunkBits | uint64(i)
			idx.bySeq[seq] = v - 1
			idx.seen[v-1] = struct{}{}
		}
	}
	return idx
}
