package channel

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// maxUsersPerOp bounds the users one members.add, members.remove or
// members.invite names.
const maxUsersPerOp = 100

// planJoin decides what a channel.join writes for the caller: the
// membership it takes, or "" when it writes nothing (already a member, or
// an ephemeral live viewer). Banned callers never get here (admit).
//
//   - live: watching is being a viewer; nothing is stored per viewer.
//   - standard, community: anyone joins as a member.
//   - broadcast: joiners become viewers (only owners and moderators send).
//   - private, conversation: by invitation, a join token or as a global
//     admin; others get forbidden.
//
// An invited user becomes a member whatever the type. A join token's perms
// decide the record in types where one is written: write or moderate make
// a member, read alone a read-only viewer.
func (s *State) planJoin(c Caller, m *memberRecord) (string, *protocol.Error) {
	if isMember(m) {
		return "", nil
	}
	if m != nil && m.Membership == protocol.MembershipInvited {
		return protocol.MembershipMember, nil
	}
	token := c.Perms != nil
	as := protocol.MembershipMember
	if token && !hasPerm(c.Perms, PermWrite) && !hasPerm(c.Perms, PermModerate) {
		as = protocol.MembershipViewer
	}
	switch s.meta.Channel.Type {
	case protocol.TypeLive:
		return "", nil
	case protocol.TypeStandard, protocol.TypeCommunity:
		if m != nil && m.Membership == protocol.MembershipViewer && as == protocol.MembershipViewer {
			return "", nil // a read-only viewer joining read-only again
		}
		return as, nil
	case protocol.TypeBroadcast:
		if m != nil && m.Membership == protocol.MembershipViewer {
			return "", nil
		}
		return protocol.MembershipViewer, nil
	}
	// private, conversation
	switch {
	case c.Admin:
		return protocol.MembershipMember, nil
	case token:
		if m != nil && m.Membership == protocol.MembershipViewer && as == protocol.MembershipViewer {
			return "", nil
		}
		return as, nil
	case m != nil && m.Membership == protocol.MembershipViewer:
		return "", nil // in already, read-only
	}
	return "", protocol.Errorf(protocol.CodeForbidden, "%s is %s: join by invitation or join token only", s.id, s.meta.Channel.Type)
}

// join writes user's new membership and announces it (reason: that of
// the channel.added notice); it returns the record and the join's system
// message (nil for viewers). The system message comes first, so the new
// member has read it.
func (s *State) join(user string, m *memberRecord, as, reason string, now time.Time) (*memberRecord, *protocol.Message) {
	var sys *protocol.Message
	if as == protocol.MembershipMember {
		sys = s.systemMessage(protocol.SystemInfo{Kind: protocol.SystemMemberJoined, User: user}, now)
	}
	nm := s.enroll(user, m, as, now)
	s.notice(user, true, reason)
	s.emit(protocol.EventMemberJoined, memberEvent{User: user, Member: s.memberView(nm)})
	return nm, sys
}

// enroll writes user's record with membership as, keeping what the old
// record holds that still applies (roles of a viewer or invitee, a mute),
// and keeps member_count.
func (s *State) enroll(user string, m *memberRecord, as string, now time.Time) *memberRecord {
	var nm *memberRecord
	switch {
	case listedMember(m):
		nm = m.clone()
	default:
		nm = newMember(s.id, user, []string{protocol.RoleMember}, now)
		if mutedAt(m, now) {
			nm.MutedUntil, nm.MuteReason = m.MutedUntil, m.MuteReason
		}
	}
	if len(nm.Roles) == 0 {
		nm.Roles = []string{protocol.RoleMember}
	}
	if !counted(m) {
		s.meta.Channel.MemberCount++
	}
	if !isMember(m) {
		nm.ReadSegment = s.meta.Channel.LastSegment
	}
	nm.Membership = as
	nm.LastActivity = protocol.At(now)
	s.putMember(nm)
	return nm
}

// endMembership ends m's membership: the record goes, unless it holds a
// mute still in force, which stays (membership none) so that leaving and
// coming back does not lift it.
func (s *State) endMembership(m *memberRecord, now time.Time) *memberRecord {
	if counted(m) {
		s.meta.Channel.MemberCount--
	}
	if !mutedAt(m, now) {
		s.deleteMember(m.User)
		return nil
	}
	nm := restrictionOnly(m)
	s.putMember(nm)
	return nm
}

