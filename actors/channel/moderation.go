package channel

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// modState is the moderation state a channel keeps in memory: the send
// limits (ratelimit.go) and the caches of flags (flags.go).
type modState struct {
	limits sendLimits
	flags  *cache[flagKey, bool]
	counts *cache[uint64, int64]
	memo   flagMemo
}

func newModState(cfg Config) modState {
	return modState{
		limits: newSendLimits(),
		flags:  newCache[flagKey, bool](cfg.MemberCache),
		counts: newCache[uint64, int64](cfg.MessageCache),
	}
}

func (m *modState) committed(index uint64) {
	m.flags.committed(index)
	m.counts.committed(index)
}

// until is when a restriction of d minutes from now ends (Permanent for 0).
func until(d int64, now time.Time) protocol.Time {
	if d == 0 {
		return protocol.Permanent
	}
	return protocol.At(now.Add(time.Duration(d) * time.Minute))
}

func checkDuration(d *int64) (int64, *protocol.Error) {
	if d == nil {
		return 0, badRequest("duration_min is required (0 = permanent)")
	}
	if *d < 0 || *d > protocol.MaxDurationMin {
		return 0, badRequest("duration_min must be between 0 (permanent) and %d", protocol.MaxDurationMin)
	}
	return *d, nil
}

// moderation is one moderation op's decoded request: who acts, on whom.
type moderation struct {
	args   protocol.ModerateArgs
	actor  *memberRecord // the caller's record
	target *memberRecord // the target's record (nil: none)
}

// prepareModeration checks what every member.* moderation op needs: valid
// args, a caller who may moderate, and a target ranked below the caller.
func (s *State) prepareModeration(c Caller, args json.RawMessage) (*moderation, *protocol.Error) {
	var mo moderation
	if err := protocol.DecodeArgs(args, &mo.args); err != nil {
		return nil, err
	}
	if err := checkID("user", mo.args.User, s.cfg.Limits.MaxIDLen); err != nil {
		return nil, err
	}
	if err := checkText("reason", mo.args.Reason, s.cfg.Limits.MaxNameLen); err != nil {
		return nil, err
	}
	var perr *protocol.Error
	if mo.actor, perr = s.mustMember(c.User); perr != nil {
		return nil, perr
	}
	if !s.isModerator(c, mo.actor) {
		return nil, protocol.Errorf(protocol.CodeForbidden, "moderating %s needs the moderator or owner role", s.id)
	}
	if mo.args.User == c.User {
		return nil, protocol.Errorf(protocol.CodeForbidden, "you cannot moderate yourself")
	}
	if mo.target, perr = s.mustMember(mo.args.User); perr != nil {
		return nil, perr
	}
	if s.targetRank(mo.args.User, mo.target) >= s.rank(c, mo.actor) {
		return nil, protocol.Errorf(protocol.CodeForbidden, "you may not moderate %s in %s", mo.args.User, s.id)
	}
	return &mo, nil
}

// restrictable returns a fresh copy of the target's record to change, or a
// new restriction-only record.
func (s *State) restrictable(user string, m *memberRecord, now time.Time) *memberRecord {
	if m != nil {
		return m.clone()
	}
	return &memberRecord{Member: protocol.Member{
		User: user, Channel: s.id, Membership: protocol.MembershipNone, CreatedAt: protocol.At(now),
	}}
}

// saveRestriction writes nm, or deletes it when it no longer holds
// anything: neither a membership nor a restriction in force.
func (s *State) saveRestriction(nm *memberRecord, now time.Time) {
	if !listedMember(nm) && !bannedAt(nm, now) && !mutedAt(nm, now) {
		s.deleteMember(nm.User)
		return
	}
	s.putMember(nm)
}

func (s *State) handleMemberMute(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	mo, perr := s.prepareModeration(c, args)
	if perr != nil {
		return nil, perr
	}
	d, perr := checkDuration(mo.args.DurationMin)
	if perr != nil {
		return nil, perr
	}
	nm := s.restrictable(mo.args.User, mo.target, now)
	nm.MutedUntil, nm.MuteReason = until(d, now), mo.args.Reason
	if mo.target != nil && mo.target.MutedUntil.Equal(nm.MutedUntil.Time) && mo.target.MuteReason == nm.MuteReason {
		return protocol.MemberResult{Member: s.memberView(mo.target)}, nil // muted so already
	}
	s.putMember(nm)
	v := s.memberView(nm)
	s.emit(protocol.EventMemberUpdated, memberEvent{User: nm.User, Member: v, Actor: c.User, Reason: mo.args.Reason})
	return protocol.MemberResult{Member: v}, nil
}

func (s *State) handleMemberUnmute(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	mo, perr := s.prepareModeration(c, args)
	if perr != nil {
		return nil, perr
	}
	if !mutedAt(mo.target, now) {
		return protocol.MemberResult{Member: s.memberView(mo.target)}, nil
	}
	nm := mo.target.clone()
	nm.MutedUntil, nm.MuteReason = protocol.Time{}, ""
	s.saveRestriction(nm, now)
	v := s.memberView(nm)
	s.emit(protocol.EventMemberUpdated, memberEvent{User: nm.User, Member: v, Actor: c.User})
	return protocol.MemberResult{Member: v}, nil
}

