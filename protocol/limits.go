package protocol

// Limits are the bounds a server enforces, sent to clients in the connect
// result so they can check input before sending it.
type Limits struct {
	// MaxFrameBytes is the largest WebSocket message a client may send.
	// Larger messages close the connection (status 1009).
	MaxFrameBytes int `json:"max_frame_bytes"`
	// MaxTextLen is the largest message text, in bytes of UTF-8.
	MaxTextLen int `json:"max_text_len"`
	// MaxDataBytes bounds a message's encoded data and metadata objects.
	MaxDataBytes int `json:"max_data_bytes"`
	// MaxTags bounds tags per message or channel.
	MaxTags int `json:"max_tags"`
	// MaxIDLen bounds channel ids, user ids and client ids.
	MaxIDLen int `json:"max_id_len"`
	// MaxNameLen bounds channel and user names.
	MaxNameLen int `json:"max_name_len"`
	// MaxHistoryLimit is the largest messages.history page.
	MaxHistoryLimit int `json:"max_history_limit"`
	// DefaultHistoryLimit is the page size when none is asked for.
	DefaultHistoryLimit int `json:"default_history_limit"`
	// MaxInflight is how many requests a session may have outstanding;
	// the server stops reading from a session that has more.
	MaxInflight int `json:"max_inflight"`
	// MaxEventsPerReplay is how many missed events one join or watch reply
	// carries before it sets events_has_more.
	MaxEventsPerReplay int `json:"max_events_per_replay"`
	// MaxMentions bounds the user ids one message mentions.
	MaxMentions int `json:"max_mentions"`
	// MaxAttachments bounds the files one message carries.
	MaxAttachments int `json:"max_attachments"`
	// MaxReactionNameLen bounds a reaction's name, in bytes of UTF-8.
	MaxReactionNameLen int `json:"max_reaction_name_len"`
	// MaxReactionKinds bounds the distinct reaction names on one message.
	MaxReactionKinds int `json:"max_reaction_kinds"`
	// MaxFileBytes is the largest file POST /v1/files accepts.
	MaxFileBytes int64 `json:"max_file_bytes"`
	// MaxPresenceWatch bounds the users one session watches the presence of.
	MaxPresenceWatch int `json:"max_presence_watch"`
}

// DefaultLimits are the limits a node uses unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{
		MaxFrameBytes:       64 << 10,
		MaxTextLen:          4000,
		MaxDataBytes:        8 << 10,
		MaxTags:             16,
		MaxIDLen:            128,
		MaxNameLen:          200,
		MaxHistoryLimit:     100,
		DefaultHistoryLimit: 25,
		MaxInflight:         64,
		MaxEventsPerReplay:  500,
		MaxMentions:         50,
		MaxAttachments:      10,
		MaxReactionNameLen:  64,
		MaxReactionKinds:    32,
		MaxFileBytes:        25 << 20,
		MaxPresenceWatch:    1000,
	}
}