// restrictionOnly is m reduced to the mute it holds.
func restrictionOnly(m *memberRecord) *memberRecord {
	return &memberRecord{Member: protocol.Member{
		User:       m.User,
		Channel:    m.Channel,
		Membership: protocol.MembershipNone,
		MutedUntil: m.MutedUntil,
		MuteReason: m.MuteReason,
		CreatedAt:  m.CreatedAt,
	}}
}

// leaveChannel is channel.leave: it ends the caller's membership (or
// invitation, or viewing) and stops all of the caller's sessions.
func (s *State) leaveChannel(c Caller, m *memberRecord, now time.Time) (any, *protocol.Error) {
	listed := listedMember(m)
	if !listed && s.watchers.byUser[c.User] == 0 {
		return nil, protocol.Errorf(protocol.CodeNotMember, "you are not a member of %s", s.id)
	}
	// The only owner may not leave a channel it would leave ownerless,
	// but for a distinct conversation: its members are fixed and nobody
	// moderates it, and whoever left comes back by opening it again.
	if isMember(m) && m.hasRole(protocol.RoleOwner) && !s.meta.Channel.Distinct {
		other, err := s.anotherOwner(c.User)
		if err != nil {
			return nil, internal(err)
		}
		if !other {
			return nil, protocol.Errorf(protocol.CodeInvalidState, "you are the only owner of %s: make another member owner first (member.roles), or delete the channel", s.id)
		}
	}
	s.cur.Watch = s.watchers.removeUser(c.User)
	s.cur.Unwatching = true
	if listed {
		s.endMembership(m, now)
		s.notice(c.User, false, protocol.ReasonLeft)
		s.emit(protocol.EventMemberLeft, memberEvent{User: c.User})
		if m.Membership == protocol.MembershipMember {
			s.systemMessage(protocol.SystemInfo{Kind: protocol.SystemMemberLeft, User: c.User}, now)
		}
	}
	return struct{}{}, nil
}

// usersArg validates the users of members.add/remove/invite: 1 to 100
// valid ids; repeats are dropped.
func (s *State) usersArg(users []string) ([]string, *protocol.Error) {
	if len(users) == 0 {
		return nil, badRequest("users is required")
	}
	if len(users) > maxUsersPerOp {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "%d users, at most %d per request", len(users), maxUsersPerOp)
	}
	out := make([]string, 0, len(users))
	for _, u := range users {
		if err := checkID("users", u, s.cfg.Limits.MaxIDLen); err != nil {
			return nil, err
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// targets reads the records of users.
func (s *State) targets(users []string) ([]*memberRecord, *protocol.Error) {
	out := make([]*memberRecord, len(users))
	for i, u := range users {
		m, perr := s.mustMember(u)
		if perr != nil {
			return nil, perr
		}
		out[i] = m
	}
	return out, nil
}

// newMembers reads the users of a members.add or members.invite, checks
// the caller may (allowed, else forbidden with the message), and returns
// each user's record, refusing users that are already in (already) or
// banned.
func (s *State) newMembers(c Caller, args json.RawMessage, now time.Time, allowed func(Caller, *memberRecord) bool,
	forbidden string, already func(*memberRecord) bool) ([]string, []*memberRecord, *protocol.Error) {
	var a protocol.MembersArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, nil, err
	}
	users, perr := s.usersArg(a.Users)
	if perr != nil {
		return nil, nil, perr
	}
	cm, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, nil, perr
	}
	if !allowed(c, cm) {
		return nil, nil, protocol.Errorf(protocol.CodeForbidden, forbidden, s.id)
	}
	if s.meta.Channel.Distinct {
		return nil, nil, protocol.Errorf(protocol.CodeForbidden, "the members of distinct conversation %s are fixed", s.id)
	}
	ms, perr := s.targets(users)
	if perr != nil {
		return nil, nil, perr
	}
	for i, m := range ms {
		if already(m) {
			return nil, nil, protocol.Errorf(protocol.CodeAlreadyMember, "%s is already a member of %s", users[i], s.id)
		}
		if bannedAt(m, now) {
			return nil, nil, protocol.Errorf(protocol.CodeBanned, "%s is banned from %s; unban first", users[i], s.id)
		}
	}
	return users, ms, nil
}

