package protocol

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// AppendEventMessage appends m as events carry it (message.new,
// message.updated, message.deleted, reaction.updated): every field that
// has no value — null, "", 0, false, [] or {} — is left out, and so are
// channel (it is the event's own channel) and type when it is text. A
// reader takes an absent field as empty, an absent type as text (as
// message.send does) and the channel from the event. The reader's own
// fields (my_reactions, favorite, flag_count) are never in events, which
// are encoded once for every watcher.
//
// It writes the fields in Message's order without reflection: a send
// encodes its event once, and every watcher of a live room reads it.
func AppendEventMessage(dst []byte, m *Message) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendString(dst, m.ID)
	dst = append(dst, `,"segment":`...)
	dst = strconv.AppendUint(dst, m.Segment, 10)
	dst = appendStringField(dst, `,"user":`, m.User)
	if m.Type != MessageText {
		dst = appendStringField(dst, `,"type":`, m.Type)
	}
	dst = appendStringField(dst, `,"text":`, m.Text)
	dst = appendRawField(dst, `,"data":`, m.Data)
	dst = appendRawField(dst, `,"metadata":`, m.Metadata)
	dst = appendStringsField(dst, `,"tags":`, m.Tags)
	dst = appendStringField(dst, `,"parent_id":`, m.ParentID)
	if m.ReplyCount != 0 {
		dst = append(dst, `,"reply_count":`...)
		dst = strconv.AppendInt(dst, m.ReplyCount, 10)
	}
	dst = appendStringsField(dst, `,"mentions":`, m.Mentions)
	if len(m.Attachments) > 0 {
		dst = appendJSONField(dst, `,"attachments":`, m.Attachments)
	}
	if len(m.Reactions) > 0 {
		dst = appendJSONField(dst, `,"reactions":`, m.Reactions) // keys sorted
	}
	dst = appendStringField(dst, `,"client_id":`, m.ClientID)
	dst = appendTimeField(dst, `,"created_at":`, m.CreatedAt)
	dst = appendTimeField(dst, `,"edited_at":`, m.EditedAt)
	if m.Deleted {
		dst = append(dst, `,"deleted":true`...)
	}
	if m.System != nil {
		dst = appendJSONField(dst, `,"system":`, m.System)
	}
	return append(dst, '}')
}

func appendStringField(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	return AppendString(append(dst, key...), v)
}

// appendRawField appends an object field that is already JSON (a
// message's data and metadata); null is no value.
func appendRawField(dst []byte, key string, v json.RawMessage) []byte {
	if v = nullIsNil(v); len(v) == 0 {
		return dst
	}
	return appendRaw(append(dst, key...), v)
}

// appendRaw appends JSON as encoding/json writes a json.RawMessage:
// compacted, with <, >, &, U+2028 and U+2029 escaped, so that an event, a
// stored record and a reply carry the same bytes. Data is stored
// compacted: most is appended as it is.
func appendRaw(dst []byte, v json.RawMessage) []byte {
	if len(v) == 0 {
		return append(dst, "null"...)
	}
	if !bytes.ContainsAny(v, " \t\n\r<>&\u2028\u2029") {
		return append(dst, v...)
	}
	b, err := json.Marshal(v)
	if err != nil { // not JSON: never stored (DecodeArgs checked it)
		return append(dst, "null"...)
	}
	return append(dst, b...)
}

// AppendMessage appends m as encoding/json writes it (json.Marshal(m),
// byte for byte: every field, lists empty rather than null), without
// reflection: a send encodes its message once for its stored record and
// its reply.
func AppendMessage(dst []byte, m *Message) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendString(dst, m.ID)
	dst = append(dst, `,"channel":`...)
	dst = AppendString(dst, m.Channel)
	dst = append(dst, `,"segment":`...)
	dst = strconv.AppendUint(dst, m.Segment, 10)
	dst = append(dst, `,"user":`...)
	dst = AppendString(dst, m.User)
	dst = append(dst, `,"type":`...)
	dst = AppendString(dst, m.Type)
	dst = append(dst, `,"text":`...)
	dst = AppendString(dst, m.Text)
	dst = append(dst, `,"data":`...)
	dst = appendRaw(dst, m.Data)
	dst = append(dst, `,"metadata":`...)
	dst = appendRaw(dst, m.Metadata)
	dst = append(dst, `,"tags":`...)
	dst = appendStrings(dst, m.Tags)
	dst = append(dst, `,"parent_id":`...)
	dst = AppendString(dst, m.ParentID)
	dst = append(dst, `,"reply_count":`...)
	dst = strconv.AppendInt(dst, m.ReplyCount, 10)
	dst = append(dst, `,"mentions":`...)
	dst = appendStrings(dst, m.Mentions)
	dst = append(dst, `,"attachments":`...)
	if len(m.Attachments) == 0 {
		dst = append(dst, "[]"...)
	} else {
		dst = appendJSON(dst, m.Attachments)
	}
	dst = append(dst, `,"reactions":`...)
	if len(m.Reactions) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = appendJSON(dst, m.Reactions)
	}
	if m.MyReactions != nil {
		dst = append(dst, `,"my_reactions":`...)
		dst = appendStrings(dst, m.MyReactions)
	}
	if m.Favorite != nil {
		dst = append(dst, `,"favorite":`...)
		dst = strconv.AppendBool(dst, *m.Favorite)
	}
	if m.FlagCount != nil {
		dst = append(dst, `,"flag_count":`...)
		dst = strconv.AppendInt(dst, *m.FlagCount, 10)
	}
	dst = append(dst, `,"client_id":`...)
	dst = AppendString(dst, m.ClientID)
	dst = append(dst, `,"created_at":`...)
	dst = appendTime(dst, m.CreatedAt)
	dst = append(dst, `,"edited_at":`...)
	dst = appendTime(dst, m.EditedAt)
	dst = append(dst, `,"deleted":`...)
	dst = strconv.AppendBool(dst, m.Deleted)
	dst = append(dst, `,"system":`...)
	if m.System == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendJSON(dst, m.System)
	}
	return append(dst, '}')
}

func appendStringsField(dst []byte, key string, v []string) []byte {
	if len(v) == 0 {
		return dst
	}
	return appendStrings(append(dst, key...), v)
}

// appendStrings appends an array of strings ([] for none).
func appendStrings(dst []byte, v []string) []byte {
	dst = append(dst, '[')
	for i, s := range v {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, s)
	}
	return append(dst, ']')
}

func appendTimeField(dst []byte, key string, t Time) []byte {
	if t.IsZero() {
		return dst
	}
	return appendTime(append(dst, key...), t)
}

// appendTime appends t as Time.MarshalJSON writes it.
func appendTime(dst []byte, t Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, TimeLayout)
	return append(dst, '"')
}

// appendJSONField appends a field of a rarer kind (attachments,
// reactions, a system message's record) with encoding/json.
func appendJSONField(dst []byte, key string, v any) []byte {
	return appendJSON(append(dst, key...), v)
}

func appendJSON(dst []byte, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // plain structs, slices and maps of them: cannot fail
		panic("protocol: encode message: " + err.Error())
	}
	return append(dst, b...)
}
