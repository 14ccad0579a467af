package protocol

import "time"

// MembershipNone is the membership of a record that exists only to hold a
// restriction (a mute) of a user who is not a member: a live viewer, or a
// member who left or was kicked while muted. It keeps the restriction in
// force when the user comes back.
const MembershipNone = "none"

// Permanent is the muted_until / banned_until of a restriction without an
// end (duration_min 0), so that "until > now" holds for it like for a timed
// one.
var Permanent = Time{time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)}

// System message kinds (the kind of a message's system object).
const (
	SystemMemberJoined   = "member_joined"
	SystemMemberLeft     = "member_left"
	SystemMemberAdded    = "member_added"
	SystemMemberRemoved  = "member_removed"
	SystemMemberKicked   = "member_kicked"
	SystemMemberBanned   = "member_banned"
	SystemChannelMuted   = "channel_muted"
	SystemChannelUnmuted = "channel_unmuted"
)

// MaxDurationMin bounds duration_min of mutes and bans (about ten years);
// longer ones are permanent (0).
const MaxDurationMin = 10 * 365 * 24 * 60

// MembersListArgs are the args of members.list.
type MembersListArgs struct {
	Channel string `json:"channel"`
	Cursor  string `json:"cursor,omitempty"`
	Limit   int    `json:"limit,omitempty"`
}

// MembersListResult is the result of members.list.
type MembersListResult struct {
	Members []*Member `json:"members"`
	Cursor  string    `json:"cursor,omitempty"`
}

// MembersArgs are the args of members.add, members.remove and
// members.invite.
type MembersArgs struct {
	Channel string   `json:"channel"`
	Users   []string `json:"users"`
}

// MembersResult is the result of members.add, members.remove and
// members.invite: the member records as they are after the op (a removed
// member's record is left out).
type MembersResult struct {
	Members []*Member `json:"members"`
}

// ModerateArgs are the args of member.mute and member.ban.
type ModerateArgs struct {
	Channel     string `json:"channel"`
	User        string `json:"user"`
	DurationMin *int64 `json:"duration_min,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// KickArgs are the args of member.kick.
type KickArgs struct {
	Channel string `json:"channel"`
	User    string `json:"user"`
	Reason  string `json:"reason,omitempty"`
}

// MemberRef names a member of a channel: the args of member.unmute and
// member.unban.
type MemberRef struct {
	Channel string `json:"channel"`
	User    string `json:"user"`
}

// MemberResult is {member}.
type MemberResult struct {
	Member *Member `json:"member"`
}

// RolesArgs are the args of member.roles.
type RolesArgs struct {
	Channel string   `json:"channel"`
	User    string   `json:"user"`
	Roles   []string `json:"roles"`
}

// ChannelMuteArgs are the args of channel.mute.
type ChannelMuteArgs struct {
	Channel     string `json:"channel"`
	DurationMin *int64 `json:"duration_min,omitempty"`
}

// FlagArgs are the args of message.flag.
type FlagArgs struct {
	Channel   string `json:"channel"`
	MessageID string `json:"message_id"`
	Reason    string `json:"reason,omitempty"`
}

// ChannelsQueryArgs are the args of channels.query.
type ChannelsQueryArgs struct {
	Tags   []string `json:"tags,omitempty"`
	Type   string   `json:"type,omitempty"`
	Cursor string   `json:"cursor,omitempty"`
	Limit  int      `json:"limit,omitempty"`
}

// ChannelsQueryResult is the result of channels.query.
type ChannelsQueryResult struct {
	Channels []*Channel `json:"channels"`
	Cursor   string     `json:"cursor,omitempty"`
}
