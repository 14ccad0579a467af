package user

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Presence is soft state with leases. A user is online while the user's
// actor holds at least one live session lease, wherever the session's
// gateway runs. A session's lease starts at login and is renewed by its
// gateway every heartbeat (OpPresence renew); it ends when the gateway
// reports the session closed, when the gateway's node is known dead
// (OpGatewayGone), or when it is not renewed within its TTL — so a gateway
// that crashes or hangs cannot leave its users online for longer than one
// TTL. Gateways that have sessions watching the user's presence hold a
// lease too (OpPresence watch), renewed with the same heartbeat; the actor
// sends each presence change once to each of them, and they fan it out.
//
// Leases live in memory only: an actor that restarts or moves learns its
// sessions and watchers again from the next heartbeat. last_seen, the time
// the user last went offline, is persisted.

// Internal ops (never accepted from clients).
const (
	OpPresence    = "_user.presence"     // args: PresenceArgs → {user}; caller: the gateway
	OpGatewayGone = "_user.gateway_gone" // args: GatewayGoneArgs
	OpTick        = "_user.tick"         // time passed: leases may have lapsed
)

// PresenceArgs are what a gateway reports about one user.
type PresenceArgs struct {
	// Renew lists sessions of the caller's gateway that are open: each
	// lease is (re)started for TTLMS.
	Renew []string `json:"renew,omitempty"`
	// Closed lists sessions of the caller's gateway that ended.
	Closed []string `json:"closed,omitempty"`
	// Watch starts (true) or renews, or ends (false), the caller gateway's
	// presence watch; the user must exist to be watched.
	Watch *bool `json:"watch,omitempty"`
	// TTLMS is the lease length (0: the configured default).
	TTLMS int64 `json:"ttl_ms,omitempty"`
}

// GatewayGoneArgs name a gateway whose node is gone.
type GatewayGoneArgs struct {
	Gateway string `json:"gateway"`
}

// presenceTopic prefixes the Events channel field of presence events sent
// to a gateway. It holds a NUL, which no channel id can, so a gateway tells
// presence apart from channel events.
const presenceTopic = "\x00presence/"

// PresenceTopic is the Events channel field of the user's presence events.
func PresenceTopic(user string) string { return presenceTopic + user }

// PresenceUser returns the user a presence topic names.
func PresenceUser(topic string) (string, bool) {
	return strings.CutPrefix(topic, presenceTopic)
}

// RichConfig bounds a user's presence and file records.
type RichConfig struct {
	// PresenceTTL is a lease's length when the gateway gives none.
	PresenceTTL time.Duration
	// MaxPresenceTTL caps the length a gateway may ask for.
	MaxPresenceTTL time.Duration
	// MaxSessions bounds the session leases kept per user; sessions past
	// it are not tracked (the user is online anyway).
	MaxSessions int
	// MaxPresenceWatchers bounds the gateways watching one user.
	MaxPresenceWatchers int
	// MaxFiles bounds the files one user may upload.
	MaxFiles int
	// MaxFileChannels bounds the channels one file may be sent to.
	MaxFileChannels int
}

// DefaultRichConfig returns the defaults.
func DefaultRichConfig() RichConfig {
	return RichConfig{
		PresenceTTL:         30 * time.Second,
		MaxPresenceTTL:      10 * time.Minute,
		MaxSessions:         1024,
		MaxPresenceWatchers: 4096,
		MaxFiles:            10000,
		MaxFileChannels:     16,
	}
}

type sessionKey struct{ gateway, session string }

type presenceState struct {
	sessions map[sessionKey]time.Time // lease → expiry
	watchers map[string]time.Time     // gateway → expiry
	// lapsed are the watchers whose lease lapsed in the command being
	// handled: they still hear its events. A gateway that stops renewing
	// lets its sessions' and its watches' leases lapse at the same
	// instant, and its watchers must still hear those sessions go.
	lapsed []string
	// lastSeen is when the user last went offline (persisted).
	lastSeen time.Time
	// lastActive is the newest login or renewal: last_seen while online.
	lastActive time.Time
}

// presenceKey is the aux record holding last_seen.
var presenceKey = []byte("presence")

type presenceRecord struct {
	LastSeen time.Time `json:"last_seen"`
}

