package protocol

import "encoding/json"

// Channel types.
const (
	TypeStandard     = "standard"
	TypePrivate      = "private"
	TypeConversation = "conversation"
	TypeBroadcast    = "broadcast"
	TypeCommunity    = "community"
	TypeLive         = "live"
)

// ValidChannelType reports whether t is a known channel type.
func ValidChannelType(t string) bool {
	switch t {
	case TypeStandard, TypePrivate, TypeConversation, TypeBroadcast, TypeCommunity, TypeLive:
		return true
	}
	return false
}

// Member roles.
const (
	RoleOwner     = "owner"
	RoleModerator = "moderator"
	RoleMember    = "member"
)

// Membership states.
const (
	MembershipMember  = "member"
	MembershipViewer  = "viewer"
	MembershipInvited = "invited"
	MembershipBanned  = "banned"
)

// Message types.
const (
	MessageText   = "text"
	MessageImage  = "image"
	MessageVideo  = "video"
	MessageFile   = "file"
	MessageAudio  = "audio"
	MessageCustom = "custom"
	MessageJSON   = "json"
	MessageSystem = "system"
)

// ValidMessageType reports whether t may be sent by a client (system
// messages are made by the server only).
func ValidMessageType(t string) bool {
	switch t {
	case MessageText, MessageImage, MessageVideo, MessageFile, MessageAudio, MessageCustom, MessageJSON:
		return true
	}
	return false
}

// User is a user's public profile.
type User struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Image       string          `json:"image"`
	Metadata    json.RawMessage `json:"metadata"`
	Status      string          `json:"status"`
	LastSeen    Time            `json:"last_seen"`
	Admin       bool            `json:"admin,omitempty"`
	CreatedAt   Time            `json:"created_at,omitzero"`
	UpdatedAt   Time            `json:"updated_at,omitzero"`
}

// RateLimit is a channel-wide budget: at most Count messages and reaction
// changes per WindowMS milliseconds from all senders together.
type RateLimit struct {
	Count    int   `json:"count"`
	WindowMS int64 `json:"window_ms"`
}

// AttachedTo links a live channel to a stream, room or post.
type AttachedTo struct {
	StreamID string `json:"stream_id,omitempty"`
	RoomID   string `json:"room_id,omitempty"`
	PostID   string `json:"post_id,omitempty"`
}

// Channel is a channel's public record.
type Channel struct {
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Name            string          `json:"name"`
	Description     string          `json:"description"`
	Image           string          `json:"image"`
	Metadata        json.RawMessage `json:"metadata"`
	Tags            []string        `json:"tags"`
	Public          bool            `json:"public"`
	Distinct        bool            `json:"distinct"`
	MemberCount     int64           `json:"member_count"`
	MessageCount    int64           `json:"message_count"`
	LastSegment     uint64          `json:"last_segment"`
	LastMessage     *Message        `json:"last_message"`
	MutedUntil      Time            `json:"muted_until"`
	RateLimit       *RateLimit      `json:"rate_limit"`
	SlowModeMS      int64           `json:"slow_mode_ms"`
	AutoDeleteFlags int             `json:"auto_delete_flags"`
	AttachedTo      *AttachedTo     `json:"attached_to"`
	TypingEvents    *bool           `json:"typing_events,omitempty"` // unset in a stored record: the type's default
	CreatedBy       string          `json:"created_by,omitempty"`
	CreatedAt       Time            `json:"created_at,omitzero"`
	UpdatedAt       Time            `json:"updated_at,omitzero"`
	LastActivity    Time            `json:"last_activity,omitzero"`
	Deleted         bool            `json:"deleted"`

	// Per-caller fields, present in channels.list.
	Member      *Member `json:"member,omitempty"`
	UnreadCount *int64  `json:"unread_count,omitempty"`
	Mentioned   *bool   `json:"mentioned,omitempty"`
}

