package channel

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Flags are kept apart from the message record, in the aux table: one
// record per (message, user) so a user flags a message once, and a count
// per message. The message record never carries flag_count: events are
// encoded once for everyone, so the count is added only to the messages a
// moderator reads (replies, history, join pages).
//
//	'f' segment user → reason   (one flag)
//	'n' segment      → count
type flagKey struct {
	seg  uint64
	user string
}

func flagStoreKey(seg uint64, user string) []byte {
	return append(append([]byte{'f'}, persistence.U64(seg)...), user...)
}

func flagCountKey(seg uint64) []byte { return append([]byte{'n'}, persistence.U64(seg)...) }

// flagged reports whether user has flagged the message at seg.
func (s *State) flagged(seg uint64, user string) (bool, error) {
	k := flagKey{seg, user}
	if v, ok := s.mod.flags.get(k); ok {
		return v, nil
	}
	_, err := s.log.Get(persistence.TableAux, flagStoreKey(seg, user))
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		s.mod.flags.put(k, false)
		return false, nil
	case err != nil:
		return false, err
	}
	s.mod.flags.put(k, true)
	return true, nil
}

// flagWindow is how many segments around a miss one read of flag counts
// covers, so that a moderator's page costs one range scan, not a read per
// message.
const flagWindow = 128

// flagMemo holds the flag counts of one window of segments: what the
// store held when it was read, kept current by every flag written since.
// Segments past the newest message are in the window too (they have no
// flags yet), so a moderator's own sends do not read it again.
type flagMemo struct {
	lo, hi uint64 // inclusive; hi == 0: empty
	counts map[uint64]int64
}

// flagCount returns how many users flagged the message at seg: from the
// cache (which holds every count not yet durable), else from the window
// memo, else by reading the window around seg.
func (s *State) flagCount(seg uint64) (int64, error) {
	if n, ok := s.mod.counts.get(seg); ok {
		return n, nil
	}
	w := &s.mod.memo
	if w.hi == 0 || seg < w.lo || seg > w.hi {
		lo := seg - min(seg-1, flagWindow-1)
		hi := seg + flagWindow
		recs, err := s.log.Scan(persistence.TableAux, persistence.Range{After: flagCountKey(lo - 1), Before: flagCountKey(hi + 1)})
		if err != nil {
			return 0, err
		}
		*w = flagMemo{lo: lo, hi: hi, counts: make(map[uint64]int64, len(recs))}
		for _, r := range recs {
			k, ok := persistence.ParseU64(r.Key[1:])
			n, ok2 := persistence.ParseU64(r.Value)
			if !ok || !ok2 {
				return 0, ErrCorrupt
			}
			w.counts[k] = int64(n)
		}
	}
	return w.counts[seg], nil
}

// handleFlag records that the caller reports a message. A user flags a
// message once (a repeat changes nothing); a message that reaches the
// channel's auto_delete_flags is soft-deleted at once.
func (s *State) handleFlag(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.FlagArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := checkText("reason", a.Reason, s.cfg.Limits.MaxNameLen); err != nil {
		return nil, err
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	if err := s.canRead(c, m); err != nil {
		return nil, err
	}
	msg, perr := s.findMessage(a.MessageID)
	if perr != nil {
		return nil, perr
	}
	switch {
	case msg.Deleted:
		return nil, protocol.Errorf(protocol.CodeInvalidState, "message %s is deleted", a.MessageID)
	case msg.Type == protocol.MessageSystem:
		return nil, protocol.Errorf(protocol.CodeForbidden, "system messages cannot be flagged")
	case msg.User == c.User:
		return nil, protocol.Errorf(protocol.CodeForbidden, "you cannot flag your own message")
	}
	done, err := s.flagged(msg.Segment, c.User)
	if err != nil {
		return nil, internal(err)
	}
	n, err := s.flagCount(msg.Segment)
	if err != nil {
		return nil, internal(err)
	}
	if done {
		return struct{}{}, nil
	}
	n++
	var del *deletion
	if limit := s.meta.Channel.AutoDeleteFlags; limit > 0 && n >= int64(limit) {
		// Read before the flag is written: a refusal writes nothing.
		if del, err = s.planDeletion(msg); err != nil {
			return nil, internal(err)
		}
	}
	e := s.entry()
	e.Put(persistence.TableAux, flagStoreKey(msg.Segment, c.User), []byte(a.Reason))
	e.Put(persistence.TableAux, flagCountKey(msg.Segment), persistence.U64(uint64(n)))
	s.mod.flags.write(flagKey{msg.Segment, c.User}, true, s.cur.Index)
	s.mod.counts.write(msg.Segment, n, s.cur.Index)
	if w := &s.mod.memo; w.hi != 0 && msg.Segment >= w.lo && msg.Segment <= w.hi {
		w.counts[msg.Segment] = n
	}
	if del != nil {
		d := s.softDelete(msg, del, "")
		s.emit(protocol.EventMessageDeleted, autoDeleteEvent{Message: eventMessage{d}, Reason: "auto_delete_flags"})
	}
	return struct{}{}, nil
}

// autoDeleteEvent is the data of the message.deleted event of a message
// deleted by its flags.
type autoDeleteEvent struct {
	Message eventMessage `json:"message"`
	Reason  string       `json:"reason"`
}

// withFlagCount is m as the caller sees it: moderators also see how many
// users flagged it. m itself is never changed (it may be cached and shared).
func (s *State) withFlagCount(c Caller, m *protocol.Message) *protocol.Message {
	if m.Type == protocol.MessageSystem {
		return m
	}
	cm, err := s.member(c.User)
	if err != nil || !s.isModerator(c, cm) {
		return m
	}
	n, err := s.flagCount(m.Segment)
	if err != nil {
		return m
	}
	v := cloneMessage(m)
	v.FlagCount = &n
	return v
}