var richOps = map[string]func(s *State, cmd Command, now time.Time, eff *Effects) (any, *protocol.Error){
	OpPresence:    (*State).handlePresence,
	OpGatewayGone: (*State).handleGatewayGone,
	OpTick:        (*State).handleTick,
	OpFileAdd:     (*State).handleFileAdd,
	OpFileUse:     (*State).handleFileUse,
	OpFileGet:     (*State).handleFileGet,
}

// loadRich sets the presence and file state from the user's aux records
// "presence" and "files" (recs may hold others, which it skips).
func (s *State) loadRich(recs []persistence.Record) error {
	s.presence = presenceState{sessions: make(map[sessionKey]time.Time)} // watchers: made by the first watch
	s.files = fileState{}                                                // pending: made by the first upload
	for _, r := range recs {
		switch {
		case bytes.Equal(r.Key, presenceKey):
			var pr presenceRecord
			if json.Unmarshal(r.Value, &pr) != nil {
				return fmt.Errorf("corrupt presence record")
			}
			s.presence.lastSeen = pr.LastSeen
		case bytes.Equal(r.Key, fileCountKey):
			n, err := strconv.Atoi(string(r.Value))
			if err != nil {
				return fmt.Errorf("corrupt file count")
			}
			s.files.count = n
		}
	}
	return nil
}

func (s *State) online() bool { return len(s.presence.sessions) > 0 }

// presenceView is the status and last_seen the user object shows.
func (s *State) presenceView() (string, protocol.Time) {
	if s.online() {
		return protocol.StatusOnline, protocol.At(s.presence.lastActive)
	}
	return protocol.StatusOffline, protocol.At(s.presence.lastSeen)
}

func (s *State) ttl(ms int64) time.Duration {
	r := s.cfg.Rich
	if ms <= 0 {
		return r.PresenceTTL
	}
	return min(time.Duration(ms)*time.Millisecond, r.MaxPresenceTTL)
}

// renew starts or renews one session lease.
func (s *State) renew(k sessionKey, ttl time.Duration, now time.Time) {
	ss := s.presence.sessions
	if _, ok := ss[k]; !ok && len(ss) >= s.cfg.Rich.MaxSessions {
		return
	}
	ss[k] = now.Add(ttl)
	if now.After(s.presence.lastActive) {
		s.presence.lastActive = now
	}
}

// loggedIn starts the lease of the session that logged in.
func (s *State) loggedIn(c Caller, a LoginArgs, now time.Time, eff *Effects) {
	if c.Session == "" || c.Gateway == "" {
		return
	}
	was := s.online()
	s.renew(sessionKey{c.Gateway, c.Session}, s.ttl(a.PresenceTTLMS), now)
	s.settlePresence(was, now, eff)
}

func (s *State) handlePresence(cmd Command, now time.Time, eff *Effects) (any, *protocol.Error) {
	var a PresenceArgs
	if err := protocol.DecodeArgs(cmd.Args, &a); err != nil {
		return nil, err
	}
	gw := cmd.Caller.Gateway
	if gw == "" {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "presence reports come from a gateway")
	}
	if a.Watch != nil && *a.Watch {
		// Refuse before changing anything.
		if !s.exists {
			return nil, protocol.Errorf(protocol.CodeNotFound, "no user %s", s.id)
		}
		if _, has := s.presence.watchers[gw]; !has && len(s.presence.watchers) >= s.cfg.Rich.MaxPresenceWatchers {
			return nil, protocol.Errorf(protocol.CodeUnavailable, "user %s has %d presence watchers", s.id, len(s.presence.watchers))
		}
	}
	was := s.online()
	lapsed := s.expire(now)
	for _, id := range a.Closed {
		delete(s.presence.sessions, sessionKey{gw, id})
	}
	ttl := s.ttl(a.TTLMS)
	for _, id := range a.Renew {
		s.renew(sessionKey{gw, id}, ttl, now)
	}
	switch {
	case a.Watch == nil:
	case *a.Watch:
		if s.presence.watchers == nil {
			s.presence.watchers = make(map[string]time.Time)
		}
		s.presence.watchers[gw] = now.Add(ttl)
	default:
		delete(s.presence.watchers, gw)
	}
	offAt := now
	if lapsed && len(a.Closed) == 0 {
		offAt = s.presence.lastActive
	}
	s.settlePresence(was, offAt, eff)
	return userResult(s.view(cmd.Caller)), nil
}

