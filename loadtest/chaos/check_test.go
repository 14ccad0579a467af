package chaos

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// cleanRun is a consistent run: on each channel, three senders send in
// turn, each message acknowledged before the next is sent, and a few
// messages whose acknowledgement was lost are in history unacknowledged.
func cleanRun(channels, perChannel int) ([]Ack, []History) {
	var acks []Ack
	var hist []History
	for c := range channels {
		ch := fmt.Sprintf("room%d", c)
		h := History{Channel: ch}
		for i := range perChannel {
			seg := uint64(i + 1)
			m := Message{Segment: seg, ID: fmt.Sprintf("%d-%s", seg, ch), ClientID: fmt.Sprintf("%s.%d", ch, i), Sender: fmt.Sprintf("u%d", i%3)}
			h.Messages = append(h.Messages, m)
			if i%7 == 6 {
				continue // its reply was lost
			}
			at := time.Duration(i) * 10 * time.Millisecond
			acks = append(acks, Ack{Channel: ch, Segment: seg, ClientID: m.ClientID, MessageID: m.ID, Sender: m.Sender,
				Sent: at, Acked: at + 5*time.Millisecond})
		}
		hist = append(hist, h)
	}
	return acks, hist
}

func TestCheckCleanRun(t *testing.T) {
	acks, hist := cleanRun(4, 50)
	// A resend answered with the original is a second, identical
	// acknowledgement.
	acks = append(acks, acks[3])
	v := Check(acks, hist)
	if !v.OK || len(v.Violations) != 0 {
		t.Fatalf("clean run judged %s: %v", v.Summary(), v.Violations)
	}
	if v.Channels != 4 || v.Acked != len(acks) || v.HistoryMessages != 200 || v.Unacknowledged != 4*7 {
		t.Fatalf("verdict counts %+v", v)
	}
	// Concurrent sends (neither acknowledged before the other was sent)
	// may land in either order.
	acks, hist = cleanRun(1, 2)
	acks[0].Sent, acks[0].Acked = 0, 10*time.Millisecond
	acks[1].Sent, acks[1].Acked = time.Millisecond, 5*time.Millisecond
	if v := Check(acks, hist); !v.OK {
		t.Fatalf("concurrent sends judged %s: %v", v.Summary(), v.Violations)
	}
}

