package protocol

import "encoding/json"

// Op names. The set is fixed by the contract; new ops are added, never renamed.
const (
	OpConnect         = "connect"
	OpLogout          = "logout"
	OpMe              = "me"
	OpUserUpdate      = "user.update"
	OpUsersGet        = "users.get"
	OpPresenceWatch   = "presence.watch"
	OpPresenceUnwatch = "presence.unwatch"
	OpPing            = "ping"

	OpChannelCreate  = "channel.create"
	OpChannelUpdate  = "channel.update"
	OpChannelDelete  = "channel.delete"
	OpChannelGet     = "channel.get"
	OpChannelsList   = "channels.list"
	OpChannelsQuery  = "channels.query"
	OpChannelJoin    = "channel.join"
	OpChannelLeave   = "channel.leave"
	OpChannelWatch   = "channel.watch"
	OpChannelUnwatch = "channel.unwatch"
	OpMembersList    = "members.list"
	OpMembersAdd     = "members.add"
	OpMembersRemove  = "members.remove"
	OpMembersInvite  = "members.invite"

	OpMessageSend     = "message.send"
	OpMessageEdit     = "message.edit"
	OpMessageDelete   = "message.delete"
	OpMessagesHistory = "messages.history"
	OpReactionAdd     = "reaction.add"
	OpReactionRemove  = "reaction.remove"
	OpMessageFlag     = "message.flag"
	OpMessageFavorite = "message.favorite"
	OpTypingStart     = "typing.start"
	OpTypingStop      = "typing.stop"
	OpReadMark        = "read.mark"

	OpMemberMute    = "member.mute"
	OpMemberUnmute  = "member.unmute"
	OpMemberBan     = "member.ban"
	OpMemberUnban   = "member.unban"
	OpMemberKick    = "member.kick"
	OpMemberRoles   = "member.roles"
	OpChannelMute   = "channel.mute"
	OpChannelUnmute = "channel.unmute"
)

// Event names.
const (
	EventMessageNew      = "message.new"
	EventMessageUpdated  = "message.updated"
	EventMessageDeleted  = "message.deleted"
	EventReactionUpdated = "reaction.updated"
	EventTyping          = "typing"
	EventRead            = "read"
	EventMemberJoined    = "member.joined"
	EventMemberLeft      = "member.left"
	EventMemberUpdated   = "member.updated"
	EventMemberKicked    = "member.kicked"
	EventChannelUpdated  = "channel.updated"
	EventChannelDeleted  = "channel.deleted"
	EventPresence        = "presence"
	// EventChannelUnwatched (an addition to the contract; ephemeral, no
	// seq) tells a session the server ended its watch without any other
	// event saying so: after the channel moved, its new activation would
	// not take the session back. Data: UnwatchedData.
	EventChannelUnwatched = "channel.unwatched"
)

// UnwatchedData is the data of channel.unwatched: why the watch ended, as
// the error a channel.watch would get now.
type UnwatchedData struct {
	Error *Error `json:"error"`
}

// ConnectArgs are the args of connect.
type ConnectArgs struct {
	Token  string `json:"token,omitempty"`
	UserID string `json:"user_id,omitempty"`
	Name   string `json:"name,omitempty"`
}

// ConnectResult is the result of connect.
type ConnectResult struct {
	SessionID  string `json:"session_id"`
	User       User   `json:"user"`
	ServerTime Time   `json:"server_time"`
	Limits     Limits `json:"limits"`
}

// ChannelRef names a channel; every channel op's args embed it.
type ChannelRef struct {
	Channel string `json:"channel"`
}