// handleGatewayGone ends every lease of a gateway whose node is gone.
func (s *State) handleGatewayGone(cmd Command, now time.Time, eff *Effects) (any, *protocol.Error) {
	var a GatewayGoneArgs
	if err := protocol.DecodeArgs(cmd.Args, &a); err != nil {
		return nil, err
	}
	was := s.online()
	for k := range s.presence.sessions {
		if k.gateway == a.Gateway {
			delete(s.presence.sessions, k)
		}
	}
	delete(s.presence.watchers, a.Gateway)
	s.settlePresence(was, now, eff)
	return struct{}{}, nil
}

func (s *State) handleTick(_ Command, now time.Time, eff *Effects) (any, *protocol.Error) {
	was := s.online()
	s.expire(now)
	s.settlePresence(was, s.presence.lastActive, eff)
	return struct{}{}, nil
}

// expire ends the leases that lapsed by now and reports whether a session
// lease did.
func (s *State) expire(now time.Time) bool {
	lapsed := false
	for k, at := range s.presence.sessions {
		if !now.Before(at) {
			delete(s.presence.sessions, k)
			lapsed = true
		}
	}
	for gw, at := range s.presence.watchers {
		if !now.Before(at) {
			delete(s.presence.watchers, gw)
			s.presence.lapsed = append(s.presence.lapsed, gw)
		}
	}
	return lapsed
}

// settlePresence announces a change of status: going offline records
// last_seen (persisted) as offAt.
func (s *State) settlePresence(wasOnline bool, offAt time.Time, eff *Effects) {
	if wasOnline == s.online() {
		return
	}
	if !s.online() {
		if offAt.Before(s.presence.lastSeen) {
			offAt = s.presence.lastSeen
		}
		s.presence.lastSeen = offAt
		b, _ := json.Marshal(presenceRecord{LastSeen: offAt})
		s.entry(eff).Put(persistence.TableAux, presenceKey, b)
	}
	status, lastSeen := s.presenceView()
	eff.Events = append(eff.Events, protocol.AppendPresenceEvent(nil, &protocol.PresenceEvent{User: s.id, Status: status, LastSeen: lastSeen}))
}

// SessionGateways returns the gateways that hold the user's open sessions.
func (s *State) SessionGateways() []string {
	var out []string
	for k := range s.presence.sessions {
		if !slices.Contains(out, k.gateway) {
			out = append(out, k.gateway)
		}
	}
	sort.Strings(out)
	return out
}

// noticeTopic prefixes the Events channel field of notices sent to a
// gateway: like presenceTopic, it holds a NUL no channel id can.
const noticeTopic = "\x00notice/"

// NoticeTopic is the Events channel field of the user's notices.
func NoticeTopic(user string) string { return noticeTopic + user }

// NoticeUser returns the user a notice topic names.
func NoticeUser(topic string) (string, bool) {
	return strings.CutPrefix(topic, noticeTopic)
}

// PresenceGateways returns the gateways watching the user's presence.
func (s *State) PresenceGateways() []string {
	out := make([]string, 0, len(s.presence.watchers))
	for gw := range s.presence.watchers {
		out = append(out, gw)
	}
	sort.Strings(out)
	return out
}

// eventGateways returns where a command's presence events go: the
// watching gateways, and those whose watch lapsed in the command.
func (s *State) eventGateways() []string {
	out := s.PresenceGateways()
	for _, gw := range s.presence.lapsed {
		if _, ok := s.presence.watchers[gw]; !ok {
			out = append(out, gw)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Online reports whether some session lease is live.
func (s *State) Online() bool { return s.online() }

// Busy reports whether the actor holds leases it would lose by leaving
// memory.
func (s *State) Busy() bool { return s.online() || len(s.presence.watchers) > 0 }

// NextWake returns when the next lease lapses, if any does.
func (s *State) NextWake() (time.Time, bool) {
	var at time.Time
	for _, t := range s.presence.sessions {
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	for _, t := range s.presence.watchers {
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	return at, !at.IsZero()
}
