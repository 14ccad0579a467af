package channel

import (
	"encoding/json"
	"maps"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Reactions are freeform names, one per (user, message, name). The message
// record carries the counts ({name: count}); each user's own reactions
// are aux records (react\0<user>\0<segment><name>), read back as the
// caller's my_reactions, with a copy by message (msgreact\0...) that a
// deletion removes them by. Adding a reaction one already has, or removing
// one one does not have, changes nothing and succeeds: both are safe to
// retry. A change is said in the channel like a message: a muted user, or
// anyone but moderators in a muted channel, cannot make one, and each
// counts against the channel's rate limit (slow mode is for messages
// only).

func (s *State) handleReactionAdd(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	return s.react(c, args, true, now)
}

func (s *State) handleReactionRemove(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	return s.react(c, args, false, now)
}

// checkReactionName bounds a reaction name: 1 to MaxReactionNameLen bytes
// of UTF-8 without control characters.
func (s *State) checkReactionName(name string) *protocol.Error {
	if name == "" {
		return badRequest("name is required")
	}
	if err := checkText("name", name, s.cfg.Limits.MaxReactionNameLen); err != nil {
		return err
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return badRequest("name may not hold control characters")
		}
	}
	return nil
}

// canReact checks that the caller may react in the channel: members and
// broadcast viewers, watching live viewers, and admins; it returns the
// caller's record.
func (s *State) canReact(c Caller) (*memberRecord, *protocol.Error) {
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	switch {
	case c.Admin, inChannel(m):
	case s.meta.Channel.Type == protocol.TypeLive && s.watchers.byUser[c.User] > 0:
	default:
		return nil, protocol.Errorf(protocol.CodeNotMember, "join %s before reacting in it", s.id)
	}
	return m, nil
}

func (s *State) react(c Caller, args json.RawMessage, add bool, now time.Time) (any, *protocol.Error) {
	var a protocol.ReactionArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := s.checkReactionName(a.Name); err != nil {
		return nil, err
	}
	old, perr := s.findMessage(a.MessageID)
	if perr != nil {
		return nil, perr
	}
	cm, perr := s.canReact(c)
	if perr != nil {
		return nil, perr
	}
	mod := s.isModerator(c, cm)
	if err := s.silenced(c, cm, mod); err != nil {
		return nil, err
	}
	if old.Deleted {
		return nil, protocol.Errorf(protocol.CodeInvalidState, "message %s is deleted", a.MessageID)
	}
	key := reactKey(c.User, old.Segment, a.Name)
	_, has, err := s.auxGet(key)
	if err != nil {
		return nil, internal(err)
	}
	uc, err := s.userCounts(c.User)
	if err != nil {
		return nil, internal(err)
	}
	if has == add {
		// Already so: nothing changes and nothing is announced.
		return protocol.MessageResult{Message: s.viewMessage(c, old)}, nil
	}
	if add && old.Reactions[a.Name] == 0 && len(old.Reactions) >= s.cfg.Limits.MaxReactionKinds {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "message %s has %d kinds of reaction, the limit is %d", a.MessageID, len(old.Reactions), s.cfg.Limits.MaxReactionKinds)
	}
	if !mod {
		if err := s.mod.limits.checkRate(s, now); err != nil {
			return nil, err
		}
		s.noteRate(now) // nothing below refuses
	}
	m := cloneMessage(old)
	m.Reactions = maps.Clone(old.Reactions)
	if add {
		if m.Reactions == nil {
			m.Reactions = map[string]int64{}
		}
		m.Reactions[a.Name]++
		uc.Reactions++
		s.auxPut(key, nil)
		s.auxPut(msgReactKey(old.Segment, c.User, a.Name), nil)
	} else {
		if m.Reactions[a.Name]--; m.Reactions[a.Name] <= 0 {
			delete(m.Reactions, a.Name)
		}
		if len(m.Reactions) == 0 {
			m.Reactions = nil
		}
		uc.Reactions = max(uc.Reactions-1, 0)
		s.auxDel(key)
		s.auxDel(msgReactKey(old.Segment, c.User, a.Name))
	}
	s.putUserCounts(c.User, uc)
	s.putMessage(m)
	s.emit(protocol.EventReactionUpdated, reactionData{Message: eventMessage{m}, User: c.User, Name: a.Name, Added: add})
	return protocol.MessageResult{Message: s.viewMessage(c, m)}, nil
}

// reactionData is protocol.ReactionEvent with the message as events
// carry it.
type reactionData struct {
	Message eventMessage `json:"message"`
	User    string       `json:"user"`
	Name    string       `json:"name"`
	Added   bool         `json:"added"`
}
