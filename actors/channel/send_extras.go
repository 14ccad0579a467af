package channel

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// OpSendFiles is an internal op (never accepted from clients): a
// message.send whose attachments the gateway resolved. Files are uploaded
// to a gateway and recorded by their uploader's user actor; the gateway
// asks that actor for the files a send names (the actor checks the
// uploader and records that the file is used in this channel) and passes
// them here, so the channel never waits on another actor.
const OpSendFiles = "_message.send_files"

// AttachedFile is a file as the gateway resolved it for a send.
type AttachedFile struct {
	protocol.File
	// Owner is the user who uploaded the file.
	Owner string `json:"owner"`
}

// SendFilesArgs are the args of OpSendFiles.
type SendFilesArgs struct {
	// Args are the client's message.send args, unchanged.
	Args  json.RawMessage `json:"args"`
	Files []AttachedFile  `json:"files"`
}

func (s *State) handleSendFiles(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a SendFilesArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if a.Files == nil {
		a.Files = []AttachedFile{}
	}
	return s.send(c, a.Args, a.Files, now)
}

// sendExtras is what a send carries beyond its content: checked before the
// message is made (prepareSend), applied once it is (afterSend).
type sendExtras struct {
	mentions []string
	files    []protocol.File
}

// prepareSend checks a send's type rules, mentions and attachments. It
// reads but changes nothing. files is nil when the gateway resolved no
// attachments (a plain message.send).
//
// Mentions name user ids; ids of users who are not members (or viewers)
// of the channel are dropped, not refused: membership may change while a
// message is composed, and a send should not fail for it. The message's
// mentions list holds the ids that were kept.
func (s *State) prepareSend(c Caller, a *protocol.SendArgs, files []AttachedFile) (*sendExtras, *protocol.Error) {
	l := s.cfg.Limits
	if a.Type == protocol.MessageJSON && len(compactObject(a.Data)) == 0 {
		return nil, badRequest("a json message needs data")
	}
	ex := &sendExtras{}
	if len(a.Mentions) > l.MaxMentions {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "%d mentions, the limit is %d", len(a.Mentions), l.MaxMentions)
	}
	seen := map[string]bool{}
	for _, u := range a.Mentions {
		if err := checkID("mentions", u, l.MaxIDLen); err != nil {
			return nil, err
		}
		if seen[u] {
			continue
		}
		seen[u] = true
		m, perr := s.mustMember(u)
		if perr != nil {
			return nil, perr
		}
		if inChannel(m) {
			ex.mentions = append(ex.mentions, u)
		}
	}
	if len(a.Attachments) > l.MaxAttachments {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "%d attachments, the limit is %d", len(a.Attachments), l.MaxAttachments)
	}
	if len(a.Attachments) > 0 && files == nil {
		return nil, badRequest("attachments must be file ids from POST /v1/files")
	}
	byID := make(map[string]*AttachedFile, len(files))
	for i := range files {
		byID[files[i].ID] = &files[i]
	}
	clear(seen)
	for _, id := range a.Attachments {
		if seen[id] {
			continue
		}
		seen[id] = true
		f := byID[id]
		switch {
		case f == nil:
			return nil, protocol.Errorf(protocol.CodeNotFound, "no file %q", id)
		case f.Owner != c.User:
			return nil, protocol.Errorf(protocol.CodeForbidden, "file %s was uploaded by another user", id)
		}
		ex.files = append(ex.files, f.File)
	}
	return ex, nil
}

// inChannel reports whether a member record makes its user part of the
// channel (a member, or a broadcast viewer).
func inChannel(m *memberRecord) bool {
	return m != nil && (m.Membership == protocol.MembershipMember || m.Membership == protocol.MembershipViewer)
}

// afterSend applies a new message's extras once the message is recorded
// and announced: the thread, mentions, attachments and the sender's typing.
func (s *State) afterSend(c Caller, msg, parent *protocol.Message, ex *sendExtras, now time.Time) {
	s.rich.sent, s.rich.sentIndex = msg.Segment, s.cur.Index
	if parent != nil {
		s.replied(c, parent, msg)
	}
	for _, u := range ex.mentions {
		if u == c.User {
			continue
		}
		m, err := s.member(u)
		if err != nil || !inChannel(m) {
			continue // read in prepareSend; cached since
		}
		nm := m.clone()
		nm.LastMentionedSegment = msg.Segment
		s.putMember(nm)
	}
	for _, f := range ex.files {
		s.auxPut(fileSegKey(f.ID, msg.Segment), nil)
	}
	s.typingSent(c.User, now)
}
