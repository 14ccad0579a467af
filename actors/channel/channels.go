package channel

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// OpSummary is an internal op (never accepted from clients): the channel as
// one entry of the caller's channels.list.
const OpSummary = "_channel.summary"

// DistinctPrefix starts the id of every distinct conversation, and only
// theirs: a channel of any other kind may not take such an id, so nobody
// holds a conversation's id before its members create it.
const DistinctPrefix = "dm-"

// DistinctID is the id of the distinct conversation among members: the
// same for the same set of users, whatever their order or repeats.
func DistinctID(members []string) string {
	set := slices.Clone(members)
	slices.Sort(set)
	set = slices.Compact(set)
	h := sha256.Sum256([]byte(strings.Join(set, "\x00")))
	return DistinctPrefix + hex.EncodeToString(h[:12])
}

// channelView is the channel object as clients see it.
func (s *State) channelView() *protocol.Channel {
	c := s.meta.Channel
	c.Tags = append([]string{}, c.Tags...)
	if !c.MutedUntil.After(s.now) {
		c.MutedUntil = protocol.Time{} // the mute has ended
	}
	if s.lastMsg != nil {
		c.LastMessage = s.lastMsg
	}
	c.TypingEvents = s.typingEventsView()
	return &c
}

func defaultPublic(typ string) bool {
	switch typ {
	case protocol.TypePrivate, protocol.TypeConversation:
		return false
	}
	return true
}

// OpOpen is an internal op: open the caller's distinct conversation with
// Users (creating it, or bringing back whoever of them and the caller had
// left it) — what sending to a user does first.
const OpOpen = "_channel.open"

// OpenArgs are the args of OpOpen.
type OpenArgs struct {
	Users []string `json:"users"`
}

func (s *State) handleCreate(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.ChannelCreateArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	return s.create(c, &a, false, now)
}

func (s *State) handleOpen(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a OpenArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	return s.create(c, &protocol.ChannelCreateArgs{Type: protocol.TypeConversation, Distinct: true, Members: a.Users}, true, now)
}

// create makes the channel. A distinct conversation that exists is opened
// instead: the caller, if it had left, comes back as a member, and so do
// the other members when reopenAll (a message to them is on its way).
func (s *State) create(c Caller, a *protocol.ChannelCreateArgs, reopenAll bool, now time.Time) (any, *protocol.Error) {
	l := s.cfg.Limits
	if !protocol.ValidChannelType(a.Type) {
		return nil, badRequest("type must be one of standard, private, conversation, broadcast, community, live")
	}
	if a.Distinct && a.Type != protocol.TypeConversation {
		return nil, badRequest("distinct applies to conversation channels only")
	}
	if !a.Distinct && strings.HasPrefix(s.id, DistinctPrefix) {
		return nil, badRequest("channel ids starting with %q are reserved for distinct conversations", DistinctPrefix)
	}
	if err := checkText("name", a.Name, l.MaxNameLen); err != nil {
		return nil, err
	}
	if err := checkText("description", a.Description, l.MaxTextLen); err != nil {
		return nil, err
	}
	if err := checkText("image", a.Image, l.MaxTextLen); err != nil {
		return nil, err
	}
	if err := checkObject("metadata", a.Metadata, l.MaxDataBytes); err != nil {
		return nil, err
	}
	if err := checkTags(a.Tags, l); err != nil {
		return nil, err
	}
	if len(a.Members) > l.MaxHistoryLimit {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "%d members, at most %d may be listed at creation", len(a.Members), l.MaxHistoryLimit)
	}
	for _, u := range a.Members {
		if err := checkID("members", u, l.MaxIDLen); err != nil {
			return nil, err
		}
	}
	if err := checkAttachedTo(a.AttachedTo, l); err != nil {
		return nil, err
	}
	if s.exists {
		if a.Distinct && s.meta.Channel.Distinct && !s.meta.Channel.Deleted {
			return s.reopen(c, a.Members, reopenAll, now)
		}
		return nil, protocol.Errorf(protocol.CodeInvalidState, "channel %s already exists", s.id)
	}
	if err := s.watchIfSession(c); err != nil {
		return nil, err
	}

	public := defaultPublic(a.Type)
	if a.Public != nil {
		public = *a.Public
	}
	s.exists = true
	if s.cfg.Webhooks {
		s.meta.HookSeq, s.meta.HookSet = 0, true // every event of a new channel
	}
	s.meta.Channel = protocol.Channel{
		ID:           s.id,
		Type:         a.Type,
		Name:         a.Name,
		Description:  a.Description,
		Image:        a.Image,
		Metadata:     compactObject(a.Metadata),
		Tags:         append([]string{}, a.Tags...),
		Public:       public,
		Distinct:     a.Distinct,
		AttachedTo:   a.AttachedTo,
		CreatedBy:    c.User,
		CreatedAt:    protocol.At(now),
		UpdatedAt:    protocol.At(now),
		LastActivity: protocol.At(now),
	}
	s.meta.Channel.TypingEvents = a.TypingEvents
	s.settingsChanged()
	owner := newMember(s.id, c.User, []string{protocol.RoleOwner}, now)
	s.putMember(owner)
	s.meta.Channel.MemberCount = 1
	s.notice(c.User, true, protocol.ReasonCreated)
	for _, u := range a.Members {
		if u == c.User {
			continue
		}
		if m, _ := s.members.get(u); m != nil {
			continue // listed twice
		}
		s.putMember(newMember(s.id, u, []string{protocol.RoleMember}, now))
		s.meta.Channel.MemberCount++
		s.notice(u, true, protocol.ReasonCreated)
	}
	return s.createResult(owner, true), nil
}

