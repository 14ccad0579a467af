package channel

import (
	"slices"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Join-token permissions (the gateway verifies the token; see
// gateway/auth).
const (
	PermRead     = "read"
	PermWrite    = "write"
	PermModerate = "moderate"
)

// A join token's permissions belong to the session that joined with it, in
// this channel, for as long as that session keeps the watch the join
// started: they live in the watcher table next to the watch, so a kick, a
// ban, a leave or an unwatch ends them with it. Only two ops carry perms
// from the gateway: channel.join with a token, and the batched rewatch a
// gateway sends when the channel's activation changed (the new activation
// has no watcher table yet; see rewatch.go). A channel.join or
// channel.watch without perms replaces the session's grant with none.

func hasPerm(perms []string, p string) bool { return slices.Contains(perms, p) }

// setPerms records the grant of a watching session (nil: none).
func (w *watchers) setPerms(gw, session string, perms []string) {
	k := watchKey{gw, session}
	if perms == nil {
		delete(w.perms, k)
		return
	}
	w.perms[k] = slices.Clone(perms)
}

// permsOf returns the grant of a watching session.
func (w *watchers) permsOf(gw, session string) []string { return w.perms[watchKey{gw, session}] }

// admit runs before every handler of an existing channel. It replaces the
// caller's perms with the grant its session holds (join and watch keep the
// ones they carry), and refuses every op of a banned user except those that
// let them see where they stand (channel.get) or drop a subscription.
func (s *State) admit(cmd *Command) *protocol.Error {
	c := &cmd.Caller
	switch cmd.Op {
	case protocol.OpChannelJoin, protocol.OpChannelWatch:
	default:
		c.Perms = s.watchers.permsOf(c.Gateway, c.Session)
	}
	switch cmd.Op {
	case protocol.OpChannelCreate, OpOpen, protocol.OpChannelGet, protocol.OpChannelUnwatch, OpSummary, OpListing:
		return nil
	}
	if c.Admin {
		return nil
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return perr
	}
	if bannedAt(m, s.now) {
		return bannedError(s.id, m)
	}
	return nil
}

func bannedError(ch string, m *memberRecord) *protocol.Error {
	if m.BannedUntil.Equal(protocol.Permanent.Time) {
		return protocol.Errorf(protocol.CodeBanned, "you are banned from %s", ch)
	}
	return protocol.Errorf(protocol.CodeBanned, "you are banned from %s until %s", ch, m.BannedUntil.UTC().Format(protocol.TimeLayout))
}

// Restrictions end by themselves: a mute or ban is in force while its
// until lies after now, so it ends exactly at until, checked on each
// command (no timers).

func mutedAt(m *memberRecord, now time.Time) bool {
	return m != nil && m.MutedUntil.After(now)
}

func bannedAt(m *memberRecord, now time.Time) bool {
	return m != nil && m.Membership == protocol.MembershipBanned && m.BannedUntil.After(now)
}

// listedMember reports whether m makes its user part of the channel: a
// member, a viewer (broadcast, or read-only), or invited.
func listedMember(m *memberRecord) bool {
	if m == nil {
		return false
	}
	switch m.Membership {
	case protocol.MembershipMember, protocol.MembershipViewer, protocol.MembershipInvited:
		return true
	}
	return false
}

// counted reports whether m counts in member_count.
func counted(m *memberRecord) bool {
	return m != nil && (m.Membership == protocol.MembershipMember || m.Membership == protocol.MembershipViewer)
}

// Ranks order who may act on whom: a moderator acts only on users ranked
// below it, so moderators cannot moderate owners or each other, and only a
// global admin acts on owners.
const (
	rankMember = iota + 1
	rankModerator
	rankOwner
	rankAdmin
)

// rank is the caller's rank.
func (s *State) rank(c Caller, m *memberRecord) int {
	switch {
	case c.Admin:
		return rankAdmin
	case isMember(m) && m.hasRole(protocol.RoleOwner):
		return rankOwner
	case s.isModerator(c, m):
		return rankModerator
	}
	return rankMember
}

// targetRank is the rank of a user acted upon: from its record, and
// moderator while one of its sessions holds a join token's moderate grant
// here, so ranks are the same whichever side of a moderation one is on: a
// token moderator and a moderator by role cannot act on each other, an
// owner or admin acts on both (and a kick or ban ends the grant with the
// watch).
func (s *State) targetRank(user string, m *memberRecord) int {
	switch {
	case isMember(m) && m.hasRole(protocol.RoleOwner):
		return rankOwner
	case isMember(m) && m.hasRole(protocol.RoleModerator), s.watchers.grants(user, PermModerate):
		return rankModerator
	}
	return rankMember
}

// grants reports whether a watching session of user holds perm.
func (w *watchers) grants(user, perm string) bool {
	if w.byUser[user] == 0 {
		return false
	}
	for k, perms := range w.perms {
		if w.byGateway[k.gateway][k.session] == user && hasPerm(perms, perm) {
			return true
		}
	}
	return false
}

// sendAllowed decides whether the caller may send now: membership and
// channel type (moderators may always), a member mute (everyone but global
// admins: an owner may mute a moderator), then — for everyone but
// moderators — the channel mute, slow mode and the rate limit.
func (s *State) sendAllowed(c Caller, m *memberRecord) *protocol.Error {
	mod, err := s.mayPost(c, m)
	if err != nil || mod {
		return err
	}
	return s.mod.limits.check(s, c, m, s.now)
}

// mayPost is sendAllowed without the rate limits and slow mode: whether
// the caller may post at all (typing.start and message.edit ask this
// much). mod reports a moderator, whom no limit applies to.
func (s *State) mayPost(c Caller, m *memberRecord) (mod bool, err *protocol.Error) {
	if mod, err = s.mayAuthor(c, m); err != nil {
		return mod, err
	}
	return mod, s.silenced(c, m, mod)
}

// mayAuthor is mayPost without the mutes: whether the caller's membership
// (or join token, or live viewing) lets them write in the channel at all.
// Deleting one's own message asks this much. A join token adds to what a
// membership allows and never takes from it: a member who joins with a
// read-only token still sends.
func (s *State) mayAuthor(c Caller, m *memberRecord) (mod bool, err *protocol.Error) {
	mod = s.isModerator(c, m)
	switch {
	case mod:
	case c.Perms != nil && !hasPerm(c.Perms, PermWrite) && !isMember(m):
		return mod, protocol.Errorf(protocol.CodeForbidden, "your join token for %s grants read only", s.id)
	case s.meta.Channel.Type == protocol.TypeBroadcast:
		return mod, protocol.Errorf(protocol.CodeForbidden, "only owners and moderators send in broadcast channel %s", s.id)
	case isMember(m), hasPerm(c.Perms, PermWrite):
	case s.meta.Channel.Type == protocol.TypeLive && s.watchers.byUser[c.User] > 0:
		// A live viewer: watching the room is what makes one a viewer.
	case m != nil && m.Membership == protocol.MembershipViewer:
		return mod, protocol.Errorf(protocol.CodeForbidden, "viewers of %s cannot send", s.id)
	default:
		return mod, protocol.Errorf(protocol.CodeNotMember, "join %s before sending to it", s.id)
	}
	return mod, nil
}

// silenced refuses a caller who may not speak now: muted (everyone but
// global admins), or — unless mod — in a muted channel. Sends, edits and
// reactions all ask it.
func (s *State) silenced(c Caller, m *memberRecord, mod bool) *protocol.Error {
	now := s.now
	if mutedAt(m, now) && !c.Admin {
		e := protocol.Errorf(protocol.CodeMuted, "you are muted in %s", s.id)
		if !m.MutedUntil.Equal(protocol.Permanent.Time) {
			e = protocol.Errorf(protocol.CodeMuted, "you are muted in %s until %s", s.id, m.MutedUntil.UTC().Format(protocol.TimeLayout))
			e.RetryAfterMS = retryMS(m.MutedUntil.Sub(now))
		}
		return e
	}
	if mod {
		return nil
	}
	if until := s.meta.Channel.MutedUntil; until.After(now) {
		e := protocol.Errorf(protocol.CodeChannelMuted, "%s is muted: only moderators send", s.id)
		if !until.Equal(protocol.Permanent.Time) {
			e.RetryAfterMS = retryMS(until.Sub(now))
		}
		return e
	}
	return nil
}

// retryMS rounds a wait up to whole milliseconds, at least 1.
func retryMS(d time.Duration) int64 {
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	return max(ms, 1)
}
