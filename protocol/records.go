package protocol

import (
	"encoding/json"
	"reflect"
)

// Export and import (SERVER-API.md "Export and import"): NDJSON, one record
// a line, each an object with a kind. An export writes the records exactly
// as the server stores them (derived fields included, for readers); an
// import takes the same fields, ignores the derived ones, and refuses any
// other (a misspelt field is an error, not a silent loss).

// Kinds of record.
const (
	KindUser    = "user"
	KindChannel = "channel"
	KindMember  = "member"
	KindMessage = "message"
)

// ContentTypeNDJSON is the media type of an export and of an import body.
const ContentTypeNDJSON = "application/x-ndjson"

// MaxRecordBytes bounds one line of an import (its newline excluded): a
// message at the default limits is at most about 252 KB, and what one
// record changes must fit one entry of the channel's log with room to
// spare.
const MaxRecordBytes = 512 << 10

// UserRecord is a user: the profile, without presence.
type UserRecord struct {
	Kind        string          `json:"kind"`
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Image       string          `json:"image"`
	Metadata    json.RawMessage `json:"metadata"`
	CreatedAt   Time            `json:"created_at,omitzero"`
	UpdatedAt   Time            `json:"updated_at,omitzero"`

	// Derived when read: accepted, ignored.
	Status   json.RawMessage `json:"status,omitempty"`
	LastSeen json.RawMessage `json:"last_seen,omitempty"`
	Admin    json.RawMessage `json:"admin,omitempty"`
}

// ChannelRecord is a channel: the channel object as stored.
type ChannelRecord struct {
	Kind        string          `json:"kind"`
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Image       string          `json:"image"`
	Metadata    json.RawMessage `json:"metadata"`
	Tags        []string        `json:"tags"`
	// Public defaults by type (private and conversation channels are not).
	Public   *bool `json:"public"`
	Distinct bool  `json:"distinct"`
	// LastSegment is a floor for the channel's segment counter, which
	// continues after the highest imported segment in any case.
	LastSegment     uint64      `json:"last_segment"`
	MutedUntil      Time        `json:"muted_until"`
	RateLimit       *RateLimit  `json:"rate_limit"`
	SlowModeMS      int64       `json:"slow_mode_ms"`
	AutoDeleteFlags int         `json:"auto_delete_flags"`
	AttachedTo      *AttachedTo `json:"attached_to"`
	TypingEvents    *bool       `json:"typing_events,omitempty"`
	CreatedBy       string      `json:"created_by,omitempty"`
	CreatedAt       Time        `json:"created_at,omitzero"`
	UpdatedAt       Time        `json:"updated_at,omitzero"`
	LastActivity    Time        `json:"last_activity,omitzero"`
	Deleted         bool        `json:"deleted"`

	// Derived when read: accepted, ignored.
	MemberCount  json.RawMessage `json:"member_count,omitempty"`
	MessageCount json.RawMessage `json:"message_count,omitempty"`
	LastMessage  json.RawMessage `json:"last_message,omitempty"`
	Member       json.RawMessage `json:"member,omitempty"`
	UnreadCount  json.RawMessage `json:"unread_count,omitempty"`
	Mentioned    json.RawMessage `json:"mentioned,omitempty"`
}

// MemberRecord is one user's standing in one channel (one record per
// channel and user): membership, roles, read cursor, mute and ban.
type MemberRecord struct {
	Kind                 string   `json:"kind"`
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
	CreatedAt            Time     `json:"created_at,omitzero"`
	LastActivity         Time     `json:"last_activity,omitzero"`

	// Derived when read: accepted, ignored.
	UnreadCount json.RawMessage `json:"unread_count,omitempty"`
}

