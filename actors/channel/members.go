package channel

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// member returns the user's member record, or nil when the user has none.
func (s *State) member(user string) (*memberRecord, error) {
	if m, ok := s.members.get(user); ok {
		return m, nil
	}
	v, err := s.log.Get(persistence.TableMember, []byte(user))
	if errors.Is(err, persistence.ErrNotFound) {
		s.members.put(user, nil)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read member: %w", err)
	}
	var m memberRecord
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, ErrCorrupt
	}
	s.members.put(user, &m)
	return &m, nil
}

// mustMember is member for handlers: a read failure becomes an internal
// (retryable on the next activation) error.
func (s *State) mustMember(user string) (*memberRecord, *protocol.Error) {
	m, err := s.member(user)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeInternal, "reading member failed")
	}
	return m, nil
}

// putMember writes a member record with the current entry. The record must
// be a fresh copy, never one already handed out.
func (s *State) putMember(m *memberRecord) {
	e := s.entry()
	e.Put(persistence.TableMember, []byte(m.User), encode(m))
	s.members.write(m.User, m, s.cur.Index)
}

// deleteMember removes a member record with the current entry.
func (s *State) deleteMember(user string) {
	e := s.entry()
	e.Del(persistence.TableMember, []byte(user))
	s.members.write(user, nil, s.cur.Index)
}

func newMember(channel, user string, roles []string, now time.Time) *memberRecord {
	return &memberRecord{Member: protocol.Member{
		User:         user,
		Channel:      channel,
		Membership:   protocol.MembershipMember,
		Roles:        roles,
		CreatedAt:    protocol.At(now),
		LastActivity: protocol.At(now),
	}}
}

func (m *memberRecord) clone() *memberRecord {
	c := *m
	c.Roles = append([]string(nil), m.Roles...)
	return &c
}

// isMember reports whether m is a full (persisted) member.
func isMember(m *memberRecord) bool {
	return m != nil && m.Membership == protocol.MembershipMember
}

// isModerator reports whether the caller may moderate: a global admin, a
// member with the owner or moderator role, or a session whose join token
// grants moderate.
func (s *State) isModerator(c Caller, m *memberRecord) bool {
	if c.Admin || hasPerm(c.Perms, PermModerate) {
		return true
	}
	return isMember(m) && (m.hasRole(protocol.RoleOwner) || m.hasRole(protocol.RoleModerator))
}

// isOwner reports whether the caller owns the channel (or is an admin).
func (s *State) isOwner(c Caller, m *memberRecord) bool {
	return c.Admin || (isMember(m) && m.hasRole(protocol.RoleOwner))
}

// publicRead reports whether anyone may watch and read the channel without
// being a member.
func (s *State) publicRead() bool {
	switch s.meta.Channel.Type {
	case protocol.TypeStandard, protocol.TypeCommunity, protocol.TypeLive, protocol.TypeBroadcast:
		return true
	}
	return false
}

// canRead checks that the caller may read history and watch.
func (s *State) canRead(c Caller, m *memberRecord) *protocol.Error {
	if c.Admin || isMember(m) || (m != nil && m.Membership == protocol.MembershipViewer) || s.publicRead() {
		return nil
	}
	return protocol.Errorf(protocol.CodeNotMember, "you are not a member of %s", s.id)
}

// memberView is the member object as clients see it.
func (s *State) memberView(m *memberRecord) *protocol.Member {
	if m == nil {
		return nil
	}
	v := m.Member
	v.Roles = append([]string{}, m.Roles...)
	v.UnreadCount = s.unread(m)
	viewRestrictions(&v, s.now)
	return &v
}

// unread is the number of messages after the member's read segment. Only
// members and viewers read the channel: an invitation, or a record that
// only holds a mute, has nothing unread.
func (s *State) unread(m *memberRecord) int64 {
	last := s.meta.Channel.LastSegment
	if m.Membership != protocol.MembershipMember && m.Membership != protocol.MembershipViewer {
		return 0
	}
	if m.ReadSegment >= last {
		return 0
	}
	return int64(last - m.ReadSegment)
}
