package channel

import (
	"slices"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// The records of an import, checked against the channel's limits (the
// same bounds a live write has) and turned into what the channel stores.
// Timestamps, ids, segments and authors are kept as given; fields derived
// when read (counts, the reader's own) are not taken from the record.

// importedChannel checks a channel record and returns the channel it
// makes.
func (s *State) importedChannel(r *protocol.ChannelRecord, now time.Time) (*protocol.Channel, *protocol.Error) {
	l := s.cfg.Limits
	switch {
	case r.ID != s.id:
		return nil, badRequest("the record is of channel %q, not %q", r.ID, s.id)
	case !protocol.ValidChannelType(r.Type):
		return nil, badRequest("type must be one of standard, private, conversation, broadcast, community, live")
	case r.Distinct && r.Type != protocol.TypeConversation:
		return nil, badRequest("distinct applies to conversation channels only")
	case !r.Distinct && strings.HasPrefix(s.id, DistinctPrefix):
		return nil, badRequest("channel ids starting with %q are reserved for distinct conversations", DistinctPrefix)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"name", r.Name, l.MaxNameLen}, {"description", r.Description, l.MaxTextLen}, {"image", r.Image, l.MaxTextLen}} {
		if err := checkText(f.name, f.v, f.max); err != nil {
			return nil, err
		}
	}
	if err := checkObject("metadata", r.Metadata, l.MaxDataBytes); err != nil {
		return nil, err
	}
	if err := checkTags(r.Tags, l); err != nil {
		return nil, err
	}
	if err := checkAttachedTo(r.AttachedTo, l); err != nil {
		return nil, err
	}
	if r.CreatedBy != "" {
		if err := checkID("created_by", r.CreatedBy, l.MaxIDLen); err != nil {
			return nil, err
		}
	}
	if rl := r.RateLimit; rl != nil {
		if rl.Count < 0 || rl.WindowMS < 0 || (rl.Count > 0) != (rl.WindowMS > 0) || rl.Count > maxRateCount || rl.WindowMS > maxRateWindowMS {
			return nil, badRequest("rate_limit needs count (at most %d) and window_ms (at most %d) both > 0, or both 0", maxRateCount, maxRateWindowMS)
		}
	}
	if r.SlowModeMS < 0 || r.SlowModeMS > maxSlowModeMS {
		return nil, badRequest("slow_mode_ms must be between 0 and %d", maxSlowModeMS)
	}
	if r.AutoDeleteFlags < 0 {
		return nil, badRequest("auto_delete_flags must be >= 0")
	}
	ch := &protocol.Channel{
		ID:              s.id,
		Type:            r.Type,
		Name:            r.Name,
		Description:     r.Description,
		Image:           r.Image,
		Metadata:        compactObject(r.Metadata),
		Tags:            append([]string{}, r.Tags...),
		Public:          defaultPublic(r.Type),
		Distinct:        r.Distinct,
		LastSegment:     r.LastSegment,
		MutedUntil:      r.MutedUntil,
		SlowModeMS:      r.SlowModeMS,
		AutoDeleteFlags: r.AutoDeleteFlags,
		AttachedTo:      r.AttachedTo,
		TypingEvents:    r.TypingEvents,
		CreatedBy:       r.CreatedBy,
		CreatedAt:       r.CreatedAt,
		UpdatedAt:       r.UpdatedAt,
		LastActivity:    r.LastActivity,
		Deleted:         r.Deleted,
	}
	if r.Public != nil {
		ch.Public = *r.Public
	}
	if rl := r.RateLimit; rl != nil && rl.Count > 0 {
		ch.RateLimit = rl
	}
	if ch.CreatedAt.IsZero() {
		ch.CreatedAt = protocol.At(now)
	}
	if ch.UpdatedAt.IsZero() {
		ch.UpdatedAt = ch.CreatedAt
	}
	return ch, nil
}