// ChannelCreateArgs are the args of channel.create.
type ChannelCreateArgs struct {
	ID          string          `json:"id,omitempty"`
	Type        string          `json:"type"`
	Name        string          `json:"name,omitempty"`
	Description string          `json:"description,omitempty"`
	Image       string          `json:"image,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Tags        []string        `json:"tags,omitempty"`
	Public      *bool           `json:"public,omitempty"`
	Members     []string        `json:"members,omitempty"`
	Distinct    bool            `json:"distinct,omitempty"`
	AttachedTo  *AttachedTo     `json:"attached_to,omitempty"`
	// TypingEvents turns typing events on or off (default: off in live
	// channels, on in the others).
	TypingEvents *bool `json:"typing_events,omitempty"`
}

// ChannelUpdateArgs are the args of channel.update: only fields present change.
type ChannelUpdateArgs struct {
	Channel         string          `json:"channel"`
	Name            *string         `json:"name,omitempty"`
	Description     *string         `json:"description,omitempty"`
	Image           *string         `json:"image,omitempty"`
	Metadata        json.RawMessage `json:"metadata,omitempty"`
	Tags            *[]string       `json:"tags,omitempty"`
	Public          *bool           `json:"public,omitempty"`
	RateLimit       *RateLimit      `json:"rate_limit,omitempty"`
	SlowModeMS      *int64          `json:"slow_mode_ms,omitempty"`
	AutoDeleteFlags *int            `json:"auto_delete_flags,omitempty"`
	AttachedTo      *AttachedTo     `json:"attached_to,omitempty"`
	TypingEvents    *bool           `json:"typing_events,omitempty"`
}

// ChannelResult is {channel, member?}.
type ChannelResult struct {
	Channel *Channel `json:"channel"`
	Member  *Member  `json:"member,omitempty"`
}

// ChannelCreateResult is the result of channel.create: the creating
// session watches the channel, so it learns the seq its events continue
// from. Created says whether this call made the channel (false: a
// distinct conversation that existed).
type ChannelCreateResult struct {
	Channel *Channel `json:"channel"`
	Member  *Member  `json:"member,omitempty"`
	Seq     uint64   `json:"seq"`
	Created bool     `json:"created"`
}

// JoinArgs are the args of channel.join: a channel and/or a join token.
type JoinArgs struct {
	Channel  string  `json:"channel,omitempty"`
	Token    string  `json:"token,omitempty"`
	SinceSeq *uint64 `json:"since_seq,omitempty"`
}

// WatchArgs are the args of channel.watch (no token: a token is for
// joining).
type WatchArgs struct {
	Channel  string  `json:"channel"`
	SinceSeq *uint64 `json:"since_seq,omitempty"`
}

// WatchResult is the result of channel.join and channel.watch.
type WatchResult struct {
	Channel  *Channel   `json:"channel"`
	Member   *Member    `json:"member"`
	Messages []*Message `json:"messages"`
	// HasMore: without since_seq, older messages exist before the page;
	// with since_seq, more missed events exist than this reply carries
	// (ask again from the last event's seq). MessagesHasMore and
	// EventsHasMore say each one separately.
	HasMore         bool   `json:"has_more"`
	MessagesHasMore bool   `json:"messages_has_more"`
	Seq             uint64 `json:"seq"`
	// Events (with since_seq only, then always an array) are the missed
	// persisted events, in seq order.
	Events        []json.RawMessage `json:"events,omitzero"`
	EventsHasMore bool              `json:"events_has_more,omitempty"`
	Reset         bool              `json:"reset,omitempty"`
}

// ChannelsListArgs are the args of channels.list.
type ChannelsListArgs struct {
	Cursor string `json:"cursor,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// ChannelsListResult is the result of channels.list.
type ChannelsListResult struct {
	Channels []*Channel `json:"channels"`
	Cursor   string     `json:"cursor,omitempty"`
	// Unavailable (an addition to the contract) names the caller's
	// channels that could not answer just now (their node is down or
	// they are moving): the list is partial without them. Only on the
	// first page.
	Unavailable []string `json:"unavailable,omitempty"`
}

// SendArgs are the args of message.send.
type SendArgs struct {
	Channel     string          `json:"channel"`
	ClientID    string          `json:"client_id"`
	Text        string          `json:"text,omitempty"`
	Type        string          `json:"type,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Tags        []string        `json:"tags,omitempty"`
	ParentID    string          `json:"parent_id,omitempty"`
	Mentions    []string        `json:"mentions,omitempty"`
	Attachments []string        `json:"attachments,omitempty"`
}

// EditArgs are the args of message.edit.
type EditArgs struct {
	Channel   string          `json:"channel"`
	MessageID string          `json:"message_id"`
	Text      *string         `json:"text,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
}

// MessageRef names one message.
type MessageRef struct {
	Channel   string `json:"channel"`
	MessageID string `json:"message_id"`
}

// MessageResult is {message}.
type MessageResult struct {
	Message *Message `json:"message"`
	// Duplicate (message.send only) says the client_id was used before:
	// the message is the original, and nothing was sent.
	Duplicate bool `json:"duplicate,omitempty"`
}

// HistoryArgs are the args of messages.history.
type HistoryArgs struct {
	Channel  string  `json:"channel"`
	Before   *uint64 `json:"before,omitempty"`
	After    *uint64 `json:"after,omitempty"`
	Limit    *int    `json:"limit,omitempty"`
	ParentID string  `json:"parent_id,omitempty"`
	TopLevel bool    `json:"top_level,omitempty"`
	Search   string  `json:"search,omitempty"`
}

// HistoryResult is the result of messages.history.
type HistoryResult struct {
	Messages []*Message `json:"messages"`
	HasMore  bool       `json:"has_more"`
	// With has_more, where the next page starts: pass NextBefore as before
	// (paging back) or NextAfter as after (paging forward). A filtered
	// page (search, a thread) may stop early at its scan budget, so the
	// next bound can lie beyond the last message returned.
	NextBefore *uint64 `json:"next_before,omitempty"`
	NextAfter  *uint64 `json:"next_after,omitempty"`
}
