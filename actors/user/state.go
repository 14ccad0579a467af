// Package user holds a user's rules as a pure state machine: the profile
// (created on first login and refreshed from the session token's claims)
// and the index of channels the user belongs to. Like package channel it
// performs no I/O: it reads through a persistence.Reader and returns the
// entry to persist.
package user

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Internal ops (never accepted from clients).
const (
	OpLogin    = "_user.login"    // args: LoginArgs → {user}
	OpGet      = "_user.get"      // → {user}
	OpIndex    = "_user.index"    // args: IndexArgs; a notification
	OpChannels = "_user.channels" // → ChannelsResult
)

// LoginArgs carry a session token's profile claims.
type LoginArgs struct {
	Name  string `json:"name,omitempty"`
	Image string `json:"image,omitempty"`
	// PresenceTTLMS is how long the session counts as online without a
	// renewal (see OpPresence); 0: the configured default.
	PresenceTTLMS int64 `json:"presence_ttl_ms,omitempty"`
}

// Append appends a as encoding/json writes it (fields left out when
// empty), without reflection: every connect sends one.
func (a LoginArgs) Append(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, '{')
	field := func(key string) {
		if len(dst) > start+1 {
			dst = append(dst, ',')
		}
		dst = append(dst, key...)
	}
	if a.Name != "" {
		field(`"name":`)
		dst = protocol.AppendString(dst, a.Name)
	}
	if a.Image != "" {
		field(`"image":`)
		dst = protocol.AppendString(dst, a.Image)
	}
	if a.PresenceTTLMS != 0 {
		field(`"presence_ttl_ms":`)
		dst = strconv.AppendInt(dst, a.PresenceTTLMS, 10)
	}
	return append(dst, '}')
}

// CheckClaims applies to a session token's name and image claims the
// bounds user.update applies to the same fields, so a token cannot store
// what the op would refuse. The gateway checks them at connect; the
// user's actor checks them again at login.
func CheckClaims(name, image string, l protocol.Limits) *protocol.Error {
	if perr := checkField("name", name, l.MaxNameLen); perr != nil {
		return perr
	}
	return checkField("image", image, l.MaxTextLen)
}

// checkField bounds a profile field: valid UTF-8, at most max bytes.
func checkField(field, v string, max int) *protocol.Error {
	if !utf8.ValidString(v) {
		return protocol.Errorf(protocol.CodeBadRequest, "%s must be valid UTF-8", field)
	}
	if len(v) > max {
		return protocol.Errorf(protocol.CodeTooLong, "%s is %d bytes, the limit is %d", field, len(v), max)
	}
	return nil
}

// IndexArgs add or remove one channel of the user's index. With a
// reason, the user's open sessions are told too: channel.added (with the
// channel object, View) or channel.removed.
type IndexArgs struct {
	Channel string          `json:"channel"`
	Member  bool            `json:"member"`
	Reason  string          `json:"reason,omitempty"`
	View    json.RawMessage `json:"view,omitempty"`
}

// ChannelsResult lists the user's channels, most recently joined first.
type ChannelsResult struct {
	Channels []string `json:"channels"`
}

// Config bounds a user's state.
type Config struct {
	Limits protocol.Limits
	// MaxChannels bounds the channel index; channels joined past it are
	// still joined but not listed by channels.list.
	MaxChannels int
	// Rich bounds presence and file records.
	Rich RichConfig
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Limits: protocol.DefaultLimits(), MaxChannels: 1000, Rich: DefaultRichConfig()}
}

// Caller is who issued a command.
type Caller struct {
	User  string
	Admin bool
	// Session and Gateway identify the session (and the remote address of
	// the node whose gateway holds it) when a session issued the command.
	Session string
	Gateway string
}

// Command is one request to the user.
type Command struct {
	Op     string
	Args   json.RawMessage
	Caller Caller
}

// Effects is what a command produced.
type Effects struct {
	Result []byte
	Err    *protocol.Error
	Entry  *persistence.Entry
	Index  uint64
	// ReplyEarly says the result may go to the caller before Entry is
	// committed (Events and Notices still wait for it): the result
	// acknowledges no write. A login stores a new user's profile, or the
	// name and image its claims change, but connect promises no stored
	// profile (it succeeds without one when the user's node is down), so
	// a connect need not wait for the commit's fsync. A read after it
	// goes through the same actor, behind the write.
	ReplyEarly bool
	// Events are event frames for the gateways in EventsTo (those
	// watching the user's presence), sent once Entry is durable.
	Events   [][]byte
	EventsTo []string
	// Notices are event frames for all of the user's sessions, sent to
	// the gateways that hold them (SessionGateways).
	Notices [][]byte
}

// State is one user.
type State struct {
	id       string
	cfg      *Config // the node's, shared by every user
	exists   bool
	profile  protocol.User
	channels map[string]time.Time // channel → joined at
	index    uint64
	log      persistence.Reader
	presence presenceState
	files    fileState
}

