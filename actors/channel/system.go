package channel

import (
	"strconv"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// systemMessage adds a message of type system recording what happened. It
// takes the next segment like any message, so it appears in history and
// arrives as message.new; its sender is the actor when there is one, else
// the user it is about.
func (s *State) systemMessage(info protocol.SystemInfo, now time.Time) *protocol.Message {
	seg := s.meta.Channel.LastSegment + 1
	from := info.Actor
	if from == "" {
		from = info.User
	}
	msg := &protocol.Message{
		ID:        messageID(s.id, seg, now),
		Channel:   s.id,
		Segment:   seg,
		User:      from,
		Type:      protocol.MessageSystem,
		Text:      systemText(info),
		CreatedAt: protocol.At(now),
		System:    &info,
	}
	s.meta.Channel.LastSegment = seg
	s.meta.Channel.MessageCount++
	s.meta.Channel.LastActivity = protocol.At(now)
	s.putMessage(msg)
	s.emit(protocol.EventMessageNew, messageEvent{Message: eventMessage{msg}})
	s.readOwn(from, seg)
	return msg
}

// readOwn moves a member's read_segment to seg: what one says or does
// oneself is never unread.
func (s *State) readOwn(user string, seg uint64) {
	m, err := s.member(user)
	if err != nil || !isMember(m) || m.ReadSegment >= seg {
		return
	}
	nm := m.clone()
	nm.ReadSegment = seg
	s.putMember(nm)
}

// systemText is a plain-English rendering of a system message, for
// clients that do not render the system object themselves. A change made
// by no user (a server API key acting as itself) is told without one.
func systemText(i protocol.SystemInfo) string {
	var t string
	did := func(verb, object string) string {
		if i.Actor == "" {
			return object + " was " + verb
		}
		return i.Actor + " " + verb + " " + object
	}
	switch i.Kind {
	case protocol.SystemMemberJoined:
		t = i.User + " joined"
	case protocol.SystemMemberLeft:
		t = i.User + " left"
	case protocol.SystemMemberAdded:
		t = did("added", i.User)
	case protocol.SystemMemberRemoved:
		t = did("removed", i.User)
	case protocol.SystemMemberKicked:
		t = did("removed", i.User) + " (kick)"
	case protocol.SystemMemberBanned:
		t = did("banned", i.User) + " " + forDuration(i.DurationMin)
	case protocol.SystemChannelMuted:
		t = did("muted", "the channel") + " " + forDuration(i.DurationMin)
	case protocol.SystemChannelUnmuted:
		t = did("unmuted", "the channel")
	default:
		t = i.Kind
	}
	if i.Reason != "" {
		t += ": " + i.Reason
	}
	return t
}

func forDuration(min int64) string {
	if min == 0 {
		return "permanently"
	}
	return "for " + strconv.FormatInt(min, 10) + " min"
}