// handleMemberBan bans a user: their membership ends (roles with it), every
// session of theirs stops receiving the channel after being told, and
// until the ban ends they cannot join, watch, read or send.
func (s *State) handleMemberBan(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	mo, perr := s.prepareModeration(c, args)
	if perr != nil {
		return nil, perr
	}
	d, perr := checkDuration(mo.args.DurationMin)
	if perr != nil {
		return nil, perr
	}
	old := mo.target
	nm := s.restrictable(mo.args.User, old, now)
	nm.Membership, nm.Roles = protocol.MembershipBanned, nil
	nm.BannedUntil, nm.BanReason = until(d, now), mo.args.Reason
	wasBanned := bannedAt(old, now)
	if wasBanned && old.BannedUntil.Equal(nm.BannedUntil.Time) && old.BanReason == nm.BanReason {
		return protocol.MemberResult{Member: s.memberView(old)}, nil // banned so already
	}
	if counted(old) {
		s.meta.Channel.MemberCount--
	}
	if listedMember(old) {
		s.notice(nm.User, false, protocol.ReasonBanned)
	}
	s.putMember(nm)
	s.revokeTokens(nm.User, now)
	s.cur.Watch = s.watchers.removeUser(nm.User)
	v := s.memberView(nm)
	s.emit(protocol.EventMemberUpdated, memberEvent{User: nm.User, Member: v, Actor: c.User, Reason: mo.args.Reason})
	if !wasBanned {
		s.systemMessage(protocol.SystemInfo{Kind: protocol.SystemMemberBanned, User: nm.User, Actor: c.User, Reason: mo.args.Reason, DurationMin: d}, now)
	}
	return protocol.MemberResult{Member: v}, nil
}

func (s *State) handleMemberUnban(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	mo, perr := s.prepareModeration(c, args)
	if perr != nil {
		return nil, perr
	}
	if mo.target == nil || mo.target.Membership != protocol.MembershipBanned {
		return protocol.MemberResult{Member: s.memberView(mo.target)}, nil
	}
	// Also a ban that has ended by itself: its record goes now.
	nm := mo.target.clone()
	nm.Membership, nm.BannedUntil, nm.BanReason = protocol.MembershipNone, protocol.Time{}, ""
	s.saveRestriction(nm, now)
	v := s.memberView(nm)
	s.emit(protocol.EventMemberUpdated, memberEvent{User: nm.User, Member: v, Actor: c.User})
	return protocol.MemberResult{Member: v}, nil
}

// handleMemberKick ends a user's membership (or a live viewer's viewing)
// now and stops their sessions after telling them; they may join again.
func (s *State) handleMemberKick(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	mo, perr := s.prepareModeration(c, args)
	if perr != nil {
		return nil, perr
	}
	user := mo.args.User
	listed := listedMember(mo.target)
	if !listed && s.watchers.byUser[user] == 0 {
		return nil, protocol.Errorf(protocol.CodeNotMember, "%s is not in %s", user, s.id)
	}
	if listed {
		s.endMembership(mo.target, now)
		s.notice(user, false, protocol.ReasonKicked)
	}
	s.revokeTokens(user, now)
	s.cur.Watch = s.watchers.removeUser(user)
	s.emit(protocol.EventMemberKicked, memberEvent{User: user, Actor: c.User, Reason: mo.args.Reason})
	s.systemMessage(protocol.SystemInfo{Kind: protocol.SystemMemberKicked, User: user, Actor: c.User, Reason: mo.args.Reason}, now)
	return struct{}{}, nil
}

func (s *State) handleChannelMute(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.ChannelMuteArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	d, perr := checkDuration(a.DurationMin)
	if perr != nil {
		return nil, perr
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if !s.isModerator(c, m) {
		return nil, protocol.Errorf(protocol.CodeForbidden, "muting %s needs the moderator or owner role", s.id)
	}
	u := until(d, now)
	if s.meta.Channel.MutedUntil.Equal(u.Time) {
		return protocol.ChannelResult{Channel: s.channelView(), Member: s.memberView(m)}, nil
	}
	s.meta.Channel.MutedUntil = u
	s.meta.Channel.UpdatedAt = protocol.At(now)
	s.settingsChanged()
	s.emit(protocol.EventChannelUpdated, channelEvent{Channel: s.channelView(), Actor: c.User})
	s.systemMessage(protocol.SystemInfo{Kind: protocol.SystemChannelMuted, Actor: c.User, DurationMin: d}, now)
	return protocol.ChannelResult{Channel: s.channelView(), Member: s.memberView(m)}, nil
}

func (s *State) handleChannelUnmute(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.ChannelRef
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if !s.isModerator(c, m) {
		return nil, protocol.Errorf(protocol.CodeForbidden, "unmuting %s needs the moderator or owner role", s.id)
	}
	if !s.meta.Channel.MutedUntil.After(now) {
		return protocol.ChannelResult{Channel: s.channelView(), Member: s.memberView(m)}, nil
	}
	s.meta.Channel.MutedUntil = protocol.Time{}
	s.meta.Channel.UpdatedAt = protocol.At(now)
	s.settingsChanged()
	s.emit(protocol.EventChannelUpdated, channelEvent{Channel: s.channelView(), Actor: c.User})
	s.systemMessage(protocol.SystemInfo{Kind: protocol.SystemChannelUnmuted, Actor: c.User}, now)
	return protocol.ChannelResult{Channel: s.channelView(), Member: s.memberView(m)}, nil
}

// viewRestrictions leaves out of a member view the restrictions that have
// ended: an ended mute, and an ended ban (membership none).
func viewRestrictions(v *protocol.Member, now time.Time) {
	if !v.MutedUntil.After(now) {
		v.MutedUntil, v.MuteReason = protocol.Time{}, ""
	}
	if v.Membership == protocol.MembershipBanned && !v.BannedUntil.After(now) {
		v.Membership = protocol.MembershipNone
	}
	if v.Membership != protocol.MembershipBanned {
		v.BannedUntil, v.BanReason = protocol.Time{}, ""
	}
}