// reopen opens an existing distinct conversation for the caller, and
// brings back (as a member, telling them with channel.added) the caller
// when it had left and, with all, the other members who had; a banned
// caller is refused, banned others stay out. Everything is read before
// anything changes.
func (s *State) reopen(c Caller, members []string, all bool, now time.Time) (any, *protocol.Error) {
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if bannedAt(m, now) {
		return nil, bannedError(s.id, m)
	}
	// The id is the hash of the member set: whoever names the set that
	// hashes to it is one of its members (the gateway routes a create to
	// exactly that id). A member may open it without naming the set.
	inSet := DistinctID(append(slices.Clone(members), c.User)) == s.id
	if !isMember(m) && !inSet {
		return nil, protocol.Errorf(protocol.CodeForbidden, "you are not a member of %s", s.id)
	}
	all = all && inSet
	type back struct {
		user string
		m    *memberRecord
	}
	var comeBack []back
	if !isMember(m) {
		comeBack = append(comeBack, back{c.User, m})
	}
	if all {
		for _, u := range members {
			if u == c.User || slices.ContainsFunc(comeBack, func(b back) bool { return b.user == u }) {
				continue
			}
			um, perr := s.mustMember(u)
			if perr != nil {
				return nil, perr
			}
			if !isMember(um) && !bannedAt(um, now) {
				comeBack = append(comeBack, back{u, um})
			}
		}
	}
	if err := s.watchIfSession(c); err != nil {
		return nil, err
	}
	for _, b := range comeBack {
		nm, _ := s.join(b.user, b.m, protocol.MembershipMember, protocol.ReasonCreated, now)
		if b.user == c.User {
			m = nm
		}
	}
	return s.createResult(m, false), nil
}

// createResult is the result of channel.create: the creating session
// watches, so it learns the seq its events continue from.
func (s *State) createResult(m *memberRecord, created bool) any {
	return protocol.ChannelCreateResult{Channel: s.channelView(), Member: s.memberView(m), Seq: s.meta.LastSeq, Created: created}
}

func (s *State) handleGet(c Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a protocol.ChannelRef
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if m == nil { // any record holder may read its own standing
		if err := s.canRead(c, m); err != nil {
			return nil, err
		}
	}
	return protocol.ChannelResult{Channel: s.channelView(), Member: s.memberView(m)}, nil
}

// handleSummary answers channels.list for one channel: nothing is read
// beyond what the channel keeps in memory and the caller's member record.
func (s *State) handleSummary(c Caller, _ json.RawMessage, _ time.Time) (any, *protocol.Error) {
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if !listedMember(m) || s.meta.Channel.Deleted {
		return nil, protocol.Errorf(protocol.CodeNotMember, "you are not a member of %s", s.id)
	}
	ch := s.channelView()
	ch.Member = s.memberView(m)
	unread := ch.Member.UnreadCount
	ch.UnreadCount = &unread
	mentioned := m.LastMentionedSegment > m.ReadSegment
	ch.Mentioned = &mentioned
	return ch, nil
}