// MessageRecord is one message with who reacted to it.
type MessageRecord struct {
	Kind     string          `json:"kind"`
	ID       string          `json:"id"`
	Channel  string          `json:"channel"`
	Segment  uint64          `json:"segment"`
	User     string          `json:"user"`
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	Data     json.RawMessage `json:"data"`
	Metadata json.RawMessage `json:"metadata"`
	Tags     []string        `json:"tags"`
	ParentID string          `json:"parent_id"`
	// ReplyCount, when absent, is counted from the replies imported.
	ReplyCount  *int64           `json:"reply_count"`
	Mentions    []string         `json:"mentions"`
	Attachments []File           `json:"attachments"`
	Reactions   map[string]int64 `json:"reactions"`
	// Reacted names who reacted, by reaction (user ids, sorted). A name
	// in reactions that has no list here keeps its count without knowing
	// who; a list without a count counts its users.
	Reacted   map[string][]string `json:"reacted"`
	ClientID  string              `json:"client_id"`
	CreatedAt Time                `json:"created_at"`
	EditedAt  Time                `json:"edited_at"`
	Deleted   bool                `json:"deleted"`
	System    *SystemInfo         `json:"system"`

	// The reader's own, derived when read: accepted, ignored.
	MyReactions json.RawMessage `json:"my_reactions,omitempty"`
	Favorite    json.RawMessage `json:"favorite,omitempty"`
	FlagCount   json.RawMessage `json:"flag_count,omitempty"`
}

// ImportResult answers POST /v1/import: how many records were applied by
// kind, how many were already there (skipped), and every line refused.
type ImportResult struct {
	Users    int64         `json:"users"`
	Channels int64         `json:"channels"`
	Members  int64         `json:"members"`
	Messages int64         `json:"messages"`
	Skipped  int64         `json:"skipped"`
	Errors   []ImportError `json:"errors"`
}

// ImportError is one line an import refused. Line counts every line of
// the body from 1; 0 is an error of the import as a whole.
type ImportError struct {
	Line    int64  `json:"line"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// recordTypes are the record types by kind.
var recordTypes = map[string]reflect.Type{
	KindUser:    reflect.TypeFor[UserRecord](),
	KindChannel: reflect.TypeFor[ChannelRecord](),
	KindMember:  reflect.TypeFor[MemberRecord](),
	KindMessage: reflect.TypeFor[MessageRecord](),
}

var recordShapes = func() map[string]*shape {
	m := make(map[string]*shape, len(recordTypes))
	for k, t := range recordTypes {
		m[k] = shapeOf(t)
	}
	return m
}()

// RecordTypes returns the Go types of the records, for documents.
func RecordTypes() []reflect.Type {
	return []reflect.Type{recordTypes[KindUser], recordTypes[KindChannel], recordTypes[KindMember], recordTypes[KindMessage]}
}

// RecordHead is what the first keys of a line say: its kind, and the
// channel it belongs to (a channel record's own id).
type RecordHead struct {
	Kind, Channel string
}

// HeadOf reads a record's kind and channel without decoding the rest. It
// tolerates a line cut short (an oversize line's first bytes): it reports
// what the keys it could read say.
func HeadOf(line []byte) RecordHead {
	var h RecordHead
	var id string
	_ = scanObject(line, func(key, val []byte) *Error {
		var s string
		switch string(key) {
		case "kind":
			_ = json.Unmarshal(val, &s)
			h.Kind = s
		case "channel":
			_ = json.Unmarshal(val, &s)
			h.Channel = s
		case "id":
			_ = json.Unmarshal(val, &s)
			id = s
		}
		return nil
	})
	if h.Kind == KindChannel {
		h.Channel = id
	}
	return h
}

// DecodeRecord decodes one line strictly: an object with a known kind,
// only that kind's fields, each of its type. It returns a *UserRecord,
// *ChannelRecord, *MemberRecord or *MessageRecord.
func DecodeRecord(line []byte) (any, *Error) {
	var kind string
	var sawKind bool
	perr := scanObject(line, func(key, val []byte) *Error {
		if string(key) == "kind" {
			sawKind = true
			if json.Unmarshal(val, &kind) != nil {
				return Errorf(CodeBadRequest, "kind must be a string")
			}
		}
		return nil
	})
	if perr != nil {
		if perr.Message == notObject().Message {
			return nil, Errorf(CodeBadRequest, "a record must be one JSON object on one line")
		}
		return nil, perr
	}
	if !sawKind {
		return nil, Errorf(CodeBadRequest, "a record needs a kind: user, channel, member or message")
	}
	t, ok := recordTypes[kind]
	if !ok {
		return nil, Errorf(CodeBadRequest, "unknown kind %q: user, channel, member or message", kind)
	}
	v, perr := decodeStrict(kind+" record", recordShapes[kind], t, line)
	if perr != nil {
		return nil, perr
	}
	return v, nil
}
