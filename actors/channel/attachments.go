package channel

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// OpFileCheck is an internal op (never accepted from clients): may the
// caller download a file sent in this channel? It answers {segment} when
// the file is attached to a message of the channel that is not deleted
// (any one, when several carry it) and the caller may read the channel;
// not_found or not_member otherwise.
// GET /v1/files/{id} asks it of each channel the file was used in.
const OpFileCheck = "_channel.file_check"

// FileCheckArgs are the args of OpFileCheck.
type FileCheckArgs struct {
	File string `json:"file"`
}

func (s *State) handleFileCheck(c Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a FileCheckArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.File == "" {
		return nil, badRequest("file is required")
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if err := s.canRead(c, m); err != nil {
		return nil, err
	}
	seg, ok, err := s.fileSegment(a.File)
	if err != nil {
		return nil, internal(err)
	}
	if !ok {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no file %s in %s", a.File, s.id)
	}
	return struct {
		Segment uint64 `json:"segment"`
	}{seg}, nil
}

// fileSegment returns the segment of a message of the channel, not
// deleted, that carries the file: each such message has a record (the
// file stays readable until the last of them is deleted), or the file has
// one record written before those existed.
func (s *State) fileSegment(id string) (uint64, bool, error) {
	pre := fileSegPrefix(id)
	recs, err := s.auxPrefix(pre, 1)
	if err != nil {
		return 0, false, err
	}
	if len(recs) > 0 {
		seg, ok := persistence.ParseU64(recs[0].Key[len(pre):])
		if !ok {
			return 0, false, ErrCorrupt
		}
		return seg, true, nil
	}
	return s.legacyFileSegment(id)
}

// legacyFileSegment reads a file's record in its former shape (fileKey).
func (s *State) legacyFileSegment(id string) (uint64, bool, error) {
	v, ok, err := s.auxGet(fileKey(id))
	if err != nil || !ok {
		return 0, false, err
	}
	var seg uint64
	if json.Unmarshal(v, &seg) != nil {
		return 0, false, ErrCorrupt
	}
	return seg, true, nil
}