// Member is a user's membership record in one channel.
type Member struct {
	User                 string   `json:"user"`
	Channel              string   `json:"channel"`
	Membership           string   `json:"membership"`
	Roles                []string `json:"roles"`
	MutedUntil           Time     `json:"muted_until"`
	MuteReason           string   `json:"mute_reason,omitempty"`
	BannedUntil          Time     `json:"banned_until"`
	BanReason            string   `json:"ban_reason,omitempty"`
	ReadSegment          uint64   `json:"read_segment"`
	LastMentionedSegment uint64   `json:"last_mentioned_segment"`
	UnreadCount          int64    `json:"unread_count"`
	CreatedAt            Time     `json:"created_at,omitzero"`
	LastActivity         Time     `json:"last_activity,omitzero"`
}

// File is an uploaded attachment.
type File struct {
	ID   string `json:"id"`
	URL  string `json:"url"`
	Type string `json:"type"`
	Name string `json:"name"`
	Size int64  `json:"size"`
	MIME string `json:"mime"`
}

// SystemInfo says what a system message records.
type SystemInfo struct {
	Kind        string `json:"kind"` // member_joined, member_left, member_kicked, member_banned, channel_muted, ...
	User        string `json:"user,omitempty"`
	Actor       string `json:"actor,omitempty"`
	Reason      string `json:"reason,omitempty"`
	DurationMin int64  `json:"duration_min,omitempty"`
}

// Message is one message of a channel.
type Message struct {
	ID          string           `json:"id"`
	Channel     string           `json:"channel"`
	Segment     uint64           `json:"segment"`
	User        string           `json:"user"`
	Type        string           `json:"type"`
	Text        string           `json:"text"`
	Data        json.RawMessage  `json:"data"`
	Metadata    json.RawMessage  `json:"metadata"`
	Tags        []string         `json:"tags"`
	ParentID    string           `json:"parent_id"`
	ReplyCount  int64            `json:"reply_count"`
	Mentions    []string         `json:"mentions"`
	Attachments []File           `json:"attachments"`
	Reactions   map[string]int64 `json:"reactions"`
	// MyReactions and Favorite are the reader's own: set in replies and
	// history (always, so [] and false when none), left out of events,
	// which are encoded once for every watcher.
	MyReactions []string    `json:"my_reactions,omitzero"`
	Favorite    *bool       `json:"favorite,omitzero"`
	FlagCount   *int64      `json:"flag_count,omitempty"` // moderators only
	ClientID    string      `json:"client_id"`
	CreatedAt   Time        `json:"created_at"`
	EditedAt    Time        `json:"edited_at"`
	Deleted     bool        `json:"deleted"`
	System      *SystemInfo `json:"system"`
}

// UnmarshalJSON reads a message; a null data or metadata object is nil,
// and an absent type is text (events leave it out, see
// AppendEventMessage; they leave out channel too, which is the event's).
func (m *Message) UnmarshalJSON(b []byte) error {
	type plain Message
	if err := json.Unmarshal(b, (*plain)(m)); err != nil {
		return err
	}
	m.Data, m.Metadata = nullIsNil(m.Data), nullIsNil(m.Metadata)
	if m.Type == "" {
		m.Type = MessageText
	}
	return nil
}

// UnmarshalJSON reads a channel; a null metadata object is nil.
func (c *Channel) UnmarshalJSON(b []byte) error {
	type plain Channel
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	c.Metadata = nullIsNil(c.Metadata)
	return nil
}

// UnmarshalJSON reads a user; a null metadata object is nil.
func (u *User) UnmarshalJSON(b []byte) error {
	type plain User
	if err := json.Unmarshal(b, (*plain)(u)); err != nil {
		return err
	}
	u.Metadata = nullIsNil(u.Metadata)
	return nil
}

// nullIsNil maps a JSON null (which json.RawMessage keeps as the bytes
// "null") to nil, so "no object" has one representation.
func nullIsNil(r json.RawMessage) json.RawMessage {
	if len(r) == 4 && string(r) == "null" {
		return nil
	}
	return r
}

// MarshalJSON writes every list of m as an array, empty rather than null
// (AppendMessage).
func (m Message) MarshalJSON() ([]byte, error) {
	return AppendMessage(make([]byte, 0, 320+len(m.Text)+len(m.Data)+len(m.Metadata)), &m), nil
}