// Load reads the user from log. cfg is kept (not copied): the node's
// configuration, shared by every user it holds.
func Load(id string, log persistence.Reader, cfg *Config) (*State, error) {
	s := &State{id: id, cfg: cfg, log: log} // channels: made by the first index entry
	// One pass over the user's records (a new user has none): its profile,
	// its channel index, and of its aux records the two single ones,
	// "files" and "presence" (file records, "file\x00" id, sort before
	// the range, and no other aux key sorts inside it).
	recs, err := persistence.ScanTables(log, []persistence.TableRange{
		{Table: persistence.TableMeta},
		{Table: persistence.TableMember},
		{Table: persistence.TableAux, Range: persistence.Range{After: []byte("file\x01"), Before: []byte("presence\x00")}},
	})
	if err != nil {
		return nil, fmt.Errorf("load user %s: %w", id, err)
	}
	s.profile = protocol.User{ID: id}
	for _, r := range recs[0] {
		if len(r.Key) != 0 {
			continue
		}
		if err := json.Unmarshal(r.Value, &s.profile); err != nil {
			return nil, fmt.Errorf("load user %s: corrupt profile", id)
		}
		// Metadata stored before the server refused invalid UTF-8 is
		// repaired on the way out.
		s.profile.Metadata = protocol.Sanitize(s.profile.Metadata)
		s.exists = true
	}
	if len(recs[1]) > 0 {
		s.channels = make(map[string]time.Time, len(recs[1]))
	}
	for _, r := range recs[1] {
		var at time.Time
		_ = at.UnmarshalBinary(r.Value)
		s.channels[string(r.Key)] = at
	}
	if err := s.loadRich(recs[2]); err != nil {
		return nil, fmt.Errorf("load user %s: %w", id, err)
	}
	return s, nil
}

// Exists reports whether the user has ever been stored.
func (s *State) Exists() bool { return s.exists }

// Profile returns the user's profile.
func (s *State) Profile() protocol.User { return s.profile }

// Handle applies one command at time now.
func (s *State) Handle(cmd Command, now time.Time) *Effects {
	eff := &Effects{}
	s.presence.lapsed = s.presence.lapsed[:0]
	result, perr := s.dispatch(cmd, now, eff)
	if perr != nil {
		if eff.Entry != nil {
			panic(fmt.Sprintf("user: %s refused after writing", cmd.Op))
		}
		eff.Err = perr
		return eff
	}
	if b, ok := result.(encodedResult); ok {
		eff.Result = b
	} else {
		b, err := json.Marshal(result)
		if err != nil {
			panic("user: encode result: " + err.Error())
		}
		eff.Result = b
	}
	if len(eff.Events) > 0 {
		eff.EventsTo = s.eventGateways()
	}
	return eff
}

// encodedResult is a result already encoded.
type encodedResult []byte

// userResult is the result {"user": u}.
func userResult(u protocol.User) encodedResult {
	b := append(make([]byte, 0, 192+len(u.Name)+len(u.Description)+len(u.Image)+len(u.Metadata)), `{"user":`...)
	return append(protocol.AppendUser(b, &u), '}')
}

