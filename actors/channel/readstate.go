package channel

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

func init() {
	handlers[protocol.OpReadMark] = (*State).handleReadMark
}

// handleReadMark moves the caller's read_segment forward, never back: a
// segment at or below it changes nothing, one past the channel's last
// segment counts as the last. A move is persisted with the member record
// and announced by a read event (ephemeral: no seq, no replay).
//
// unread_count is the number of segments after read_segment. Sending moves
// the sender's read_segment to the message sent, and read.mark never moves
// it back, so a member's own messages never count as unread.
func (s *State) handleReadMark(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.ReadMarkArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if !inChannel(m) {
		return nil, protocol.Errorf(protocol.CodeNotMember, "you are not a member of %s", s.id)
	}
	seg := s.meta.Channel.LastSegment
	if a.Segment != nil && *a.Segment < seg {
		seg = *a.Segment
	}
	if seg <= m.ReadSegment {
		return protocol.MemberResult{Member: s.memberView(m)}, nil
	}
	nm := m.clone()
	nm.ReadSegment = seg
	nm.LastActivity = protocol.At(now)
	s.putMember(nm)
	s.emitEphemeral(protocol.EventRead, protocol.ReadEvent{User: c.User, Segment: seg})
	return protocol.MemberResult{Member: s.memberView(nm)}, nil
}
