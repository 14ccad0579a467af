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
// message's data and metadata are stored compacted); null is no value.
// It is escaped as encoding/json writes a json.RawMessage (<, >, &, U+2028
// and U+2029 as \u escapes), so an event carries the bytes a reply does.
func appendRawField(dst []byte, key string, v json.RawMessage) []byte {
	if v = nullIsNil(v); len(v) == 0 {
		return dst
	}
	dst = append(dst, key...)
	if !bytes.ContainsAny(v, "<>&\u2028\u2029") {
		return append(dst, v...)
	}
	var b bytes.Buffer
	json.HTMLEscape(&b, v)
	return append(dst, b.Bytes()...)
}

func appendStringsField(dst []byte, key string, v []string) []byte {
	if len(v) == 0 {
		return dst
	}
	dst = append(dst, key...)
	for i, s := range v {
		if i == 0 {
			dst = append(dst, '[')
		} else {
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
	dst = append(dst, key...)
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, TimeLayout)
	return append(dst, '"')
}

// appendJSONField appends a field of a rarer kind (attachments,
// reactions, a system message's record) with encoding/json.
func appendJSONField(dst []byte, key string, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // plain structs, slices and maps of them: cannot fail
		panic("protocol: encode event message: " + err.Error())
	}
	return append(append(dst, key...), b...)
}
