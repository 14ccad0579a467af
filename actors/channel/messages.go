package channel

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// messageID makes a message id: the segment, then a hash of the channel,
// segment and time so that ids are unique across channels. The segment
// prefix lets the channel find a message without an index.
func messageID(channel string, segment uint64, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], segment)
	binary.BigEndian.PutUint64(b[8:], uint64(now.UnixNano()))
	h := xxhash.New()
	h.WriteString(channel)
	h.Write(b[:])
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], h.Sum64())
	return strconv.FormatUint(segment, 10) + "-" + hex.EncodeToString(sum[:])
}

// parseMessageID returns the segment a message id names.
func parseMessageID(id string) (uint64, bool) {
	i := strings.IndexByte(id, '-')
	if i <= 0 {
		return 0, false
	}
	seg, err := strconv.ParseUint(id[:i], 10, 64)
	return seg, err == nil && seg > 0
}

// message returns the message at segment, or nil when there is none.
func (s *State) message(seg uint64) (*protocol.Message, error) {
	if m, ok := s.msgs.get(seg); ok {
		return m, nil
	}
	v, err := s.log.Get(persistence.TableMessage, persistence.U64(seg))
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	m, err := decodeMessage(v)
	if err != nil {
		return nil, err
	}
	s.msgs.put(seg, m)
	return m, nil
}

// findMessage resolves a message id of this channel.
func (s *State) findMessage(id string) (*protocol.Message, *protocol.Error) {
	m, err := s.lookupMessage(id)
	if err != nil {
		return nil, internal(err)
	}
	if m == nil {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no message %q in %s", id, s.id)
	}
	return m, nil
}

// putMessage writes a message record with the current entry. m must be a
// fresh copy, never one already handed out.
func (s *State) putMessage(m *protocol.Message) []byte {
	enc := protocol.AppendMessage(make([]byte, 0, 320+len(m.Text)+len(m.Data)+len(m.Metadata)), m)
	e := s.entry()
	e.Put(persistence.TableMessage, persistence.U64(m.Segment), enc)
	s.msgs.write(m.Segment, m, s.cur.Index)
	if s.lastMsg == nil || m.Segment >= s.lastMsg.Segment {
		s.lastMsg = m
	}
	return enc
}

