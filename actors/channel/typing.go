package channel

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// OpTick is an internal op (never accepted from clients): time has passed.
// The adapter sends it at NextWake, so that typing that lapses, and typing
// changes held back by coalescing, are announced without a client command.
const OpTick = "_channel.tick"

// The typing set is in memory only. A typing.start lasts TypingTTL unless
// renewed by another; typing.stop, a send, or the lapse ends it. Watchers
// hear a typing event {user, active} when a user's state changes, at most
// one per user per TypingInterval: a change within the interval is held
// and announced when it ends, unless it was undone meanwhile (a stop and a
// start within a second announce nothing).
//
// Why a wake-up rather than lazy checks alone: a client that crashes while
// typing sends nothing more, and without a timed event its "is typing"
// would stay on every screen until someone else acts in the channel. The
// adapter keeps one timer per channel, armed for NextWake, never one per
// user.

// typist is one user's typing state.
type typist struct {
	want      bool      // typing: started, not stopped, not lapsed
	announced bool      // what watchers last heard
	expires   time.Time // when want lapses without a renewal
	lastEvent time.Time // when this user's last typing event went out
}

// typingEnabled reports whether typing events are on: off by default in
// live channels, on in the others; channel.update typing_events sets it.
func (s *State) typingEnabled() bool {
	if t := s.meta.Channel.TypingEvents; t != nil {
		return *t
	}
	return s.meta.Channel.Type != protocol.TypeLive
}

func (s *State) typingEventsView() *bool {
	on := s.typingEnabled()
	return &on
}

func (s *State) handleTypingStart(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.ChannelRef
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	m, perr := s.mustMember(c.User)
	if perr != nil {
		return nil, perr
	}
	// Typing needs the right to post, but not a send's rate-limit or
	// slow-mode turn: one types the next message while waiting for it.
	if _, err := s.mayPost(c, m); err != nil {
		return nil, err
	}
	if !s.typingEnabled() || c.User == "" {
		return struct{}{}, nil // accepted and ignored: typing is off here
	}
	ty := s.rich.typing
	t := ty[c.User]
	if t == nil {
		if len(ty) >= s.cfg.Rich.MaxTypists {
			s.settleTyping(now)
		}
		if len(ty) >= s.cfg.Rich.MaxTypists {
			return struct{}{}, nil // too many typing at once: not announced
		}
		t = &typist{}
		ty[c.User] = t
	}
	t.want = true
	t.expires = now.Add(s.cfg.Rich.TypingTTL)
	s.settleTypist(c.User, t, now)
	return struct{}{}, nil
}

func (s *State) handleTypingStop(c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	var a protocol.ChannelRef
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	s.typingSent(c.User, now)
	return struct{}{}, nil
}

// typingSent ends the user's typing (typing.stop, or a message sent).
func (s *State) typingSent(user string, now time.Time) {
	if t := s.rich.typing[user]; t != nil {
		t.want = false
		s.settleTypist(user, t, now)
	}
}

func (s *State) handleTick(_ Caller, _ json.RawMessage, now time.Time) (any, *protocol.Error) {
	s.settleTyping(now)
	s.settleReads(now)
	return struct{}{}, nil
}

// settleTyping brings every typist up to now.
func (s *State) settleTyping(now time.Time) {
	for u, t := range s.rich.typing {
		s.settleTypist(u, t, now)
	}
}

// settleTypist lapses an expired start, announces a change when the
// user's interval allows it, and forgets a user with nothing left to say.
func (s *State) settleTypist(user string, t *typist, now time.Time) {
	if t.want && !now.Before(t.expires) {
		t.want = false
	}
	quiet := now.Sub(t.lastEvent) >= s.cfg.Rich.TypingInterval
	if t.want != t.announced && quiet {
		t.announced, t.lastEvent = t.want, now
		s.emitEphemeral(protocol.EventTyping, protocol.TypingEvent{User: user, Active: t.want})
		return
	}
	if !t.want && !t.announced && quiet {
		delete(s.rich.typing, user)
	}
}

// Typing returns the users typing now, as watchers were last told.
func (s *State) Typing() []string {
	var out []string
	for u, t := range s.rich.typing {
		if t.announced {
			out = append(out, u)
		}
	}
	return out
}

// NextWake returns when the channel next needs OpTick, if ever: when a
// typing start lapses, or a held-back typing change or read move may be
// announced.
func (s *State) NextWake() (time.Time, bool) {
	if !s.exists || s.meta.Channel.Deleted {
		return time.Time{}, false
	}
	var at time.Time
	earliest := func(t time.Time) {
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	for _, t := range s.rich.typing {
		if t.want {
			earliest(t.expires)
		}
		if t.want != t.announced || !t.want {
			earliest(t.lastEvent.Add(s.cfg.Rich.TypingInterval))
		}
	}
	for _, r := range s.rich.reads {
		earliest(r.lastEvent.Add(s.cfg.Rich.ReadInterval))
	}
	return at, !at.IsZero()
}