func (s *State) dispatch(cmd Command, now time.Time, eff *Effects) (any, *protocol.Error) {
	switch cmd.Op {
	case OpLogin:
		var a LoginArgs
		if err := protocol.DecodeArgs(cmd.Args, &a); err != nil {
			return nil, err
		}
		if perr := CheckClaims(a.Name, a.Image, s.cfg.Limits); perr != nil {
			return nil, perr
		}
		p := s.profile
		changed := !s.exists
		if a.Name != "" && a.Name != p.Name {
			p.Name, changed = a.Name, true
		}
		if a.Image != "" && a.Image != p.Image {
			p.Image, changed = a.Image, true
		}
		if changed {
			s.saveProfile(p, now, eff)
			eff.ReplyEarly = true
		}
		s.loggedIn(cmd.Caller, a, now, eff)
		// The reply is the connecting session's own view: it is online.
		// The gateway sends it to the client as it is.
		u := s.view(cmd.Caller)
		u.Status = protocol.StatusOnline
		return userResult(u), nil
	case protocol.OpMe, OpGet:
		if !s.exists && cmd.Op == OpGet {
			return nil, protocol.Errorf(protocol.CodeNotFound, "no user %s", s.id)
		}
		return userResult(s.view(cmd.Caller)), nil
	case protocol.OpUserUpdate:
		var a protocol.UserUpdateArgs
		if err := protocol.DecodeArgs(cmd.Args, &a); err != nil {
			return nil, err
		}
		l := s.cfg.Limits
		p := s.profile
		if a.Name != nil {
			if perr := checkField("name", *a.Name, l.MaxNameLen); perr != nil {
				return nil, perr
			}
			p.Name = *a.Name
		}
		if a.Description != nil {
			if perr := checkField("description", *a.Description, l.MaxTextLen); perr != nil {
				return nil, perr
			}
			p.Description = *a.Description
		}
		if a.Image != nil {
			if perr := checkField("image", *a.Image, l.MaxTextLen); perr != nil {
				return nil, perr
			}
			p.Image = *a.Image
		}
		if a.Metadata != nil {
			if perr := protocol.CheckObject("metadata", a.Metadata, l.MaxDataBytes); perr != nil {
				return nil, perr
			}
			p.Metadata = compactObject(a.Metadata)
		}
		s.saveProfile(p, now, eff)
		return userResult(s.view(cmd.Caller)), nil
	case OpIndex:
		var a IndexArgs
		if err := protocol.DecodeArgs(cmd.Args, &a); err != nil {
			return nil, err
		}
		if a.Channel == "" {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "channel is required")
		}
		_, had := s.channels[a.Channel]
		switch {
		case a.Member && !had:
			if s.channels == nil {
				s.channels = make(map[string]time.Time)
			}
			s.channels[a.Channel] = now
			at, _ := now.MarshalBinary()
			s.entry(eff).Put(persistence.TableMember, []byte(a.Channel), at)
		case !a.Member && had:
			delete(s.channels, a.Channel)
			s.entry(eff).Del(persistence.TableMember, []byte(a.Channel))
		}
		if a.Reason != "" && s.online() {
			eff.Notices = append(eff.Notices, noticeFrame(a))
		}
		return struct{}{}, nil
	case OpChannels:
		ids := make([]string, 0, len(s.channels))
		for id := range s.channels {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool {
			a, b := s.channels[ids[i]], s.channels[ids[j]]
			if !a.Equal(b) {
				return a.After(b)
			}
			return ids[i] < ids[j]
		})
		if len(ids) > s.cfg.MaxChannels {
			ids = ids[:s.cfg.MaxChannels]
		}
		return ChannelsResult{Channels: ids}, nil
	}
	if cmd.Op == OpImport {
		return s.handleImport(cmd, now, eff)
	}
	if h, ok := richOps[cmd.Op]; ok {
		return h(s, cmd, now, eff)
	}
	return nil, protocol.Errorf(protocol.CodeBadRequest, "unknown op %q", cmd.Op)
}

// Handles reports whether a user's actor answers the protocol op (the
// ops of protocol.RouteUser, sent to the caller's own user).
func Handles(op string) bool {
	switch op {
	case protocol.OpMe, protocol.OpUserUpdate:
		return true
	}
	return false
}

// noticeFrame is the channel.added or channel.removed frame of an index
// change: no seq, no top-level channel.
func noticeFrame(a IndexArgs) []byte {
	if a.Member {
		view := a.View
		if len(view) == 0 {
			view = json.RawMessage(`{"id":` + string(protocol.AppendString(nil, a.Channel)) + `}`)
		}
		b, _ := json.Marshal(struct {
			Channel json.RawMessage `json:"channel"`
			Reason  string          `json:"reason"`
		}{view, a.Reason})
		return protocol.AppendEvent(nil, protocol.EventChannelAdded, "", 0, b)
	}
	b, _ := json.Marshal(protocol.ChannelRemovedData{Channel: a.Channel, Reason: a.Reason})
	return protocol.AppendEvent(nil, protocol.EventChannelRemoved, "", 0, b)
}

func (s *State) view(c Caller) protocol.User {
	u := s.profile
	u.ID = s.id
	u.Status, u.LastSeen = s.presenceView()
	// admin is a property of the session's token, shown on one's own user.
	u.Admin = c.User == s.id && c.Admin
	return u
}

func (s *State) entry(eff *Effects) *persistence.Entry {
	if eff.Entry == nil {
		s.index++
		eff.Entry = &persistence.Entry{}
		eff.Index = s.index
	}
	return eff.Entry
}

func (s *State) saveProfile(p protocol.User, now time.Time, eff *Effects) {
	p.ID = s.id
	if !s.exists {
		p.CreatedAt = protocol.At(now)
	}
	p.UpdatedAt = protocol.At(now)
	p.Status, p.LastSeen = "", protocol.Time{} // presence is not persisted here
	s.entry(eff).Put(persistence.TableMeta, nil, protocol.AppendUser(nil, &p))
	s.profile = p
	s.exists = true
}

// compactObject returns an object without insignificant whitespace, and nil
// for null: metadata set to null is cleared (left out of the user object),
// as it is for channels and messages.
func compactObject(v json.RawMessage) json.RawMessage {
	if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return append(json.RawMessage(nil), v...)
	}
	return b.Bytes()
}

// ReadOnly reports whether op never writes an entry: a store that refuses
// writes (a full disk) still serves it.
func ReadOnly(op string) bool {
	switch op {
	case protocol.OpMe, OpGet, OpChannels, OpFileGet:
		return true
	}
	return false
}
