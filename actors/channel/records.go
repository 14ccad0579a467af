package channel

import (
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// metaRecord is the channel's own durable state (TableMeta). Its parts
// that every message moves — seqs, segment, counts, last activity — are
// also written as a small binary record (countersKey) with every entry; the
// JSON record (key "") is written only when something else changed
// (settingsChanged), and the counters record, when present, overrides its
// counters on load.
type metaRecord struct {
	Channel protocol.Channel `json:"channel"`
	// LastSeq is the newest event's seq; FirstSeq the oldest retained one.
	LastSeq  uint64 `json:"last_seq"`
	FirstSeq uint64 `json:"first_seq"`
	// DirVersion counts changes of the channel's directory listing
	// (listing.go), so the directory keeps the newest.
	DirVersion uint64 `json:"dir_version,omitempty"`
	// HookSeq is the newest event the webhook receiver acknowledged
	// (webhook.go), meaningful once HookSet. It lives in the counters
	// record only.
	HookSeq uint64 `json:"-"`
	HookSet bool   `json:"-"`
}

// memberRecord is one member's durable state (TableMember).
type memberRecord struct {
	protocol.Member
	// LastSendAt is when the member last sent a message (slow mode).
	LastSendAt time.Time `json:"last_send_at,omitzero"`
}

// countersKey is the TableMeta key of the counters record.
var countersKey = []byte("n")

// encodeCounters writes the counters: seven big-endian words, the last
// the webhook position plus one (0: none set).
func (m *metaRecord) encodeCounters() []byte {
	c := &m.Channel
	hook := uint64(0)
	if m.HookSet {
		hook = m.HookSeq + 1
	}
	b := make([]byte, 0, 56)
	for _, v := range []uint64{m.LastSeq, m.FirstSeq, c.LastSegment, uint64(c.MessageCount), uint64(c.MemberCount),
		uint64(c.LastActivity.UnixMilli()), hook} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// decodeCounters reads what encodeCounters wrote (and the six words
// written before webhooks kept a position).
func (m *metaRecord) decodeCounters(b []byte) error {
	if len(b) != 48 && len(b) != 56 {
		return ErrCorrupt
	}
	w := func(i int) uint64 { return binary.BigEndian.Uint64(b[8*i:]) }
	c := &m.Channel
	m.LastSeq, m.FirstSeq, c.LastSegment = w(0), w(1), w(2)
	c.MessageCount, c.MemberCount = int64(w(3)), int64(w(4))
	if ms := int64(w(5)); ms > 0 {
		c.LastActivity = protocol.At(time.UnixMilli(ms))
	}
	if len(b) == 56 && w(6) > 0 {
		m.HookSeq, m.HookSet = w(6)-1, true
	}
	return nil
}

func (m *memberRecord) hasRole(role string) bool {
	for _, r := range m.Roles {
		if r == role {
			return true
		}
	}
	return false
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Records hold only marshalable fields; a failure is a bug.
		panic("channel: encode record: " + err.Error())
	}
	return b
}

func cloneMessage(m *protocol.Message) *protocol.Message {
	c := *m
	return &c
}