// TestCheckCatchesPlantedFaults plants each kind of fault in a clean
// run's acknowledgements or history and expects exactly it, named by
// channel and segment.
func TestCheckCatchesPlantedFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		plant   func(acks []Ack, hist []History) ([]Ack, []History)
		kind    string
		segment uint64
		detail  string
	}{
		{"lost", func(acks []Ack, hist []History) ([]Ack, []History) {
			// Segment 10 vanished and the next message took its place.
			m := hist[1].Messages
			m = slices.Delete(m, 9, 10)
			for i := 9; i < len(m); i++ {
				m[i].Segment--
			}
			hist[1].Messages = m
			return acks, hist
		}, ViolationLost, 10, "missing from history"},
		{"tail lost", func(acks []Ack, hist []History) ([]Ack, []History) {
			hist[1].Messages = hist[1].Messages[:40]
			return acks, hist
		}, ViolationLost, 41, "missing from history"},
		{"duplicate in history", func(acks []Ack, hist []History) ([]Ack, []History) {
			m := hist[1].Messages
			again := m[4]
			again.Segment, again.ID = 51, "51-dup"
			hist[1].Messages = append(m, again)
			return acks, hist
		}, ViolationDuplicate, 51, "at segment 5 and again here"},
		{"acknowledged twice as two messages", func(acks []Ack, hist []History) ([]Ack, []History) {
			a := acks[60] // room1, segment 20
			a.Segment, a.MessageID = 51, "51-other"
			hist[1].Messages = append(hist[1].Messages, Message{Segment: 51, ID: "51-other", ClientID: a.ClientID, Sender: a.Sender})
			return append(acks, a), hist
		}, ViolationDuplicate, 51, "acknowledged as message"},
		{"gap", func(acks []Ack, hist []History) ([]Ack, []History) {
			// Segments 21 and 22 never existed: the later ones were
			// numbered past them (their acks agree).
			for i := range hist[1].Messages {
				if hist[1].Messages[i].Segment > 20 {
					hist[1].Messages[i].Segment += 2
				}
			}
			for i := range acks {
				if acks[i].Channel == "room1" && acks[i].Segment > 20 {
					acks[i].Segment += 2
				}
			}
			return acks, hist
		}, ViolationGap, 21, "segments 21 to 22 are missing"},
		{"reorder", func(acks []Ack, hist []History) ([]Ack, []History) {
			// Segments 30 and 31 swapped contents: the message sent after
			// 30 was acknowledged got the lower segment.
			m := hist[1].Messages
			m[29].ClientID, m[30].ClientID = m[30].ClientID, m[29].ClientID
			m[29].ID, m[30].ID = m[30].ID, m[29].ID
			for i := range acks {
				if acks[i].Channel != "room1" {
					continue
				}
				switch acks[i].Segment {
				case 30:
					acks[i].Segment = 31
				case 31:
					acks[i].Segment = 30
				}
			}
			return acks, hist
		}, ViolationReorder, 30, "yet acknowledged at the lower segment 30"},
		{"two contents for one segment", func(acks []Ack, hist []History) ([]Ack, []History) {
			// A second leader acknowledged another message at segment 8.
			return append(acks, Ack{Channel: "room1", Segment: 8, ClientID: "stale-leader", MessageID: "8-x", Sender: "u9",
				Sent: time.Hour, Acked: time.Hour + time.Millisecond}), hist
		}, ViolationConflict, 8, `for client_id "room1.7"`},
		{"moved", func(acks []Ack, hist []History) ([]Ack, []History) {
			// History holds the acknowledged message at another segment.
			m := hist[1].Messages
			m[2].ClientID, m[3].ClientID = m[3].ClientID, m[2].ClientID
			m[2].ID, m[3].ID = m[3].ID, m[2].ID
			return acks, hist
		}, ViolationMismatch, 3, "acknowledged at segment 3, history holds it at segment 4"},
		{"unreadable", func(acks []Ack, hist []History) ([]Ack, []History) {
			hist[1] = History{Channel: "room1", Err: "unavailable: no leader"}
			return acks, hist
		}, ViolationUnverified, 0, "could not be read"},
		{"not read", func(acks []Ack, hist []History) ([]Ack, []History) {
			return acks, slices.Delete(hist, 1, 2)
		}, ViolationUnverified, 0, "history not read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acks, hist := tc.plant(cleanRun(3, 50))
			v := Check(acks, hist)
			if v.OK {
				t.Fatalf("planted %s passed: %s", tc.name, v.Summary())
			}
			var hit *Violation
			for i, x := range v.Violations {
				if x.Kind == tc.kind && x.Channel == "room1" && x.Segment == tc.segment && strings.Contains(x.Detail, tc.detail) {
					hit = &v.Violations[i]
				}
				if x.Channel != "room1" {
					t.Errorf("violation on an untouched channel: %s", x)
				}
			}
			t.Log(v.Summary())
			if hit == nil {
				t.Fatalf("want %s at room1 segment %d (%q), got %s: %v", tc.kind, tc.segment, tc.detail, v.Summary(), v.Violations)
			}
			if s := hit.String(); !strings.Contains(s, "channel room1") || (tc.segment != 0 && !strings.Contains(s, fmt.Sprintf("segment %d", tc.segment))) {
				t.Fatalf("violation does not name channel and segment: %s", s)
			}
		})
	}
}

func TestCheckHistoryOutOfOrder(t *testing.T) {
	acks, hist := cleanRun(1, 10)
	m := hist[0].Messages
	m[4], m[5] = m[5], m[4]
	v := Check(acks, hist)
	if v.Counts[ViolationReorder] != 1 || v.Counts[ViolationGap] != 1 {
		t.Fatalf("history 1..4,6,5,7..: %s %v", v.Summary(), v.Violations)
	}
	// A history that does not start at segment 1.
	acks, hist = cleanRun(1, 10)
	hist[0].Messages = hist[0].Messages[1:]
	v = Check(acks, hist)
	if v.Counts[ViolationGap] != 1 || v.Counts[ViolationLost] != 1 || !strings.Contains(v.Violations[0].Detail, "starts at segment 2") {
		t.Fatalf("history from segment 2: %s %v", v.Summary(), v.Violations)
	}
}

func TestCheckBoundsTheList(t *testing.T) {
	acks, hist := cleanRun(2, 300)
	hist[0].Messages = nil
	v := Check(acks, hist)
	if v.OK || len(v.Violations) != maxViolations || v.Counts[ViolationLost] < maxViolations {
		t.Fatalf("%d listed, counts %v", len(v.Violations), v.Counts)
	}
}

func TestCheckMissingChannelIsLost(t *testing.T) {
	acks, hist := cleanRun(2, 10)
	hist[1] = History{Channel: "room1", Missing: true}
	v := Check(acks, hist)
	if v.Counts[ViolationLost] != 1 || len(v.Violations) != 1 || v.Violations[0].Channel != "room1" ||
		!strings.Contains(v.Violations[0].Detail, "no longer exists (not_found), with its 9 acknowledged messages") {
		t.Fatalf("missing channel: %s %v", v.Summary(), v.Violations)
	}
}