func (s *State) handleMembersAdd(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	users, ms, perr := s.newMembers(c, args, now, s.isModerator, "only owners and moderators may add members to %s", isMember)
	if perr != nil {
		return nil, perr
	}
	out := make([]*protocol.Member, len(users))
	for i, u := range users {
		nm := s.enroll(u, ms[i], protocol.MembershipMember, now)
		s.notice(u, true, protocol.ReasonAdded)
		out[i] = s.memberView(nm)
		s.emit(protocol.EventMemberJoined, memberEvent{User: u, Member: out[i], Actor: c.User})
		s.systemMessage(protocol.SystemInfo{Kind: protocol.SystemMemberAdded, User: u, Actor: c.User}, now)
	}
	return protocol.MembersResult{Members: out}, nil
}

func (s *State) handleMembersRemove(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.MembersArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	users, perr := s.usersArg(a.Users)
	if perr != nil {
		return nil, perr
	}
	cm, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if !s.isModerator(c, cm) {
		return nil, protocol.Errorf(protocol.CodeForbidden, "only owners and moderators may remove members from %s", s.id)
	}
	ms, perr := s.targets(users)
	if perr != nil {
		return nil, perr
	}
	rank := s.rank(c, cm)
	for i, m := range ms {
		switch {
		case users[i] == c.User:
			return nil, badRequest("use channel.leave to leave %s", s.id)
		case !listedMember(m):
			return nil, protocol.Errorf(protocol.CodeNotMember, "%s is not a member of %s", users[i], s.id)
		case s.targetRank(users[i], m) >= rank:
			return nil, protocol.Errorf(protocol.CodeForbidden, "you may not remove %s from %s", users[i], s.id)
		}
	}
	for i, u := range users {
		m := ms[i]
		s.endMembership(m, now)
		s.revokeTokens(u, now)
		s.cur.Watch = append(s.cur.Watch, s.watchers.removeUser(u)...)
		s.notice(u, false, protocol.ReasonRemoved)
		s.emit(protocol.EventMemberLeft, memberEvent{User: u, Actor: c.User})
		if m.Membership == protocol.MembershipMember {
			s.systemMessage(protocol.SystemInfo{Kind: protocol.SystemMemberRemoved, User: u, Actor: c.User}, now)
		}
	}
	return protocol.MembersResult{Members: []*protocol.Member{}}, nil
}

// mayInvite: moderators anywhere; members too where anyone may join.
func (s *State) mayInvite(c Caller, m *memberRecord) bool {
	if s.isModerator(c, m) {
		return true
	}
	switch s.meta.Channel.Type {
	case protocol.TypeStandard, protocol.TypeCommunity:
		return isMember(m)
	}
	return false
}

func (s *State) handleMembersInvite(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	users, ms, perr := s.newMembers(c, args, now, s.mayInvite, "you may not invite users to %s", counted)
	if perr != nil {
		return nil, perr
	}
	out := make([]*protocol.Member, len(users))
	for i, u := range users {
		m := ms[i]
		if m != nil && m.Membership == protocol.MembershipInvited {
			out[i] = s.memberView(m) // invited already: nothing changes
			continue
		}
		nm := newMember(s.id, u, []string{protocol.RoleMember}, now)
		nm.Membership = protocol.MembershipInvited
		if mutedAt(m, now) {
			nm.MutedUntil, nm.MuteReason = m.MutedUntil, m.MuteReason
		}
		s.putMember(nm)
		s.notice(u, true, protocol.ReasonInvited)
		out[i] = s.memberView(nm)
		s.emit(protocol.EventMemberUpdated, memberEvent{User: u, Member: out[i], Actor: c.User})
	}
	return protocol.MembersResult{Members: out}, nil
}

// roleOrder is the order roles are kept in.
var roleOrder = []string{protocol.RoleOwner, protocol.RoleModerator, protocol.RoleMember}

