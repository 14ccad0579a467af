package channel

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// metaRecord is the channel's own durable state, written with every entry
// that changes it (TableMeta).
type metaRecord struct {
	Channel protocol.Channel `json:"channel"`
	// LastSeq is the newest event's seq; FirstSeq the oldest retained one.
	LastSeq  uint64 `json:"last_seq"`
	FirstSeq uint64 `json:"first_seq"`
	// DirVersion counts changes of the channel's directory listing
	// (listing.go), so the directory keeps the newest.
	DirVersion uint64 `json:"dir_version,omitempty"`
}

// memberRecord is one member's durable state (TableMember).
type memberRecord struct {
	protocol.Member
	// LastSendAt is when the member last sent a message (slow mode).
	LastSendAt time.Time `json:"last_send_at,omitzero"`
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
