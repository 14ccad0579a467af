package protocol

import "strconv"

// MarshalJSON writes c as AppendChannel does.
func (c Channel) MarshalJSON() ([]byte, error) {
	return AppendChannel(make([]byte, 0, 512+len(c.Metadata)), &c), nil
}

// MarshalJSON writes r as encoding/json writes it by reflection, without
// reflection for the channel and the member: every join and watch
// replies with one.
func (r WatchResult) MarshalJSON() ([]byte, error) {
	n := 768 + 400*len(r.Messages)
	if r.Channel != nil {
		n += len(r.Channel.Metadata)
	}
	for _, e := range r.Events {
		n += len(e) + 1
	}
	dst := make([]byte, 0, n)
	dst = append(dst, `{"channel":`...)
	dst = appendChannelRef(dst, r.Channel)
	dst = append(dst, `,"member":`...)
	if r.Member == nil {
		dst = append(dst, "null"...)
	} else {
		dst = AppendMember(dst, r.Member)
	}
	dst = append(dst, `,"messages":`...)
	if r.Messages == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, m := range r.Messages {
			if i > 0 {
				dst = append(dst, ',')
			}
			if m == nil {
				dst = append(dst, "null"...)
			} else {
				dst = AppendMessage(dst, m)
			}
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"has_more":`...)
	dst = strconv.AppendBool(dst, r.HasMore)
	dst = append(dst, `,"messages_has_more":`...)
	dst = strconv.AppendBool(dst, r.MessagesHasMore)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	if r.Events != nil { // omitzero: a nil slice only
		dst = append(dst, `,"events":[`...)
		for i, e := range r.Events {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendRaw(dst, e)
		}
		dst = append(dst, ']')
	}
	if r.EventsHasMore {
		dst = append(dst, `,"events_has_more":true`...)
	}
	if r.Reset {
		dst = append(dst, `,"reset":true`...)
	}
	return append(dst, '}'), nil
}

func appendChannelRef(dst []byte, c *Channel) []byte {
	if c == nil {
		return append(dst, "null"...)
	}
	return AppendChannel(dst, c)
}

// AppendChannel appends c as encoding/json writes it by reflection, byte
// for byte.
func AppendChannel(dst []byte, c *Channel) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendString(dst, c.ID)
	dst = append(dst, `,"type":`...)
	dst = AppendString(dst, c.Type)
	dst = append(dst, `,"name":`...)
	dst = AppendString(dst, c.Name)
	dst = append(dst, `,"description":`...)
	dst = AppendString(dst, c.Description)
	dst = append(dst, `,"image":`...)
	dst = AppendString(dst, c.Image)
	dst = append(dst, `,"metadata":`...)
	dst = appendRawOrNull(dst, c.Metadata)
	dst = append(dst, `,"tags":`...)
	dst = appendStringsOrNull(dst, c.Tags)
	dst = append(dst, `,"public":`...)
	dst = strconv.AppendBool(dst, c.Public)
	dst = append(dst, `,"distinct":`...)
	dst = strconv.AppendBool(dst, c.Distinct)
	dst = append(dst, `,"member_count":`...)
	dst = strconv.AppendInt(dst, c.MemberCount, 10)
	dst = append(dst, `,"message_count":`...)
	dst = strconv.AppendInt(dst, c.MessageCount, 10)
	dst = append(dst, `,"last_segment":`...)
	dst = strconv.AppendUint(dst, c.LastSegment, 10)
	dst = append(dst, `,"last_message":`...)
	if c.LastMessage == nil {
		dst = append(dst, "null"...)
	} else {
		dst = AppendMessage(dst, c.LastMessage)
	}
	dst = append(dst, `,"muted_until":`...)
	dst = appendTime(dst, c.MutedUntil)
	dst = append(dst, `,"rate_limit":`...)
	if c.RateLimit == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `{"count":`...)
		dst = strconv.AppendInt(dst, int64(c.RateLimit.Count), 10)
		dst = append(dst, `,"window_ms":`...)
		dst = strconv.AppendInt(dst, c.RateLimit.WindowMS, 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"slow_mode_ms":`...)
	dst = strconv.AppendInt(dst, c.SlowModeMS, 10)
	dst = append(dst, `,"auto_delete_flags":`...)
	dst = strconv.AppendInt(dst, int64(c.AutoDeleteFlags), 10)
	dst = append(dst, `,"attached_to":`...)
	if a := c.AttachedTo; a == nil {
		dst = append(dst, "null"...)
	} else {
		start := len(dst)
		dst = append(dst, '{')
		for _, f := range [...]struct{ key, v string }{{`"stream_id":`, a.StreamID}, {`"room_id":`, a.RoomID}, {`"post_id":`, a.PostID}} {
			if f.v == "" {
				continue
			}
			if len(dst) > start+1 {
				dst = append(dst, ',')
			}
			dst = AppendString(append(dst, f.key...), f.v)
		}
		dst = append(dst, '}')
	}
	if c.TypingEvents != nil {
		dst = append(dst, `,"typing_events":`...)
		dst = strconv.AppendBool(dst, *c.TypingEvents)
	}
	dst = appendStringField(dst, `,"created_by":`, c.CreatedBy)
	dst = appendTimeField(dst, `,"created_at":`, c.CreatedAt)
	dst = appendTimeField(dst, `,"updated_at":`, c.UpdatedAt)
	dst = appendTimeField(dst, `,"last_activity":`, c.LastActivity)
	dst = append(dst, `,"deleted":`...)
	dst = strconv.AppendBool(dst, c.Deleted)
	if c.Member != nil {
		dst = append(dst, `,"member":`...)
		dst = AppendMember(dst, c.Member)
	}
	if c.UnreadCount != nil {
		dst = append(dst, `,"unread_count":`...)
		dst = strconv.AppendInt(dst, *c.UnreadCount, 10)
	}
	if c.Mentioned != nil {
		dst = append(dst, `,"mentioned":`...)
		dst = strconv.AppendBool(dst, *c.Mentioned)
	}
	return append(dst, '}')
}

// AppendMember appends m as encoding/json writes it by reflection, byte
// for byte. (Member has no MarshalJSON: records embed it.)
func AppendMember(dst []byte, m *Member) []byte {
	dst = append(dst, `{"user":`...)
	dst = AppendString(dst, m.User)
	dst = append(dst, `,"channel":`...)
	dst = AppendString(dst, m.Channel)
	dst = append(dst, `,"membership":`...)
	dst = AppendString(dst, m.Membership)
	dst = append(dst, `,"roles":`...)
	dst = appendStringsOrNull(dst, m.Roles)
	dst = append(dst, `,"muted_until":`...)
	dst = appendTime(dst, m.MutedUntil)
	dst = appendStringField(dst, `,"mute_reason":`, m.MuteReason)
	dst = append(dst, `,"banned_until":`...)
	dst = appendTime(dst, m.BannedUntil)
	dst = appendStringField(dst, `,"ban_reason":`, m.BanReason)
	dst = append(dst, `,"read_segment":`...)
	dst = strconv.AppendUint(dst, m.ReadSegment, 10)
	dst = append(dst, `,"last_mentioned_segment":`...)
	dst = strconv.AppendUint(dst, m.LastMentionedSegment, 10)
	dst = append(dst, `,"unread_count":`...)
	dst = strconv.AppendInt(dst, m.UnreadCount, 10)
	dst = appendTimeField(dst, `,"created_at":`, m.CreatedAt)
	dst = appendTimeField(dst, `,"last_activity":`, m.LastActivity)
	return append(dst, '}')
}

// appendRawOrNull appends a json.RawMessage field as encoding/json does:
// nil is null.
func appendRawOrNull(dst []byte, v []byte) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	return appendRaw(dst, v)
}

// appendStringsOrNull appends a list as encoding/json does: nil is null,
// an empty list [].
func appendStringsOrNull(dst []byte, v []string) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	return appendStrings(dst, v)
}
