package channel

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

func init() {
	handlers[OpFileCheck] = (*State).handleFileCheck
}

// OpFileCheck is an internal op (never accepted from clients): may the
// caller download a file sent in this channel? It answers {segment} when
// the file is attached to a message of the channel that is not deleted
// and the caller may read the channel; not_found or not_member otherwise.
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
	v, ok, err := s.auxGet(fileKey(a.File))
	if err != nil {
		return nil, internal(err)
	}
	var seg uint64
	if !ok || json.Unmarshal(v, &seg) != nil {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no file %s in %s", a.File, s.id)
	}
	return struct {
		Segment uint64 `json:"segment"`
	}{seg}, nil
}

// deleting applies a message's deletion to the rich state before the
// deleted version m of old is written: its reactions go (my_reactions is
// not shown on deleted messages), its files stop being readable through
// this channel, and a reply leaves its parent's reply_count.
func (s *State) deleting(old, m *protocol.Message, actor string) {
	m.Reactions = nil
	for _, f := range old.Attachments {
		s.auxDel(fileKey(f.ID))
	}
	s.replyDeleted(old, actor)
}
