// Package chaos proves that a build survives faults: it starts its own
// cluster of `switchboard serve` processes, drives the load test's chat
// scenario across every gateway, kills, pauses, wipes, restarts and
// drains nodes on a seeded schedule, and at the end reads every channel's
// history back and checks it against every acknowledgement the load
// generator received.
//
// The check (Check) is a pure function over the recorded
// acknowledgements and the histories read back; the process orchestration
// (Run) only gathers them.
package chaos

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Violation kinds Check reports.
const (
	// ViolationLost: an acknowledged message is not in history.
	ViolationLost = "lost"
	// ViolationDuplicate: one client_id is in history more than once, or
	// was acknowledged as two different messages.
	ViolationDuplicate = "duplicate"
	// ViolationGap: history's segments are not contiguous from 1.
	ViolationGap = "gap"
	// ViolationReorder: a message sent after another was acknowledged has
	// a lower segment (real-time order, which includes each sender's own
	// order), or history is not in ascending segment order.
	ViolationReorder = "reorder"
	// ViolationConflict: one segment was acknowledged twice with different
	// content (two leaders each acknowledged a message there).
	ViolationConflict = "conflict"
	// ViolationMismatch: history holds the acknowledged message, but not
	// as acknowledged: at another segment or under another message id.
	ViolationMismatch = "mismatch"
	// ViolationUnverified: the channel's history could not be read, or an
	// acknowledgement carried no segment.
	ViolationUnverified = "unverified"
)

// maxViolations bounds the violations a verdict lists (all are counted).
const maxViolations = 200

// Ack is one acknowledged message.send as the load generator saw it.
type Ack struct {
	Channel   string `json:"channel"`
	Segment   uint64 `json:"segment"`
	ClientID  string `json:"client_id"`
	MessageID string `json:"message_id"`
	Sender    string `json:"sender"`
	// Sent is when the send was first written and Acked when its
	// acknowledgement arrived, both on the generator's clock from one
	// origin. A resend keeps its first Sent.
	Sent  time.Duration `json:"sent_ns"`
	Acked time.Duration `json:"acked_ns"`
}

// Message is one message of a channel's history as read back.
type Message struct {
	Segment  uint64 `json:"segment"`
	ID       string `json:"id"`
	ClientID string `json:"client_id"`
	Sender   string `json:"sender"`
}

// History is one channel's whole history, oldest first; or Missing: the
// channel does not exist (not_found); or why it could not be read (Err).
type History struct {
	Channel  string    `json:"channel"`
	Messages []Message `json:"messages"`
	Missing  bool      `json:"missing,omitempty"`
	Err      string    `json:"error,omitempty"`
}

