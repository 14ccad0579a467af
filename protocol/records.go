package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
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
// only that kind's fields (nested objects too), each of its type. It
// returns a *UserRecord, *ChannelRecord, *MemberRecord or *MessageRecord.
func DecodeRecord(line []byte) (any, *Error) {
	kind, ok := LeadingString(line, "kind")
	if !ok {
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
		switch {
		case perr != nil && perr.Message == notObject().Message:
			return nil, Errorf(CodeBadRequest, "a record must be one JSON object on one line")
		case perr != nil:
			return nil, perr
		case !sawKind:
			return nil, Errorf(CodeBadRequest, "a record needs a kind: user, channel, member or message")
		}
	}
	t, ok := recordTypes[kind]
	if !ok {
		return nil, Errorf(CodeBadRequest, "unknown kind %q: user, channel, member or message", kind)
	}
	v := reflect.New(t).Interface()
	// One pass to find the value's end, one to decode it; unknown fields
	// are refused at any depth.
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			return nil, pe
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return nil, Errorf(CodeBadRequest, "unknown field %s in a %s record", f, kind)
		}
		if len(bytes.TrimSpace(line)) == 0 || bytes.TrimSpace(line)[0] != '{' {
			return nil, Errorf(CodeBadRequest, "a record must be one JSON object on one line")
		}
		return nil, Errorf(CodeBadRequest, "%s record: %s", kind, jsonProblem(err))
	}
	if len(bytes.TrimSpace(line[dec.InputOffset():])) > 0 {
		return nil, Errorf(CodeBadRequest, "a record must be one JSON object on one line")
	}
	switch r := v.(type) { // a kind given twice is the first one
	case *UserRecord:
		r.Kind = kind
	case *ChannelRecord:
		r.Kind = kind
	case *MemberRecord:
		r.Kind = kind
	case *MessageRecord:
		r.Kind = kind
	}
	return v, nil
}

// LeadingString reads the string value of an object's first key when it
// is key and holds no escapes, as the server writes its records ("kind"
// first in an export, "id" first in a stored message); ok is false
// otherwise, and the caller decodes the object.
func LeadingString(obj []byte, key string) (string, bool) {
	pre := len(key) + 5 // {"key":"
	if len(obj) < pre || obj[0] != '{' || obj[1] != '"' || string(obj[2:2+len(key)]) != key || string(obj[2+len(key):pre]) != `":"` {
		return "", false
	}
	rest := obj[pre:]
	i := bytes.IndexByte(rest, '"')
	if i < 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return "", false
	}
	return string(rest[:i]), true
}

// RecordFields are what ScanRecord reads of a member or message record:
// what an import checks across a whole file (order of segments, thread
// parents, repeated ids and memberships, users to create).
type RecordFields struct {
	Kind, Channel, ID, User, ParentID string
	Segment                           uint64
	// Reactors are the user ids of reacted (repeats and all).
	Reactors []string
}

// ScanRecord reads a record's fields without decoding it whole; it checks
// only what it reads (DecodeRecord checks the rest). The reactors are read
// only when asked for.
func ScanRecord(line []byte, reactors bool) (RecordFields, *Error) {
	var f RecordFields
	str := func(name string, val []byte, dst *string) *Error {
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' && bytes.IndexByte(val, '\\') < 0 {
			*dst = string(val[1 : len(val)-1])
			return nil
		}
		if json.Unmarshal(val, dst) != nil {
			return Errorf(CodeBadRequest, "%s must be a string", name)
		}
		return nil
	}
	perr := scanObject(line, func(key, val []byte) *Error {
		switch string(key) {
		case "kind":
			return str("kind", val, &f.Kind)
		case "channel":
			return str("channel", val, &f.Channel)
		case "id":
			return str("id", val, &f.ID)
		case "user":
			return str("user", val, &f.User)
		case "parent_id":
			return str("parent_id", val, &f.ParentID)
		case "segment":
			n, err := strconv.ParseUint(string(val), 10, 64)
			if err != nil {
				return Errorf(CodeBadRequest, "segment must be a positive integer")
			}
			f.Segment = n
		case "reacted":
			if !reactors {
				return nil
			}
			bad := Errorf(CodeBadRequest, "reacted must be an object of lists of user ids")
			return scanObject(val, func(_, list []byte) *Error {
				return scanStrings(list, bad, func(u string) { f.Reactors = append(f.Reactors, u) })
			})
		}
		return nil
	})
	if perr != nil {
		if perr.Message == notObject().Message {
			return f, Errorf(CodeBadRequest, "a record must be one JSON object on one line")
		}
		return f, perr
	}
	if f.Kind == "" {
		return f, Errorf(CodeBadRequest, "a record needs a kind: user, channel, member or message")
	}
	if _, ok := recordTypes[f.Kind]; !ok {
		return f, Errorf(CodeBadRequest, "unknown kind %q: user, channel, member or message", f.Kind)
	}
	return f, nil
}

// scanStrings calls fn with each string of the JSON array arr; anything
// else is bad.
func scanStrings(arr []byte, bad *Error, fn func(string)) *Error {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return bad
	}
	i = skipSpace(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for {
		if i >= len(arr) || arr[i] != '"' {
			return bad
		}
		end, ok := skipString(arr, i)
		if !ok {
			return bad
		}
		raw := arr[i:end]
		if bytes.IndexByte(raw, '\\') >= 0 {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return bad
			}
			fn(s)
		} else {
			fn(string(raw[1 : len(raw)-1]))
		}
		i = skipSpace(arr, end)
		if i >= len(arr) {
			return bad
		}
		switch arr[i] {
		case ',':
			i = skipSpace(arr, i+1)
		case ']':
			return nil
		default:
			return bad
		}
	}
}
