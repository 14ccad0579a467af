package channel

import (
	"encoding/json"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// OpRewatch is an internal op (never accepted from clients): a gateway
// watches again, for many of its sessions at once, after the channel's
// activation changed (it moved, or its node restarted) and the new
// activation does not know them. One request per gateway and channel
// replaces one per session — a live room's 50,000 viewers on a gateway
// re-watch with a few requests.
const OpRewatch = "_channel.rewatch"

// MaxRewatchSessions bounds the sessions of one rewatch request.
const MaxRewatchSessions = 5000

// RewatchArgs are the args of OpRewatch.
type RewatchArgs struct {
	// SinceSeq is the lowest position among the sessions: the reply
	// carries every event after it, and the gateway gives each session the
	// ones after its own position.
	SinceSeq uint64           `json:"since_seq"`
	Sessions []RewatchSession `json:"sessions"`
}

// RewatchSession is one session of the gateway.
type RewatchSession struct {
	Session string `json:"session"`
	User    string `json:"user"`
	Admin   bool   `json:"admin,omitempty"`
	// Perms is the session's join-token grant in this channel, which the
	// gateway keeps to restore it here (see perms.go).
	Perms []string `json:"perms,omitempty"`
}

// RefusedSession is a session the channel would not take back, and why.
type RefusedSession struct {
	Session string          `json:"session"`
	Error   *protocol.Error `json:"error"`
}

// RewatchResult answers OpRewatch.
type RewatchResult struct {
	Accepted      []string          `json:"accepted"`
	Refused       []RefusedSession  `json:"refused,omitempty"`
	Seq           uint64            `json:"seq"`
	Events        []json.RawMessage `json:"events,omitempty"`
	EventsHasMore bool              `json:"events_has_more,omitempty"`
	Reset         bool              `json:"reset,omitempty"`
}

func (s *State) handleRewatch(c Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a RewatchArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if c.Gateway == "" {
		return nil, badRequest("only a gateway can rewatch")
	}
	if len(a.Sessions) > MaxRewatchSessions {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "%d sessions, at most %d per rewatch", len(a.Sessions), MaxRewatchSessions)
	}
	if _, _, _, err := s.checkSince(a.SinceSeq); err != nil {
		return nil, err
	}
	// Read everything first: a failed read must leave nothing changed.
	events, more, reset, perr := s.replay(a.SinceSeq)
	if perr != nil {
		return nil, perr
	}
	members := make([]*memberRecord, len(a.Sessions))
	for i, rs := range a.Sessions {
		m, perr := s.mustMember(rs.User)
		if perr != nil {
			return nil, perr
		}
		members[i] = m
	}
	r := &RewatchResult{Accepted: []string{}, Seq: s.meta.LastSeq, Events: events, EventsHasMore: more, Reset: reset}
	for i, rs := range a.Sessions {
		sc := Caller{User: rs.User, Admin: rs.Admin, Session: rs.Session, Gateway: c.Gateway, Perms: rs.Perms}
		var why *protocol.Error
		switch {
		case !rs.Admin && bannedAt(members[i], s.now):
			why = protocol.Errorf(protocol.CodeBanned, "banned from channel %s", s.id)
		default:
			if why = s.canRead(sc, members[i]); why == nil {
				why = s.watch(sc)
			}
		}
		if why != nil {
			r.Refused = append(r.Refused, RefusedSession{Session: rs.Session, Error: why})
			continue
		}
		r.Accepted = append(r.Accepted, rs.Session)
	}
	return r, nil
}