// Violation is one broken guarantee, naming its channel and segment.
type Violation struct {
	Kind     string `json:"kind"`
	Channel  string `json:"channel"`
	Segment  uint64 `json:"segment,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Detail   string `json:"detail"`
}

func (v Violation) String() string {
	s := v.Kind + ": channel " + v.Channel
	if v.Segment != 0 {
		s += fmt.Sprintf(" segment %d", v.Segment)
	}
	if v.ClientID != "" {
		s += " client_id " + v.ClientID
	}
	return s + ": " + v.Detail
}

// Verdict is Check's judgement.
type Verdict struct {
	OK bool `json:"ok"`
	// Counts are violations by kind; Violations lists the first 200 by
	// channel and segment.
	Counts     map[string]int `json:"counts"`
	Violations []Violation    `json:"violations"`
	// What was checked.
	Channels        int `json:"channels"`
	Acked           int `json:"acked"`
	HistoryMessages int `json:"history_messages"`
	// Unacknowledged counts history messages of the run no
	// acknowledgement named: sends whose reply was lost (a timeout, a
	// dropped connection, a node that died after writing). They are
	// allowed: a client that never got an answer does not know.
	Unacknowledged int `json:"unacknowledged"`
	// WithoutClientID counts history messages without a client_id:
	// system messages (a member joined …).
	WithoutClientID int `json:"without_client_id"`
}

// Summary is the verdict in one line.
func (v Verdict) Summary() string {
	checked := fmt.Sprintf("%d channels, %d acknowledged messages, %d history messages (%d never acknowledged, %d system)",
		v.Channels, v.Acked, v.HistoryMessages, v.Unacknowledged, v.WithoutClientID)
	if v.OK {
		return "check: OK — " + checked
	}
	return "check: FAILED (" + countList(v.Counts) + ") — " + checked
}

// Check judges a run: acks are every acknowledgement the generator
// received, histories every channel of the run read back in full. For
// each channel it checks that
//
//   - every acknowledged message is in history exactly once, at the
//     acknowledged segment, under the acknowledged message id (lost,
//     duplicate, mismatch);
//   - history's segments run 1, 2, 3 … without a gap, ascending (gap,
//     reorder);
//   - a message first sent after another was acknowledged has a higher
//     segment — each sender's acknowledgement order, and across senders
//     (reorder);
//   - no segment was acknowledged for two different messages, and no
//     client_id as two different messages (conflict, duplicate).
//
// A channel with acknowledgements but no history, or whose history could
// not be read, is unverified.
func Check(acks []Ack, histories []History) Verdict {
	byChannel := make(map[string][]Ack)
	for _, a := range acks {
		byChannel[a.Channel] = append(byChannel[a.Channel], a)
	}
	var c checker
	c.counts = make(map[string]int)
	seen := make(map[string]bool)
	for _, h := range histories {
		if seen[h.Channel] {
			c.violate(Violation{Kind: ViolationUnverified, Channel: h.Channel, Detail: "history given twice"})
			continue
		}
		seen[h.Channel] = true
		c.channel(h.Channel, byChannel[h.Channel], &h)
	}
	for ch, as := range byChannel {
		if !seen[ch] {
			c.channel(ch, as, nil)
		}
	}
	slices.SortStableFunc(c.violations, func(a, b Violation) int {
		return cmp.Or(cmp.Compare(a.Channel, b.Channel), cmp.Compare(a.Segment, b.Segment))
	})
	if len(c.violations) > maxViolations {
		c.violations = c.violations[:maxViolations]
	}
	c.v.Counts, c.v.Violations = c.counts, c.violations
	c.v.OK = len(c.counts) == 0
	return c.v
}

type checker struct {
	v          Verdict
	counts     map[string]int
	violations []Violation
}

func (c *checker) violate(v Violation) {
	c.counts[v.Kind]++
	c.violations = append(c.violations, v)
}

// channel checks one channel; h is nil when its history was not read.
func (c *checker) channel(ch string, acks []Ack, h *History) {
	c.v.Channels++
	c.v.Acked += len(acks)
	acked, consistent := c.acks(ch, acks)
	c.order(ch, consistent)
	switch {
	case h == nil:
		c.violate(Violation{Kind: ViolationUnverified, Channel: ch, Detail: fmt.Sprintf("%d acknowledged messages, history not read", len(acks))})
		return
	case h.Err != "":
		c.violate(Violation{Kind: ViolationUnverified, Channel: ch, Detail: "history could not be read: " + h.Err})
		return
	case h.Missing:
		// The run created every channel it reads: one that no longer
		// exists was lost, with every message acknowledged in it.
		c.violate(Violation{Kind: ViolationLost, Channel: ch, Detail: fmt.Sprintf("the channel no longer exists (not_found), with its %d acknowledged messages", len(acked))})
		return
	}
	c.v.HistoryMessages += len(h.Messages)
	bySegment := make(map[uint64]*Message, len(h.Messages))
	byClientID := make(map[string]*Message, len(h.Messages))
	var prev uint64
	for i := range h.Messages {
		m := &h.Messages[i]
		switch {
		case m.Segment <= prev:
			c.violate(Violation{Kind: ViolationReorder, Channel: ch, Segment: m.Segment, ClientID: m.ClientID,
				Detail: fmt.Sprintf("history lists segment %d after segment %d", m.Segment, prev)})
		case m.Segment != prev+1:
			missing := fmt.Sprintf("segments %d to %d are missing", prev+1, m.Segment-1)
			if m.Segment == prev+2 {
				missing = fmt.Sprintf("segment %d is missing", prev+1)
			}
			jump := fmt.Sprintf("history jumps from segment %d to %d", prev, m.Segment)
			if prev == 0 {
				jump = fmt.Sprintf("history starts at segment %d", m.Segment)
			}
			c.violate(Violation{Kind: ViolationGap, Channel: ch, Segment: prev + 1, Detail: jump + ": " + missing})
		}
		prev = max(prev, m.Segment)
		if _, dup := bySegment[m.Segment]; !dup {
			bySegment[m.Segment] = m
		}
		if m.ClientID == "" {
			c.v.WithoutClientID++ // a system message
			continue
		}
		if first, dup := byClientID[m.ClientID]; dup {
			c.violate(Violation{Kind: ViolationDuplicate, Channel: ch, Segment: m.Segment, ClientID: m.ClientID,
				Detail: fmt.Sprintf("history holds this client_id at segment %d and again here", first.Segment)})
			continue
		}
		byClientID[m.ClientID] = m
		if _, ok := acked[m.ClientID]; !ok {
			c.v.Unacknowledged++
		}
	}
	for _, a := range sortedAcks(acked) {
		got := bySegment[a.Segment]
		elsewhere := byClientID[a.ClientID]
		switch {
		case a.Segment == 0:
			// Reported by acks.
		case got != nil && got.ClientID == a.ClientID:
			if a.MessageID != "" && got.ID != "" && got.ID != a.MessageID {
				c.violate(Violation{Kind: ViolationMismatch, Channel: ch, Segment: a.Segment, ClientID: a.ClientID,
					Detail: fmt.Sprintf("acknowledged as message %s, history holds message %s", a.MessageID, got.ID)})
			}
		case elsewhere != nil:
			c.violate(Violation{Kind: ViolationMismatch, Channel: ch, Segment: a.Segment, ClientID: a.ClientID,
				Detail: fmt.Sprintf("acknowledged at segment %d, history holds it at segment %d", a.Segment, elsewhere.Segment)})
		case got != nil:
			c.violate(Violation{Kind: ViolationLost, Channel: ch, Segment: a.Segment, ClientID: a.ClientID,
				Detail: fmt.Sprintf("acknowledged, missing from history (which holds client_id %q from %s at this segment)", got.ClientID, got.Sender)})
		default:
			c.violate(Violation{Kind: ViolationLost, Channel: ch, Segment: a.Segment, ClientID: a.ClientID,
				Detail: "acknowledged (sent by " + a.Sender + "), missing from history"})
		}
	}
}

// acks checks a channel's acknowledgements against each other. It
// returns the first one of each client_id, and the acknowledgements that
// agree with every other (one per client_id, one per segment) for the
// order check.
func (c *checker) acks(ch string, acks []Ack) (first map[string]Ack, consistent []Ack) {
	bySegment := make(map[uint64]Ack, len(acks))
	byClientID := make(map[string]Ack, len(acks))
	for _, a := range acks {
		if a.Segment == 0 {
			c.violate(Violation{Kind: ViolationUnverified, Channel: ch, ClientID: a.ClientID, Detail: "acknowledged without a segment"})
			continue
		}
		if first, ok := byClientID[a.ClientID]; ok {
			if first.Segment != a.Segment || first.MessageID != a.MessageID {
				c.violate(Violation{Kind: ViolationDuplicate, Channel: ch, Segment: a.Segment, ClientID: a.ClientID,
					Detail: fmt.Sprintf("acknowledged as message %s at segment %d and as message %s at segment %d",
						first.MessageID, first.Segment, a.MessageID, a.Segment)})
			}
			continue
		}
		byClientID[a.ClientID] = a
		if first, ok := bySegment[a.Segment]; ok {
			c.violate(Violation{Kind: ViolationConflict, Channel: ch, Segment: a.Segment, ClientID: a.ClientID,
				Detail: fmt.Sprintf("acknowledged for client_id %q (message %s, from %s) and for client_id %q (message %s, from %s)",
					first.ClientID, first.MessageID, first.Sender, a.ClientID, a.MessageID, a.Sender)})
			continue
		}
		bySegment[a.Segment] = a
	}
	for _, a := range bySegment {
		if byClientID[a.ClientID] == a {
			consistent = append(consistent, a)
		}
	}
	return byClientID, consistent
}

// order checks real-time order: when a was acknowledged before b was
// first sent, the server had committed a before it saw b, so b's segment
// must be above a's. It sweeps the sends in order of Sent, keeping the
// highest segment acknowledged before each.
func (c *checker) order(ch string, acks []Ack) {
	byAcked := slices.Clone(acks)
	slices.SortFunc(byAcked, func(a, b Ack) int { return cmp.Compare(a.Acked, b.Acked) })
	bySent := acks
	slices.SortFunc(bySent, func(a, b Ack) int { return cmp.Compare(a.Sent, b.Sent) })
	var top *Ack // highest segment acknowledged so far
	i := 0
	for k := range bySent {
		b := &bySent[k]
		for ; i < len(byAcked) && byAcked[i].Acked < b.Sent; i++ {
			if top == nil || byAcked[i].Segment > top.Segment {
				top = &byAcked[i]
			}
		}
		if top != nil && top.Segment > b.Segment && top.ClientID != b.ClientID {
			who := "its sender's earlier message"
			if top.Sender != b.Sender {
				who = top.Sender + "'s message"
			}
			c.violate(Violation{Kind: ViolationReorder, Channel: ch, Segment: b.Segment, ClientID: b.ClientID,
				Detail: fmt.Sprintf("sent by %s %s after %s %q was acknowledged at segment %d, yet acknowledged at the lower segment %d",
					b.Sender, fmtDur(b.Sent-top.Acked), who, top.ClientID, top.Segment, b.Segment)})
		}
	}
}

func sortedAcks(m map[string]Ack) []Ack {
	out := make([]Ack, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Ack) int {
		return cmp.Or(cmp.Compare(a.Segment, b.Segment), cmp.Compare(a.ClientID, b.ClientID))
	})
	return out
}

func fmtDur(d time.Duration) string { return d.Round(time.Microsecond).String() }

// countList lists counts by kind: "gap 2, lost 1".
func countList(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", k, counts[k])
	}
	return s
}