// importedMember checks a member record and returns the member record it
// makes.
func (s *State) importedMember(r *protocol.MemberRecord) (*memberRecord, *protocol.Error) {
	l := s.cfg.Limits
	if err := checkID("user", r.User, l.MaxIDLen); err != nil {
		return nil, err
	}
	if r.Channel != s.id {
		return nil, badRequest("the member record is of channel %q, not %q", r.Channel, s.id)
	}
	m := &memberRecord{Member: protocol.Member{
		User:                 r.User,
		Channel:              s.id,
		Membership:           r.Membership,
		MutedUntil:           r.MutedUntil,
		MuteReason:           r.MuteReason,
		BannedUntil:          r.BannedUntil,
		BanReason:            r.BanReason,
		ReadSegment:          r.ReadSegment,
		LastMentionedSegment: r.LastMentionedSegment,
		CreatedAt:            r.CreatedAt,
		LastActivity:         r.LastActivity,
	}}
	switch r.Membership {
	case "":
		m.Membership = protocol.MembershipMember
	case protocol.MembershipMember, protocol.MembershipViewer, protocol.MembershipInvited, protocol.MembershipBanned, protocol.MembershipNone:
	default:
		return nil, badRequest("membership must be one of member, viewer, invited, banned, none")
	}
	for _, role := range r.Roles {
		if !slices.Contains(roleOrder, role) {
			return nil, badRequest("unknown role %q: roles are owner, moderator, member", role)
		}
	}
	if r.Roles != nil {
		m.Roles = []string{}
		for _, role := range roleOrder {
			if slices.Contains(r.Roles, role) {
				m.Roles = append(m.Roles, role)
			}
		}
	}
	if m.Membership == protocol.MembershipMember && len(m.Roles) == 0 {
		m.Roles = []string{protocol.RoleMember}
	}
	if err := checkText("mute_reason", r.MuteReason, l.MaxNameLen); err != nil {
		return nil, err
	}
	if err := checkText("ban_reason", r.BanReason, l.MaxNameLen); err != nil {
		return nil, err
	}
	if m.Membership == protocol.MembershipBanned && m.BannedUntil.IsZero() {
		m.BannedUntil = protocol.Permanent
	}
	return m, nil
}