func (s *State) handleMemberRoles(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.RolesArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkID("user", a.User, s.cfg.Limits.MaxIDLen); err != nil {
		return nil, err
	}
	if len(a.Roles) == 0 {
		return nil, badRequest("roles is required: owner, moderator, member")
	}
	var roles []string
	for _, r := range roleOrder {
		if slices.Contains(a.Roles, r) {
			roles = append(roles, r)
		}
	}
	for _, r := range a.Roles {
		if !slices.Contains(roleOrder, r) {
			return nil, badRequest("unknown role %q: roles are owner, moderator, member", r)
		}
	}
	cm, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if !s.isOwner(c, cm) {
		return nil, protocol.Errorf(protocol.CodeForbidden, "only owners may change roles in %s", s.id)
	}
	m, perr := s.mustMember(a.User)
	if perr != nil {
		return nil, perr
	}
	if !isMember(m) {
		return nil, protocol.Errorf(protocol.CodeNotMember, "%s is not a member of %s", a.User, s.id)
	}
	if !c.Admin && m.hasRole(protocol.RoleOwner) {
		// An owner's roles change only by a global admin, so a channel
		// is never left without an owner by its owners.
		return nil, protocol.Errorf(protocol.CodeForbidden, "only a global admin changes an owner's roles")
	}
	if slices.Equal(roles, m.Roles) {
		return protocol.MemberResult{Member: s.memberView(m)}, nil
	}
	nm := m.clone()
	nm.Roles = roles
	s.putMember(nm)
	v := s.memberView(nm)
	s.emit(protocol.EventMemberUpdated, memberEvent{User: a.User, Member: v, Actor: c.User})
	return protocol.MemberResult{Member: v}, nil
}

// handleMembersList pages through the member records in user id order.
func (s *State) handleMembersList(c Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a protocol.MembersListArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	l := s.cfg.Limits
	limit := l.DefaultHistoryLimit
	if a.Limit != 0 {
		if a.Limit < 1 || a.Limit > l.MaxHistoryLimit {
			return nil, badRequest("limit must be between 1 and %d", l.MaxHistoryLimit)
		}
		limit = a.Limit
	}
	if len(a.Cursor) > l.MaxIDLen {
		return nil, badRequest("invalid cursor")
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if err := s.canRead(c, m); err != nil {
		return nil, err
	}
	recs, more, err := s.memberPage(a.Cursor, limit)
	if err != nil {
		return nil, internal(err)
	}
	res := protocol.MembersListResult{Members: make([]*protocol.Member, len(recs))}
	for i, r := range recs {
		res.Members[i] = s.memberView(r)
	}
	if more {
		res.Cursor = recs[len(recs)-1].User
	}
	return res, nil
}

// memberPage returns up to limit member records with user ids above after,
// in id order, and whether more follow. Records written but not yet
// durable are only in the cache (pinned), so they overlay the store's.
// anotherOwner reports whether a member other than user is an owner. It
// pages through the members (an owner leaving is rare).
func (s *State) anotherOwner(user string) (bool, error) {
	after := ""
	for {
		page, more, err := s.memberPage(after, 256)
		if err != nil {
			return false, err
		}
		for _, m := range page {
			if m.User != user && isMember(m) && m.hasRole(protocol.RoleOwner) {
				return true, nil
			}
			after = m.User
		}
		if !more || len(page) == 0 {
			return false, nil
		}
	}
}

func (s *State) memberPage(after string, limit int) ([]*memberRecord, bool, error) {
	pending := map[string]*memberRecord{}
	s.members.eachDirty(func(u string, m *memberRecord) {
		if u > after {
			pending[u] = m
		}
	})
	r := persistence.Range{Limit: limit + 1 + len(pending)}
	if after != "" {
		r.After = []byte(after)
	}
	stored, err := s.log.Scan(persistence.TableMember, r)
	if err != nil {
		return nil, false, err
	}
	truncated := len(stored) == r.Limit
	byUser := make(map[string]*memberRecord, len(stored)+len(pending))
	var users []string
	for _, rec := range stored {
		u := string(rec.Key)
		if _, ok := pending[u]; ok {
			continue
		}
		var m memberRecord
		if err := json.Unmarshal(rec.Value, &m); err != nil {
			return nil, false, ErrCorrupt
		}
		byUser[u] = &m
		users = append(users, u)
	}
	last := ""
	if truncated {
		last = string(stored[len(stored)-1].Key)
	}
	for u, m := range pending {
		// Past the last stored key of a truncated scan, the store may
		// hold keys we have not read: those pending ones wait for the
		// next page.
		if m == nil || (truncated && u > last) {
			continue
		}
		byUser[u] = m
		users = append(users, u)
	}
	slices.Sort(users)
	more := truncated || len(users) > limit
	if len(users) > limit {
		users = users[:limit]
	}
	out := make([]*memberRecord, len(users))
	for i, u := range users {
		out[i] = byUser[u]
	}
	if len(out) == 0 {
		more = false
	}
	return out, more, nil
}
