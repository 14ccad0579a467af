package channel

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// RichConfig bounds the rich-messaging state of one channel.
type RichConfig struct {
	// AuxCache is how many aux records (reactions, favorites, counters,
	// thread index and file records) stay cached beyond pending ones.
	AuxCache int
	// MaxFavorites bounds one user's favorites in one channel.
	MaxFavorites int
	// TypingTTL is how long a typing.start lasts without a renewal.
	TypingTTL time.Duration
	// TypingInterval is the least time between two typing events of one
	// user (start and stop alike); changes within it are coalesced.
	TypingInterval time.Duration
	// MaxTypists bounds the users tracked as typing at once; further
	// typists are not announced until a slot frees.
	MaxTypists int
	// ReadInterval is the least time between two read events of one user;
	// moves within it are coalesced (readstate.go).
	ReadInterval time.Duration
	// ScanBudget bounds the messages one filtered messages.history page
	// (search, top_level, a thread) examines (0: 10000).
	ScanBudget int
}

// DefaultRichConfig returns the defaults.
func DefaultRichConfig() RichConfig {
	return RichConfig{
		AuxCache:       8192,
		MaxFavorites:   1000,
		TypingTTL:      6 * time.Second,
		TypingInterval: time.Second,
		MaxTypists:     256,
		ReadInterval:   time.Second,
	}
}

// richState is the channel's in-memory rich-messaging state.
type richState struct {
	aux    *cache[string, auxVal]
	typing map[string]*typist
	reads  map[string]*readCursor // read events held back (readstate.go)
	// sent is the segment the command with entry index sentIndex just
	// created: nobody has reacted to it or marked it yet, so its view
	// costs no read.
	sent, sentIndex uint64
}

func newRichState(cfg RichConfig) richState {
	if cfg.AuxCache <= 0 {
		cfg.AuxCache = DefaultRichConfig().AuxCache
	}
	return richState{aux: newCache[string, auxVal](cfg.AuxCache), typing: make(map[string]*typist),
		reads: make(map[string]*readCursor)}
}

// userCounts are one user's reaction and favorite counts in the channel,
// kept so that a page view skips the scans for users who have none.
type userCounts struct {
	Reactions int64 `json:"r,omitempty"`
	Favorites int64 `json:"f,omitempty"`
}

func (s *State) userCounts(user string) (userCounts, error) {
	var uc userCounts
	v, ok, err := s.auxGet(countKey(user))
	if err != nil || !ok {
		return uc, err
	}
	if json.Unmarshal(v, &uc) != nil {
		return uc, ErrCorrupt
	}
	return uc, nil
}

func (s *State) putUserCounts(user string, uc userCounts) {
	if uc == (userCounts{}) {
		s.auxDel(countKey(user))
		return
	}
	s.auxPut(countKey(user), encode(uc))
}

// personalize is one message as the caller sees it: with the caller's
// my_reactions and favorite. It is best effort: a failed read leaves those
// fields out (results of writes use it; reads use personalizeAll, which
// reports the failure).
func (s *State) personalize(c Caller, m *protocol.Message) *protocol.Message {
	out, err := s.personalizeAll(c, []*protocol.Message{m})
	if err != nil {
		return m
	}
	return out[0]
}

// pageSpread is how sparse a page may be (segments spanned per message)
// before its per-caller records are read per message rather than by one
// range scan: a thread page can span a long stretch of the channel, and
// a range scan would read every reaction of the caller in it.
const pageSpread = 4

// personalizeAll returns ms as the caller sees them. It costs no read for
// a caller without reactions or favorites in the channel (one counter
// read, cached), else one range scan per kind for the page.
func (s *State) personalizeAll(c Caller, ms []*protocol.Message) ([]*protocol.Message, error) {
	out := make([]*protocol.Message, len(ms))
	copy(out, ms)
	if c.User == "" || len(ms) == 0 {
		return out, nil
	}
	if len(ms) == 1 && s.cur != nil && s.cur.Index != 0 && s.cur.Index == s.rich.sentIndex && ms[0].Segment == s.rich.sent {
		out[0] = ownView(ms[0], nil, false) // just sent: nothing of the reader's yet
		return out, nil
	}
	uc, err := s.userCounts(c.User)
	if err != nil {
		return nil, err
	}
	lo, hi := ms[0].Segment, ms[0].Segment
	reacted := false
	for _, m := range ms {
		lo, hi = min(lo, m.Segment), max(hi, m.Segment)
		reacted = reacted || (len(m.Reactions) > 0 && !m.Deleted)
	}
	dense := hi-lo+1 <= uint64(pageSpread*len(ms))
	mine := map[uint64][]string{}
	if uc.Reactions > 0 && reacted {
		pre := reactUserPrefix(c.User)
		scan := func(from, to uint64) error {
			after := append(append(append([]byte{}, pre...), persistence.U64(from-1)...), 0xff)
			before := append(append([]byte{}, pre...), persistence.U64(to+1)...)
			recs, err := s.auxScan(after, before, 0, false)
			for _, r := range recs {
				k := r.Key[len(pre):]
				seg, _ := persistence.ParseU64(k[:8])
				mine[seg] = append(mine[seg], string(k[8:]))
			}
			return err
		}
		if dense {
			err = scan(lo, hi)
		} else {
			for _, m := range ms {
				if len(m.Reactions) > 0 && !m.Deleted && err == nil {
					err = scan(m.Segment, m.Segment)
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	favs := map[uint64]bool{}
	if uc.Favorites > 0 {
		if dense {
			recs, err := s.auxScan(favKey(c.User, lo-1), favKey(c.User, hi+1), 0, false)
			if err != nil {
				return nil, err
			}
			pre := len(favUserPrefix(c.User))
			for _, r := range recs {
				seg, _ := persistence.ParseU64(r.Key[pre:])
				favs[seg] = true
			}
		} else {
			for _, m := range ms {
				_, ok, err := s.auxGet(favKey(c.User, m.Segment))
				if err != nil {
					return nil, err
				}
				favs[m.Segment] = ok
			}
		}
	}
	for i, m := range out {
		if m.Deleted {
			out[i] = ownView(m, nil, false)
			continue
		}
		out[i] = ownView(m, mine[m.Segment], favs[m.Segment])
	}
	return out, nil
}

// ownView is m with the reader's own fields set (always present in what a
// reader reads, even when empty). m itself is never changed: it may be
// cached and shared.
// sentView is the reply to a send: the caller's view of the message
// just sent (nothing of theirs on it yet, and no flags), written around
// the message's encoding enc. It is the JSON of
// MessageResult{viewMessage(c, m)}, fields in another order.
func (s *State) sentView(c Caller, m *protocol.Message, enc []byte) json.RawMessage {
	const own = `,"my_reactions":[],"favorite":false`
	const flags = `,"flag_count":0`
	b := make([]byte, 0, len(`{"message":}`)+len(enc)+len(own)+len(flags))
	b = append(b, `{"message":`...)
	b = append(b, enc[:len(enc)-1]...)
	b = append(b, own...)
	if cm, err := s.member(c.User); err == nil && s.isModerator(c, cm) {
		b = append(b, flags...)
	}
	return append(b, "}}"...)
}

func ownView(m *protocol.Message, mine []string, fav bool) *protocol.Message {
	v := cloneMessage(m)
	if mine == nil {
		mine = []string{}
	}
	v.MyReactions, v.Favorite = mine, &fav
	return v
}