func (s *State) handleUpdate(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.ChannelUpdateArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if !s.isModerator(c, m) {
		return nil, protocol.Errorf(protocol.CodeForbidden, "only owners and moderators may update %s", s.id)
	}
	l := s.cfg.Limits
	ch := s.meta.Channel // validate into a copy; commit only if all is well
	if a.Name != nil {
		if err := checkText("name", *a.Name, l.MaxNameLen); err != nil {
			return nil, err
		}
		ch.Name = *a.Name
	}
	if a.Description != nil {
		if err := checkText("description", *a.Description, l.MaxTextLen); err != nil {
			return nil, err
		}
		ch.Description = *a.Description
	}
	if a.Image != nil {
		if err := checkText("image", *a.Image, l.MaxTextLen); err != nil {
			return nil, err
		}
		ch.Image = *a.Image
	}
	if a.Metadata != nil {
		if err := checkObject("metadata", a.Metadata, l.MaxDataBytes); err != nil {
			return nil, err
		}
		ch.Metadata = compactObject(a.Metadata)
	}
	if a.Tags != nil {
		if err := checkTags(*a.Tags, l); err != nil {
			return nil, err
		}
		ch.Tags = append([]string{}, (*a.Tags)...)
	}
	if a.Public != nil {
		ch.Public = *a.Public
	}
	if a.RateLimit != nil {
		rl := *a.RateLimit
		if rl.Count < 0 || rl.WindowMS < 0 || (rl.Count > 0) != (rl.WindowMS > 0) {
			return nil, badRequest("rate_limit needs count > 0 and window_ms > 0, or both 0 to turn it off")
		}
		if rl.Count > maxRateCount || rl.WindowMS > maxRateWindowMS {
			return nil, badRequest("rate_limit count may be at most %d and window_ms at most %d (24 h)", maxRateCount, maxRateWindowMS)
		}
		if rl.Count == 0 {
			ch.RateLimit = nil
		} else {
			ch.RateLimit = &rl
		}
	}
	if a.SlowModeMS != nil {
		if *a.SlowModeMS < 0 || *a.SlowModeMS > maxSlowModeMS {
			return nil, badRequest("slow_mode_ms must be between 0 and %d (6 h)", maxSlowModeMS)
		}
		ch.SlowModeMS = *a.SlowModeMS
	}
	if a.AutoDeleteFlags != nil {
		if *a.AutoDeleteFlags < 0 {
			return nil, badRequest("auto_delete_flags must be >= 0")
		}
		ch.AutoDeleteFlags = *a.AutoDeleteFlags
	}
	if a.AttachedTo != nil {
		if err := checkAttachedTo(a.AttachedTo, l); err != nil {
			return nil, err
		}
		ch.AttachedTo = a.AttachedTo
	}
	if a.TypingEvents != nil {
		ch.TypingEvents = a.TypingEvents
	}
	if bytes.Equal(encode(&ch), encode(&s.meta.Channel)) {
		// Nothing changes: nothing is written or announced.
		return protocol.ChannelResult{Channel: s.channelView(), Member: s.memberView(m)}, nil
	}
	ch.UpdatedAt = protocol.At(now)
	s.meta.Channel = ch
	s.settingsChanged()
	s.emit(protocol.EventChannelUpdated, channelEvent{Channel: s.channelView(), Actor: c.User})
	return protocol.ChannelResult{Channel: s.channelView(), Member: s.memberView(m)}, nil
}

// maxDeleteNotices bounds the members a deleted channel tells (with
// channel.removed, and their channel lists): the first ones by user id.
// The others' lists drop the channel when they next read it.
const maxDeleteNotices = 10000

// listedMembers returns the users of up to max listed member records
// (members, viewers, invitees), in user id order.
func (s *State) listedMembers(max int) ([]string, error) {
	var out []string
	after := ""
	for len(out) < max {
		page, more, err := s.memberPage(after, min(256, max-len(out)))
		if err != nil {
			return nil, err
		}
		for _, m := range page {
			if listedMember(m) {
				out = append(out, m.User)
			}
			after = m.User
		}
		if !more || len(page) == 0 {
			break
		}
	}
	return out, nil
}

// channelEvent is the data of channel.* events.
type channelEvent struct {
	Channel *protocol.Channel `json:"channel"`
	Actor   string            `json:"actor,omitempty"`
}

func (s *State) handleChannelDelete(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.ChannelRef
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if !s.isOwner(c, m) {
		return nil, protocol.Errorf(protocol.CodeForbidden, "only owners may delete %s", s.id)
	}
	members, err := s.listedMembers(maxDeleteNotices)
	if err != nil {
		return nil, internal(err)
	}
	s.meta.Channel.Deleted = true
	s.meta.Channel.UpdatedAt = protocol.At(now)
	for _, u := range members {
		s.notice(u, false, protocol.ReasonDeleted)
	}
	s.settingsChanged()
	s.emit(protocol.EventChannelDeleted, channelEvent{Channel: s.channelView(), Actor: c.User})
	// Watchers receive channel.deleted and then stop watching.
	s.cur.Watch = s.watchers.removeAll()
	s.cur.Unwatching = true
	return protocol.ChannelResult{Channel: s.channelView()}, nil
}