// importedMessage checks a message record and returns the message it
// makes and who reacted to it (name → sorted user ids).
func (s *State) importedMessage(r *protocol.MessageRecord) (*protocol.Message, map[string][]string, *protocol.Error) {
	l := s.cfg.Limits
	if err := checkID("id", r.ID, l.MaxIDLen); err != nil {
		return nil, nil, err
	}
	switch {
	case r.Channel != s.id:
		return nil, nil, badRequest("the message is of channel %q, not %q", r.Channel, s.id)
	case r.Segment == 0:
		return nil, nil, badRequest("segment must be 1 or more")
	case r.CreatedAt.IsZero():
		return nil, nil, badRequest("created_at is required")
	case r.ParentID == r.ID:
		return nil, nil, badRequest("a message cannot reply to itself")
	}
	typ := r.Type
	if typ == "" {
		typ = protocol.MessageText
	}
	if !protocol.ValidMessageType(typ) && typ != protocol.MessageSystem {
		return nil, nil, badRequest("type must be one of text, image, video, file, audio, custom, json, system")
	}
	if r.User != "" || typ != protocol.MessageSystem {
		if err := checkID("user", r.User, l.MaxIDLen); err != nil {
			return nil, nil, err
		}
	}
	if r.System != nil && typ != protocol.MessageSystem {
		return nil, nil, badRequest("system is for messages of type system")
	}
	if err := checkText("text", r.Text, l.MaxTextLen); err != nil {
		return nil, nil, err
	}
	if err := checkObject("data", r.Data, l.MaxDataBytes); err != nil {
		return nil, nil, err
	}
	if err := checkObject("metadata", r.Metadata, l.MaxDataBytes); err != nil {
		return nil, nil, err
	}
	if err := checkTags(r.Tags, l); err != nil {
		return nil, nil, err
	}
	if r.ParentID != "" {
		if err := checkID("parent_id", r.ParentID, l.MaxIDLen); err != nil {
			return nil, nil, err
		}
	}
	if r.ClientID != "" {
		if err := checkID("client_id", r.ClientID, l.MaxIDLen); err != nil {
			return nil, nil, err
		}
	}
	if r.ReplyCount != nil && *r.ReplyCount < 0 {
		return nil, nil, badRequest("reply_count must be >= 0")
	}
	if len(r.Mentions) > l.MaxMentions {
		return nil, nil, protocol.Errorf(protocol.CodeTooLarge, "%d mentions, the limit is %d", len(r.Mentions), l.MaxMentions)
	}
	for _, u := range r.Mentions {
		if err := checkID("mentions", u, l.MaxIDLen); err != nil {
			return nil, nil, err
		}
	}
	if len(r.Attachments) > l.MaxAttachments {
		return nil, nil, protocol.Errorf(protocol.CodeTooLarge, "%d attachments, the limit is %d", len(r.Attachments), l.MaxAttachments)
	}
	for _, f := range r.Attachments {
		if err := checkID("attachments.id", f.ID, l.MaxIDLen); err != nil {
			return nil, nil, err
		}
		for _, t := range []struct{ name, v string }{{"attachments.url", f.URL}, {"attachments.type", f.Type},
			{"attachments.name", f.Name}, {"attachments.mime", f.MIME}} {
			if err := checkText(t.name, t.v, l.MaxTextLen); err != nil {
				return nil, nil, err
			}
		}
		if f.Size < 0 {
			return nil, nil, badRequest("attachments.size must be >= 0")
		}
	}
	if r.System != nil {
		for _, t := range []struct{ name, v string }{{"system.kind", r.System.Kind}, {"system.user", r.System.User},
			{"system.actor", r.System.Actor}, {"system.reason", r.System.Reason}} {
			if err := checkText(t.name, t.v, l.MaxNameLen); err != nil {
				return nil, nil, err
			}
		}
	}
	m := &protocol.Message{
		ID:          r.ID,
		Channel:     s.id,
		Segment:     r.Segment,
		User:        r.User,
		Type:        typ,
		Text:        r.Text,
		Data:        compactObject(r.Data),
		Metadata:    compactObject(r.Metadata),
		Tags:        r.Tags,
		ParentID:    r.ParentID,
		Mentions:    r.Mentions,
		Attachments: r.Attachments,
		ClientID:    r.ClientID,
		CreatedAt:   r.CreatedAt,
		EditedAt:    r.EditedAt,
		Deleted:     r.Deleted,
		System:      r.System,
	}
	if r.ReplyCount != nil {
		m.ReplyCount = *r.ReplyCount
	}
	if m.Deleted {
		// A deleted message keeps no content here, as when it is deleted
		// live (softDelete).
		m.Text, m.Data, m.Metadata, m.Attachments, m.Mentions = "", nil, nil, nil, nil
		return m, nil, nil
	}
	reacted, perr := s.importedReactions(r, m)
	if perr != nil {
		return nil, nil, perr
	}
	return m, reacted, nil
}

// importedReactions checks a message's reactions and who reacted, sets
// m's counts and returns the users by reaction, sorted.
func (s *State) importedReactions(r *protocol.MessageRecord, m *protocol.Message) (map[string][]string, *protocol.Error) {
	counts := map[string]int64{}
	for name, n := range r.Reactions {
		if err := s.checkReactionName(name); err != nil {
			return nil, err
		}
		if n < 1 {
			return nil, badRequest("reaction %q has a count of %d: counts are 1 or more", name, n)
		}
		counts[name] = n
	}
	var reacted map[string][]string
	for name, users := range r.Reacted {
		if err := s.checkReactionName(name); err != nil {
			return nil, err
		}
		us := slices.Clone(users)
		for _, u := range us {
			if err := checkID("reacted."+name, u, s.cfg.Limits.MaxIDLen); err != nil {
				return nil, err
			}
		}
		slices.Sort(us)
		us = slices.Compact(us)
		if len(us) == 0 {
			continue
		}
		n, ok := r.Reactions[name]
		switch {
		case !ok:
			counts[name] = int64(len(us))
		case int64(len(us)) > n:
			return nil, badRequest("reacted lists %d users for %q, more than its count of %d", len(us), name, n)
		}
		if reacted == nil {
			reacted = map[string][]string{}
		}
		reacted[name] = us
	}
	if len(counts) > s.cfg.Limits.MaxReactionKinds {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "%d kinds of reaction, the limit is %d", len(counts), s.cfg.Limits.MaxReactionKinds)
	}
	if len(counts) > 0 {
		m.Reactions = counts
	}
	return reacted, nil
}
