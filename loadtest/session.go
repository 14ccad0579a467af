package loadtest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/protocol"
)

// session is one simulated user's connection and what it watches.
type session struct {
	r    *runner
	idx  int
	user string
	cl   *client.Client // set once by setup, before sending starts
	// reader is cl for the read goroutine, which starts inside Dial,
	// before setup sets cl.
	reader  atomic.Pointer[client.Client]
	streams []sessionStream
	// droppedAt is when a storm dropped the connection (ns since the
	// run's origin; 0: not dropped).
	droppedAt atomic.Int64
}

type sessionStream struct {
	channel string
	s       *stream
}

func (s *session) stream(channel string) *stream {
	for i := range s.streams {
		if s.streams[i].channel == channel {
			return s.streams[i].s
		}
	}
	return nil
}

// onEvent runs on the client's read goroutine for every event.
func (s *session) onEvent(e client.Event) {
	if e.Name == client.EventReset {
		s.onReset(e.Channel)
		return
	}
	if e.Seq == 0 || e.Channel == "" {
		return // ephemeral or synthetic
	}
	st := s.stream(e.Channel)
	if st == nil {
		return
	}
	if e.Name == protocol.EventReactionUpdated {
		s.onReaction(st, e.Data)
	}
	var segment uint64
	if e.Name == protocol.EventMessageNew {
		segment, _ = scanUint(e.Data, `"segment":`)
		if segment == 0 {
			segment = 1<<63 - 1 // unreadable: let the oracle see a mismatch
		}
	}
	st.event(e.Seq, segment)
	if e.Name != protocol.EventMessageNew {
		return
	}
	cid, ok := scanBytes(e.Data, `"client_id":"`)
	if !ok {
		return
	}
	if intended, ok := s.r.intendedOf(cid); ok {
		s.r.delivered(s.idx, intended)
	}
}

// onReset handles the client's synthetic client.reset: a resume was
// answered reset: true, and the client now stands at the reply's seq (it
// delivers the event right after recording it, on this goroutine). The
// event's own seq is the last one received before, not a new event.
func (s *session) onReset(channel string) {
	st := s.stream(channel)
	cl := s.reader.Load()
	if st == nil || cl == nil {
		return
	}
	if at, ok := cl.LastSeq(channel); ok {
		st.reset(at)
	}
}

// onReaction hands a reaction.updated's reaction to the oracle.
func (s *session) onReaction(st *stream, data json.RawMessage) {
	var d struct {
		Message struct {
			Segment uint64 `json:"segment"`
		} `json:"message"`
		User  string `json:"user"`
		Name  string `json:"name"`
		Added bool   `json:"added"`
	}
	if json.Unmarshal(data, &d) == nil {
		st.c.reactionEvent(reaction{segment: d.Message.Segment, user: d.User, name: d.Name}, d.Added)
	}
}

// onResumed runs once a reconnected client resumed its channels.
func (s *session) onResumed() {
	if at := s.droppedAt.Swap(0); at != 0 {
		s.r.rec.record(MetricResume, s.idx, s.r.now()-time.Duration(at))
		s.r.resumed.Add(1)
	}
}

// scanUint finds key in a JSON object's bytes and parses the number after
// it. It is a scan, not a parse: keys are unique in the frames it reads.
func scanUint(b []byte, key string) (uint64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	v, err := strconv.ParseUint(string(b[:n]), 10, 64)
	return v, err == nil
}

// scanString finds key (ending in an opening quote) and returns the
// string after it up to the closing quote; escapes are not expected in the
// ids it reads and fail the scan.
func scanString(b []byte, key string) (string, bool) {
	s, ok := scanBytes(b, key)
	return string(s), ok
}

// scanBytes is scanString's bytes, aliasing b.
func scanBytes(b []byte, key string) ([]byte, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil, false
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 || bytes.IndexByte(b[:j], '\\') >= 0 {
		return nil, false
	}
	return b[:j], true
}
