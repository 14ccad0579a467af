package channel

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

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
	switch {
	case a.Segment != nil && a.MessageID != "":
		return nil, badRequest("give segment or message_id, not both")
	case a.MessageID != "":
		msg, perr := s.findMessage(a.MessageID)
		if perr != nil {
			return nil, perr
		}
		seg = msg.Segment
	case a.Segment != nil && *a.Segment < seg:
		seg = *a.Segment
	}
	if seg <= m.ReadSegment {
		return protocol.MemberResult{Member: s.memberView(m)}, nil
	}
	nm := m.clone()
	nm.ReadSegment = seg
	nm.LastActivity = protocol.At(now)
	s.putMember(nm)
	s.announceRead(c.User, seg, now)
	return protocol.MemberResult{Member: s.memberView(nm)}, nil
}

// Read events are coalesced per user, as typing events are: watchers hear
// at most one read event of a user per ReadInterval. The first move after
// a quiet interval is announced at once; later moves within it are held,
// and the newest is announced when the interval ends (OpTick at
// NextWake). A client marking each message read as it scrolls a backlog
// so costs every watcher one event a second, not one per mark; the
// read.mark reply always carries the new read_segment.

// maxHeldReads bounds the users whose read events are tracked at once;
// past it a move is announced at once, uncoalesced.
const maxHeldReads = 4096

// readCursor is what watchers heard of one user's read position.
type readCursor struct {
	announced, latest uint64
	lastEvent         time.Time
}

func (s *State) announceRead(user string, seg uint64, now time.Time) {
	r := s.rich.reads[user]
	if r == nil {
		if len(s.rich.reads) >= maxHeldReads {
			s.emitEphemeral(protocol.EventRead, protocol.ReadEvent{User: user, Segment: seg})
			return
		}
		r = &readCursor{}
		s.rich.reads[user] = r
	}
	r.latest = seg
	s.settleRead(user, r, now)
}

// settleReads announces every held move whose interval has ended.
func (s *State) settleReads(now time.Time) {
	for u, r := range s.rich.reads {
		s.settleRead(u, r, now)
	}
}

// settleRead announces the user's newest move once the interval allows,
// and forgets a user with nothing left to announce.
func (s *State) settleRead(user string, r *readCursor, now time.Time) {
	if now.Sub(r.lastEvent) < s.cfg.Rich.ReadInterval {
		return
	}
	if r.latest > r.announced {
		r.announced, r.lastEvent = r.latest, now
		s.emitEphemeral(protocol.EventRead, protocol.ReadEvent{User: user, Segment: r.latest})
		return
	}
	delete(s.rich.reads, user)
}
