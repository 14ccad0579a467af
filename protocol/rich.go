package protocol

import (
	"net/url"
	"strings"
)

// Shapes of the rich-messaging ops and events: reactions, favorites, read
// state, typing, presence and files.

// Presence statuses.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// File types, derived from a file's MIME type.
const (
	FileImage = "image"
	FileVideo = "video"
	FileAudio = "audio"
	FileOther = "file"
)

// ReactionArgs are the args of reaction.add and reaction.remove.
type ReactionArgs struct {
	Channel   string `json:"channel"`
	MessageID string `json:"message_id"`
	Name      string `json:"name"`
}

// FavoriteArgs are the args of message.favorite.
type FavoriteArgs struct {
	Channel   string `json:"channel"`
	MessageID string `json:"message_id"`
	On        *bool  `json:"on"`
}

// ReadMarkArgs are the args of read.mark: up to a segment, or up to a
// message (its segment), or with neither everything.
type ReadMarkArgs struct {
	Channel   string  `json:"channel"`
	Segment   *uint64 `json:"segment,omitempty"`
	MessageID string  `json:"message_id,omitempty"`
}

// ReactionEvent is the data of reaction.updated: the message with its new
// counts, who reacted, with what, and whether it was added or removed.
type ReactionEvent struct {
	Message *Message `json:"message"`
	User    string   `json:"user"`
	Name    string   `json:"name"`
	Added   bool     `json:"added"`
}

// TypingEvent is the data of typing.
type TypingEvent struct {
	User   string `json:"user"`
	Active bool   `json:"active"`
}

// ReadEvent is the data of read.
type ReadEvent struct {
	User    string `json:"user"`
	Segment uint64 `json:"segment"`
}

// PresenceEvent is the data of presence.
type PresenceEvent struct {
	User     string `json:"user"`
	Status   string `json:"status"`
	LastSeen Time   `json:"last_seen,omitzero"`
}

// PresenceArgs are the args of presence.watch and presence.unwatch.
type PresenceArgs struct {
	Users []string `json:"users"`
}

// UsersResult is {users}.
type UsersResult struct {
	Users []User `json:"users"`
	// User (GET /v1/users/{id} only) is the one user asked for.
	User *User `json:"user,omitempty"`
}

// FileResult is the body POST /v1/files answers with.
type FileResult struct {
	File File `json:"file"`
}

// Paths of the files: POST an upload, GET a file.
const (
	PathFiles = "/v1/files"
	PathFile  = PathFiles + "/{id}"
)

// FileURL is the relative URL a file is fetched from: GET /v1/files/{id},
// with the id escaped as one path segment (a user id, and so a file id,
// may hold '/', '?', '#' or '%').
func FileURL(id string) string { return PathFiles + "/" + url.PathEscape(id) }

// FileType returns the file type of a MIME type.
func FileType(mime string) string {
	switch {
	case strings.HasPrefix(mime, "image/"):
		return FileImage
	case strings.HasPrefix(mime, "video/"):
		return FileVideo
	case strings.HasPrefix(mime, "audio/"):
		return FileAudio
	}
	return FileOther
}
