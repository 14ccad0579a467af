package channel

import (
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Message ids made here name their segment ("<segment>-<hash>"), so the
// channel finds a message by its id without an index. Imported messages
// keep the ids they had (import.go); an id that does not name its own
// segment is indexed in the aux table:
//
//	msgid\0 <id> → segment (8 bytes)
const nsMsgID = "msgid\x00"

func msgIDKey(id string) []byte { return append([]byte(nsMsgID), id...) }

// canonicalID reports whether id names seg the way messageID does, so
// that it needs no index.
func canonicalID(id string, seg uint64) bool {
	s, ok := parseMessageID(id)
	return ok && s == seg
}

// indexedSegment returns the segment of a message whose id is indexed.
func (s *State) indexedSegment(id string) (uint64, bool, error) {
	v, ok, err := s.auxGet(msgIDKey(id))
	if err != nil || !ok {
		return 0, false, err
	}
	seg, ok := persistence.ParseU64(v)
	if !ok {
		return 0, false, ErrCorrupt
	}
	return seg, true, nil
}

// visible reports whether the message at seg is part of the channel:
// segments above the last one belong to an import not yet committed.
func (s *State) visible(seg uint64) bool { return seg > 0 && seg <= s.meta.Channel.LastSegment }

// lookupMessage finds a message by id: by the segment its id names, then
// by the index of imported ids. It returns nil when there is none.
func (s *State) lookupMessage(id string) (*protocol.Message, error) {
	if seg, ok := parseMessageID(id); ok && s.visible(seg) {
		m, err := s.message(seg)
		if err != nil {
			return nil, err
		}
		if m != nil && m.ID == id {
			return m, nil
		}
	}
	seg, ok, err := s.indexedSegment(id)
	if err != nil || !ok || !s.visible(seg) {
		return nil, err
	}
	m, err := s.message(seg)
	if err != nil || m == nil || m.ID != id {
		return nil, err
	}
	return m, nil
}
