package protocol

// Notices are events sent to all of a user's open sessions, without
// watching anything, when the user's channels change: the frame has no
// seq and no top-level channel. They are best effort: a session that is
// offline gets none, and channels.list is the truth.
const (
	// EventChannelAdded: the user became a member (or an invitee) of a
	// channel. Data: ChannelAddedData.
	EventChannelAdded = "channel.added"
	// EventChannelRemoved: the user is no longer in a channel. Data:
	// ChannelRemovedData.
	EventChannelRemoved = "channel.removed"
)

// Reasons of channel.added.
const (
	ReasonCreated = "created" // a channel made with the user in it, or a distinct conversation (re)opened
	ReasonAdded   = "added"   // members.add
	ReasonInvited = "invited" // members.invite
	ReasonJoined  = "joined"  // channel.join (by token or not), on any session
)

// ReasonImported is the reason of the channel.updated event an import
// ends with: the channel's history or members changed wholesale, and
// watchers reload it. (An imported membership is announced to its user
// as channel.added with reason added.)
const ReasonImported = "imported"

// Reasons of channel.removed.
const (
	ReasonLeft    = "left"    // channel.leave
	ReasonRemoved = "removed" // members.remove
	ReasonKicked  = "kicked"  // member.kick
	ReasonBanned  = "banned"  // member.ban
	ReasonDeleted = "deleted" // channel.delete
)

// ChannelAddedData is the data of channel.added.
type ChannelAddedData struct {
	Channel *Channel `json:"channel"`
	Reason  string   `json:"reason"`
}

// ChannelRemovedData is the data of channel.removed.
type ChannelRemovedData struct {
	Channel string `json:"channel"`
	Reason  string `json:"reason"`
}
