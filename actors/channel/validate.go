package channel

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/protocol"
)

func badRequest(format string, args ...any) *protocol.Error {
	return protocol.Errorf(protocol.CodeBadRequest, format, args...)
}

// checkText bounds a free-text field.
func checkText(field, v string, max int) *protocol.Error {
	if !utf8.ValidString(v) {
		return badRequest("%s must be valid UTF-8", field)
	}
	if len(v) > max {
		return protocol.Errorf(protocol.CodeTooLong, "%s is %d bytes, the limit is %d", field, len(v), max)
	}
	return nil
}

// checkID validates an id (user, channel, client id): non-empty, bounded,
// printable ASCII without spaces.
func checkID(field, v string, max int) *protocol.Error {
	if v == "" {
		return badRequest("%s is required", field)
	}
	if len(v) > max {
		return protocol.Errorf(protocol.CodeTooLong, "%s is %d bytes, the limit is %d", field, len(v), max)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return badRequest("%s may hold only printable ASCII without spaces", field)
		}
	}
	return nil
}

// checkObject bounds a free-form JSON object (data, metadata): see
// protocol.CheckObject.
func checkObject(field string, v json.RawMessage, max int) *protocol.Error {
	return protocol.CheckObject(field, v, max)
}

// compactObject returns v without insignificant whitespace (nil for null).
func compactObject(v json.RawMessage) json.RawMessage {
	if len(v) == 0 || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return v
	}
	return b.Bytes()
}

func checkTags(tags []string, l protocol.Limits) *protocol.Error {
	if len(tags) > l.MaxTags {
		return protocol.Errorf(protocol.CodeTooLarge, "%d tags, the limit is %d", len(tags), l.MaxTags)
	}
	for _, t := range tags {
		if t == "" {
			return badRequest("tags may not be empty")
		}
		if err := checkText("tag", t, l.MaxNameLen); err != nil {
			return err
		}
	}
	return nil
}

// checkAttachedTo validates attached_to: each id it holds is an id (an
// absent or empty one is not set).
func checkAttachedTo(a *protocol.AttachedTo, l protocol.Limits) *protocol.Error {
	if a == nil {
		return nil
	}
	for _, f := range []struct{ name, v string }{
		{"attached_to.stream_id", a.StreamID}, {"attached_to.room_id", a.RoomID}, {"attached_to.post_id", a.PostID},
	} {
		if f.v == "" {
			continue
		}
		if err := checkID(f.name, f.v, l.MaxIDLen); err != nil {
			return err
		}
	}
	return nil
}