// idemSegment returns the segment of the user's message with clientID.
func (s *State) idemSegment(user, clientID string) (uint64, bool, error) {
	k := idemKey{user, clientID}
	if seg, ok := s.idem.get(k); ok {
		return seg, seg != 0, nil
	}
	key := idemStoreKey(user, clientID)
	if f := s.idemKeys(); f != nil && !f.mayHave(key) {
		return 0, false, nil
	}
	v, err := s.log.Get(persistence.TableIdem, key)
	if errors.Is(err, persistence.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	seg, ok := persistence.ParseU64(v)
	if !ok {
		return 0, false, ErrCorrupt
	}
	if !s.visible(seg) {
		// Written by an import not yet committed (or abandoned): not a
		// message of the channel.
		return 0, false, nil
	}
	s.idem.put(k, seg)
	return seg, true, nil
}

func idemStoreKey(user, clientID string) []byte {
	b := make([]byte, 0, len(user)+1+len(clientID))
	b = append(b, user...)
	b = append(b, 0)
	return append(b, clientID...)
}

// messageEvent is the data of message events.
type messageEvent struct {
	Message eventMessage `json:"message"`
	Actor   string       `json:"actor,omitempty"`
}

// eventMessage is a message as events carry it: without its empty
// fields, its channel (the event's) and a text type
// (protocol.AppendEventMessage).
type eventMessage struct{ *protocol.Message }

func (m eventMessage) MarshalJSON() ([]byte, error) {
	return protocol.AppendEventMessage(nil, m.Message), nil
}

func (m *eventMessage) UnmarshalJSON(b []byte) error {
	m.Message = new(protocol.Message)
	return m.Message.UnmarshalJSON(b)
}

// messageEventData is the data of m's message.new: messageEvent{Message:
// m}, encoded directly.
func messageEventData(m *protocol.Message) []byte {
	b := make([]byte, 0, 192+len(m.Text))
	b = append(b, `{"message":`...)
	b = protocol.AppendEventMessage(b, m)
	return append(b, '}')
}

// validateSend checks a send's arguments other than its client id.
func (s *State) validateSend(a *protocol.SendArgs) *protocol.Error {
	l := s.cfg.Limits
	if a.Type == "" {
		a.Type = protocol.MessageText
	}
	if !protocol.ValidMessageType(a.Type) {
		return badRequest("type must be one of text, image, video, file, audio, custom, json")
	}
	if err := checkText("text", a.Text, l.MaxTextLen); err != nil {
		return err
	}
	if err := checkObject("data", a.Data, l.MaxDataBytes); err != nil {
		return err
	}
	if err := checkObject("metadata", a.Metadata, l.MaxDataBytes); err != nil {
		return err
	}
	if err := checkTags(a.Tags, l); err != nil {
		return err
	}
	if a.Text == "" && len(compactObject(a.Data)) == 0 && len(a.Attachments) == 0 {
		return badRequest("a message needs text, data or attachments")
	}
	return nil
}

func (s *State) handleSend(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	return s.send(c, args, nil, now)
}

// send handles message.send; files are the attachments the gateway
// resolved (nil for none, see OpSendFiles).
func (s *State) send(c Caller, args json.RawMessage, files []AttachedFile, now time.Time) (any, *protocol.Error) {
	var a protocol.SendArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkID("client_id", a.ClientID, s.cfg.Limits.MaxIDLen); err != nil {
		return nil, err
	}
	// A resend returns the original, whatever it says and whatever has
	// changed since: it is looked up before the rest is validated, so a
	// retry never fails on content the first attempt was accepted with
	// (or on limits lowered in between).
	if seg, ok, err := s.idemSegment(c.User, a.ClientID); err != nil {
		return nil, internal(err)
	} else if ok {
		m, err := s.message(seg)
		if err != nil || m == nil {
			return nil, protocol.Errorf(protocol.CodeInternal, "message of client_id %q is missing", a.ClientID)
		}
		return protocol.MessageResult{Message: s.viewMessage(c, m), Duplicate: true}, nil
	}
	if err := s.validateSend(&a); err != nil {
		return nil, err
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if err := s.canSend(c, m); err != nil {
		return nil, err
	}
	var parent *protocol.Message
	if a.ParentID != "" {
		p, perr := s.findMessage(a.ParentID)
		if perr != nil {
			return nil, perr
		}
		if p.ParentID != "" {
			// Threads are one level deep, so parent_id finds all of one.
			return nil, badRequest("message %s is a reply; reply to its parent %s", a.ParentID, p.ParentID)
		}
		if p.Deleted {
			return nil, protocol.Errorf(protocol.CodeInvalidState, "message %s is deleted", a.ParentID)
		}
		parent = p
	}
	ex, perr := s.prepareSend(c, &a, files)
	if perr != nil {
		return nil, perr
	}

	seg := s.meta.Channel.LastSegment + 1
	msg := &protocol.Message{
		ID:        messageID(s.id, seg, now),
		Channel:   s.id,
		Segment:   seg,
		User:      c.User,
		Type:      a.Type,
		Text:      a.Text,
		Data:      compactObject(a.Data),
		Metadata:  compactObject(a.Metadata),
		Tags:      a.Tags,
		ParentID:  a.ParentID,
		ClientID:  a.ClientID,
		CreatedAt: protocol.At(now),
	}
	msg.Mentions, msg.Attachments = ex.mentions, ex.files
	s.meta.Channel.LastSegment = seg
	s.meta.Channel.MessageCount++
	s.meta.Channel.LastActivity = protocol.At(now)
	enc := s.putMessage(msg)
	ikey := idemStoreKey(c.User, a.ClientID)
	s.entry().Put(persistence.TableIdem, ikey, persistence.U64(seg))
	s.idem.write(idemKey{c.User, a.ClientID}, seg, s.cur.Index)
	if s.idemF != nil {
		s.idemF.add(ikey)
	}
	if isMember(m) {
		// Sending implies having read everything up to one's own message.
		nm := m.clone()
		nm.ReadSegment = seg
		nm.LastActivity = protocol.At(now)
		nm.LastSendAt = now
		s.putMember(nm)
	}
	s.noteSend(c, m, now)
	// The stored record and the reply share one encoding of the message
	// (a send is the hottest path there is); the event has its own,
	// smaller one, which every watcher reads.
	s.emitRaw(protocol.EventMessageNew, messageEventData(msg))
	s.afterSend(c, msg, parent, ex, now)
	return s.sentView(c, msg, enc), nil
}

// canSend checks that the caller may send to the channel (perms.go).
func (s *State) canSend(c Caller, m *memberRecord) *protocol.Error {
	return s.sendAllowed(c, m)
}

func (s *State) handleEdit(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.EditArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	l := s.cfg.Limits
	if a.Text == nil && a.Data == nil && a.Metadata == nil {
		return nil, badRequest("message.edit needs text, data or metadata")
	}
	if a.Text != nil {
		if err := checkText("text", *a.Text, l.MaxTextLen); err != nil {
			return nil, err
		}
	}
	if err := checkObject("data", a.Data, l.MaxDataBytes); err != nil {
		return nil, err
	}
	if err := checkObject("metadata", a.Metadata, l.MaxDataBytes); err != nil {
		return nil, err
	}
	old, perr := s.findMessage(a.MessageID)
	if perr != nil {
		return nil, perr
	}
	if old.User != c.User || old.Type == protocol.MessageSystem {
		return nil, protocol.Errorf(protocol.CodeForbidden, "only the author may edit a message")
	}
	// An edit is said in the channel now: the author must still be in it
	// and free to speak, as for a send (without its rate limits).
	cm, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if _, err := s.mayPost(c, cm); err != nil {
		return nil, err
	}
	if old.Deleted {
		return nil, protocol.Errorf(protocol.CodeInvalidState, "message %s is deleted", a.MessageID)
	}
	m := cloneMessage(old)
	if a.Text != nil {
		m.Text = *a.Text
	}
	if a.Data != nil {
		m.Data = compactObject(a.Data)
	}
	if a.Metadata != nil {
		m.Metadata = compactObject(a.Metadata)
	}
	if m.Text == "" && len(m.Data) == 0 && len(m.Attachments) == 0 {
		return nil, badRequest("an edit may not leave a message empty")
	}
	m.EditedAt = protocol.At(now)
	s.putMessage(m)
	s.emit(protocol.EventMessageUpdated, messageEvent{Message: eventMessage{m}, Actor: c.User})
	return protocol.MessageResult{Message: s.viewMessage(c, m)}, nil
}

// handleMessageDelete soft-deletes a message.
func (s *State) handleMessageDelete(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.MessageRef
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	old, perr := s.findMessage(a.MessageID)
	if perr != nil {
		return nil, perr
	}
	if old.Deleted {
		return nil, protocol.Errorf(protocol.CodeInvalidState, "message %s is already deleted", a.MessageID)
	}
	cm, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	// A system message names its subject as user, but nobody authored
	// it: only moderators remove one. An author deletes their own while
	// they are still in the channel (muted or not).
	if old.User != c.User || old.Type == protocol.MessageSystem {
		if !s.isModerator(c, cm) {
			return nil, protocol.Errorf(protocol.CodeForbidden, "only the author or a moderator may delete a message")
		}
	} else if _, err := s.mayAuthor(c, cm); err != nil {
		return nil, err
	}
	d, err := s.planDeletion(old)
	if err != nil {
		return nil, internal(err)
	}
	m := s.softDelete(old, d, c.User)
	s.emit(protocol.EventMessageDeleted, messageEvent{Message: eventMessage{m}, Actor: c.User})
	return protocol.MessageResult{Message: s.viewMessage(c, m)}, nil
}

// softDelete marks a message deleted and clears its content, and removes
// what d found attached to it; actor is who deleted it ("" for the channel
// itself, by flags).
func (s *State) softDelete(old *protocol.Message, d *deletion, actor string) *protocol.Message {
	m := cloneMessage(old)
	m.Deleted = true
	m.Text = ""
	m.Data = nil
	m.Metadata = nil
	m.Attachments = nil
	m.Mentions = nil
	s.deleting(old, m, d, actor)
	s.putMessage(m)
	if s.meta.Channel.MessageCount > 0 {
		s.meta.Channel.MessageCount--
	}
	return m
}
