// Package channel holds a channel's rules as a pure state machine: segments
// and seqs, membership, messages, idempotency and watchers. It performs no
// I/O of its own: it reads through a persistence.Reader, takes the time as
// an argument, and returns what must be persisted and announced as Effects.
// The channel actor is a thin adapter around it.
package channel

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Config bounds one channel's in-memory state.
type Config struct {
	Limits protocol.Limits
	// MessageCache is how many messages stay cached beyond those pinned by
	// undurable writes.
	MessageCache int
	// MemberCache is how many member records stay cached.
	MemberCache int
	// IdemCache is how many (user, client id) keys stay cached.
	IdemCache int
	// RecentEvents is how many newest event frames are kept for resumes.
	RecentEvents int
	// ReplayBytes bounds the encoded events one resume reply carries, on
	// top of Limits.MaxEventsPerReplay (0: 1 MiB; see replayBudget).
	ReplayBytes int
	// EventRetention is how many events are kept on disk for since_seq
	// resumes; older ones are trimmed and a resume from before them gets
	// reset: true.
	EventRetention uint64
	// MaxWatchers bounds the sessions watching one channel.
	MaxWatchers int
	// MaxJTIs bounds the single-use join tokens (jti) a channel keeps
	// until they expire (see tokens.go).
	MaxJTIs int
	// Rich holds the bounds of reactions, favorites, typing and files.
	Rich RichConfig
	// Webhooks is set on nodes that deliver events by webhook: a channel
	// keeps the position its receiver acknowledged (webhook.go).
	Webhooks bool
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Limits:         protocol.DefaultLimits(),
		MessageCache:   512,
		MemberCache:    4096,
		IdemCache:      4096,
		RecentEvents:   512,
		EventRetention: 10000,
		MaxWatchers:    200000,
		MaxJTIs:        100000,
		Rich:           DefaultRichConfig(),
	}
}

// Caller identifies who issued a command.
type Caller struct {
	User    string
	Admin   bool
	Session string
	// Gateway identifies the node whose gateway holds the session.
	Gateway string
	// Perms are what a join token granted (read, write, moderate). The
	// gateway sends them with channel.join {token}, and with the watch it
	// re-issues after the channel's activation changed; the channel keeps
	// them with the session's watch and applies them while it lasts
	// (see perms.go). On every other op they are ignored.
	Perms []string
}

// Command is one request to the channel.
type Command struct {
	Op     string
	Args   json.RawMessage
	Caller Caller
}

// Event is an encoded event frame. Persisted events have Seq > 0.
type Event struct {
	Seq   uint64
	Frame []byte
}

// WatchChange tells one gateway to stop delivering the channel's events to
// some of its sessions (a kick, a ban, a leave, a deleted channel).
type WatchChange struct {
	Gateway  string
	Sessions []string
}

// Notice tells a user's actor that the user joined or left the channel, so
// the user's channel index follows, and (Reason) the user's sessions hear
// of it: channel.added or channel.removed.
type Notice struct {
	User   string
	Member bool
	Reason string // protocol.Reason*
}

// Effects is what one command produced. The adapter appends Entry (when
// set), and once it is durable sends Result or Err to the caller, Events to
// the watching gateways, then WatchChanges and Notices.
type Effects struct {
	Result  []byte
	Err     *protocol.Error
	Entry   *persistence.Entry
	Index   uint64 // the entry's index, when Entry is set
	Events  []Event
	Watch   []WatchChange
	Notices []Notice
	// NoticeChannel is the channel object the notices of users who joined
	// carry (channel.added), as it was after the command.
	NoticeChannel json.RawMessage
	// Watching is set when the command made the caller's session a watcher,
	// so the caller's gateway starts delivering events to it.
	Watching bool
	// Unwatching is set when the command stopped the caller's session
	// watching.
	Unwatching bool
	// Directory are notifications for the public-channel directory
	// (channels.query): the channel's listing changed.
	Directory []DirNotice
}

// State is one channel.
type State struct {
	id  string
	cfg Config
	log persistence.Reader

	meta    metaRecord
	exists  bool
	index   uint64 // entries produced
	durable uint64 // entries acknowledged durable

	msgs     *cache[uint64, *protocol.Message]
	members  *cache[string, *memberRecord]
	idem     *cache[idemKey, uint64]
	idemF    *idemFilter   // of every idempotency key (idemfilter.go); nil until a send needs it
	recent   []recentEvent // newest events, oldest first (see trimRecent)
	lastMsg  *protocol.Message
	watchers watchers
	mod      modState // moderation state kept in memory (moderation.go)
	rich     richState
	imp      importState // an import in progress (import.go)

	// settingsGen counts changes of the meta record beyond its counters;
	// savedGen is the one last written (see metaRecord).
	settingsGen, savedGen uint64

	// cur is the effects of the command being handled, now its time.
	cur *Effects
	now time.Time
}

type idemKey struct{ user, clientID string }

// ErrCorrupt means a stored record could not be decoded.
var ErrCorrupt = errors.New("channel: corrupt record")

// Load reads the channel's state from log. A channel never created loads as
// not existing; channel.create makes it.
func Load(id string, log persistence.Reader, cfg Config) (*State, error) {
	s := &State{
		id:       id,
		cfg:      cfg,
		log:      log,
		msgs:     newCache[uint64, *protocol.Message](cfg.MessageCache),
		members:  newCache[string, *memberRecord](cfg.MemberCache),
		idem:     newCache[idemKey, uint64](cfg.IdemCache),
		watchers: newWatchers(),
		mod:      newModState(cfg),
		rich:     newRichState(cfg.Rich),
	}
	if err := s.loadImport(); err != nil {
		return nil, fmt.Errorf("load channel %s import: %w", id, err)
	}
	v, err := log.Get(persistence.TableMeta, nil)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("load channel %s: %w", id, err)
	}
	if err := json.Unmarshal(v, &s.meta); err != nil {
		return nil, fmt.Errorf("load channel %s meta: %w", id, ErrCorrupt)
	}
	s.meta.Channel.Metadata = protocol.Sanitize(s.meta.Channel.Metadata) // see decodeMessage
	switch c, err := log.Get(persistence.TableMeta, countersKey); {
	case errors.Is(err, persistence.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("load channel %s counters: %w", id, err)
	default:
		if err := s.meta.decodeCounters(c); err != nil {
			return nil, fmt.Errorf("load channel %s counters: %w", id, err)
		}
	}
	s.exists = true
	if cfg.Webhooks && !s.meta.HookSet {
		// Webhooks start here: earlier events were never meant for them.
		s.meta.HookSeq, s.meta.HookSet = s.meta.LastSeq, true
	}
	// Warm the message cache with the newest messages so joins are served
	// from memory, and find the last message.
	recs, err := log.Scan(persistence.TableMessage, persistence.Range{Reverse: true, Limit: cfg.Limits.MaxHistoryLimit})
	if err != nil {
		return nil, fmt.Errorf("load channel %s messages: %w", id, err)
	}
	for i := len(recs) - 1; i >= 0; i-- {
		m, err := decodeMessage(recs[i].Value)
		if err != nil {
			return nil, fmt.Errorf("load channel %s: %w", id, err)
		}
		s.msgs.put(m.Segment, m)
		if s.lastMsg == nil || m.Segment > s.lastMsg.Segment {
			s.lastMsg = m
		}
	}
	return s, nil
}

// decodeMessage reads a stored message. Data and metadata stored before
// the server refused what is not strict JSON are repaired on the way out
// (protocol.Sanitize), so no client is sent invalid UTF-8.
func decodeMessage(b []byte) (*protocol.Message, error) {
	var m protocol.Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, ErrCorrupt
	}
	m.Data, m.Metadata = protocol.Sanitize(m.Data), protocol.Sanitize(m.Metadata)
	return &m, nil
}

// Exists reports whether the channel has been created.
func (s *State) Exists() bool { return s.exists }

// LastSeq returns the newest event's seq.
func (s *State) LastSeq() uint64 { return s.meta.LastSeq }

// LastSegment returns the newest message's segment.
func (s *State) LastSegment() uint64 { return s.meta.Channel.LastSegment }

// Committed tells the state that entries up to index are durable, so
// records they wrote may leave the cache.
func (s *State) Committed(index uint64) {
	if index <= s.durable {
		return
	}
	s.durable = index
	s.msgs.committed(index)
	s.members.committed(index)
	s.idem.committed(index)
	s.mod.committed(index)
	s.rich.aux.committed(index)
	s.trimRecent()
	s.importCommitted(index)
}

// recentEvent is an event kept in memory for resumes, with the index of the
// entry that wrote it.
type recentEvent struct {
	Event
	index uint64
	at    time.Time // when it happened (webhooks deliver it)
}

// trimRecent keeps at most cfg.RecentEvents events in memory, but never
// drops one whose entry is not durable: the store may not hold it yet, so
// the memory copy is the only one a resume can read.
func (s *State) trimRecent() {
	drop := 0
	for drop < len(s.recent)-s.cfg.RecentEvents && s.recent[drop].index <= s.durable {
		drop++
	}
	if drop > 0 {
		s.recent = append(s.recent[:0], s.recent[drop:]...)
	}
}

// Pending reports whether some entry is not yet durable.
func (s *State) Pending() bool { return s.durable < s.index }

// Handle applies one command at time now and returns its effects.
func (s *State) Handle(cmd Command, now time.Time) *Effects {
	s.cur = &Effects{}
	s.now = now
	defer func() { s.cur = nil }()
	listed := s.listing()
	result, perr := s.dispatch(cmd, now)
	eff := s.cur
	if perr != nil {
		// A refused command changes nothing: every handler validates
		// before it mutates, so there is nothing to roll back.
		if eff.Entry != nil {
			panic(fmt.Sprintf("channel: %s refused after writing", cmd.Op))
		}
		eff.Err = perr
		return eff
	}
	if raw, ok := result.(json.RawMessage); ok {
		eff.Result = raw
	} else if r, ok := result.(*protocol.WatchResult); ok {
		// Compact JSON already (json.Marshal would check and copy it).
		eff.Result, _ = r.MarshalJSON()
	} else {
		b, err := json.Marshal(result)
		if err != nil {
			panic("channel: encode result: " + err.Error())
		}
		eff.Result = b
	}
	for _, n := range eff.Notices {
		if n.Member && eff.NoticeChannel == nil {
			eff.NoticeChannel = encode(s.channelView())
			break
		}
	}
	if eff.Entry != nil {
		s.listingChanged(listed)
		// Every entry carries the counters, and the settings when they
		// changed: both land atomically with the change that moved them.
		eff.Entry.Put(persistence.TableMeta, countersKey, s.meta.encodeCounters())
		if s.settingsGen != s.savedGen {
			eff.Entry.Put(persistence.TableMeta, nil, encode(&s.meta))
			s.savedGen = s.settingsGen
		}
	}
	return eff
}

// notice records that user joined (member) or left the channel.
func (s *State) notice(user string, member bool, reason string) {
	s.cur.Notices = append(s.cur.Notices, Notice{User: user, Member: member, Reason: reason})
}

// settingsChanged marks the meta record (beyond its counters) changed, so
// the current entry writes it.
func (s *State) settingsChanged() { s.settingsGen++ }

type handler func(s *State, c Caller, args json.RawMessage, now time.Time) (any, *protocol.Error)

func (s *State) dispatch(cmd Command, now time.Time) (any, *protocol.Error) {
	h := handlerOf(cmd.Op)
	if h == nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "unknown op %q", cmd.Op)
	}
	if s.importGated(cmd.Op) {
		e := protocol.Errorf(protocol.CodeUnavailable, "channel %s is finishing an import; retry", s.id)
		e.RetryAfterMS = 200
		return nil, e
	}
	switch {
	case cmd.Op == protocol.OpChannelCreate, cmd.Op == OpOpen, importOrHook(cmd.Op):
		// Create answers invalid_state for an id in use, deleted or not;
		// imports and webhooks check for themselves.
	case !s.exists:
		return nil, protocol.Errorf(protocol.CodeNotFound, "channel %s does not exist", s.id)
	case s.meta.Channel.Deleted && cmd.Op != protocol.OpChannelUnwatch && cmd.Op != OpExport:
		// A deleted channel is gone for everyone: nothing is read from it
		// or written to it. Unwatching is the one thing still possible,
		// so a session can always drop a subscription it holds (and an
		// export still backs up what it held).
		return nil, protocol.Errorf(protocol.CodeNotFound, "channel %s was deleted", s.id)
	}
	if perr := s.admit(&cmd); perr != nil {
		return nil, perr
	}
	return h(s, cmd.Caller, cmd.Args, now)
}

// entry returns the entry being built for the current command, starting it
// (and claiming the next index) on first use.
func (s *State) entry() *persistence.Entry {
	if s.cur.Entry == nil {
		s.index++
		s.cur.Entry = &persistence.Entry{}
		s.cur.Index = s.index
	}
	return s.cur.Entry
}

// emit records a persisted event: it takes the next seq, encodes the frame
// once, writes it to the event table and queues it for the watchers.
func (s *State) emit(name string, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		panic("channel: encode event: " + err.Error())
	}
	s.emitRaw(name, b)
}

// emitRaw is emit with data already encoded.
func (s *State) emitRaw(name string, data []byte) {
	e := s.entry()
	s.meta.LastSeq++
	if s.meta.FirstSeq == 0 {
		s.meta.FirstSeq = s.meta.LastSeq
	}
	seq := s.meta.LastSeq
	// The stored record and the frame share one buffer: the record is
	// the frame after its time (eventrec.go).
	rec := protocol.AppendEvent(eventRecordHead(make([]byte, 0, eventRecHead+len(data)+len(name)+len(s.id)+48), s.now), name, s.id, seq, data)
	frame := rec[eventRecHead:]
	e.Put(persistence.TableEvent, persistence.U64(seq), rec)
	ev := Event{Seq: seq, Frame: frame}
	s.cur.Events = append(s.cur.Events, ev)
	s.recent = append(s.recent, recentEvent{Event: ev, index: s.cur.Index, at: s.now})
	s.trimRecent()
	s.trimEvents()
}

// emitEphemeral queues an event that is not persisted and has no seq.
func (s *State) emitEphemeral(name string, data any) {
	frame, err := protocol.EncodeEvent(name, s.id, 0, data)
	if err != nil {
		panic("channel: encode event: " + err.Error())
	}
	s.cur.Events = append(s.cur.Events, Event{Frame: frame})
}

// trimEvents deletes events older than the retention, in steps so that a
// trim is one range delete every so often rather than one per event.
func (s *State) trimEvents() {
	keep := s.cfg.EventRetention
	step := max(keep/10, 1)
	if s.meta.LastSeq < s.meta.FirstSeq+keep+step {
		return
	}
	newFirst := s.meta.LastSeq - keep + 1
	s.entry().DelRange(persistence.TableEvent, persistence.U64(s.meta.FirstSeq), persistence.U64(newFirst))
	s.meta.FirstSeq = newFirst
}

// readOnlyOps never write an entry: a store that refuses writes (a full
// disk) still serves them.
var readOnlyOps = map[string]bool{
	protocol.OpChannelGet: true, protocol.OpMessagesHistory: true, protocol.OpMembersList: true,
	protocol.OpChannelWatch: true, protocol.OpChannelUnwatch: true, protocol.OpTypingStart: true,
	protocol.OpTypingStop: true, OpSummary: true, OpListing: true, OpFileCheck: true, OpRewatch: true,
}

// ReadOnly reports whether op never writes (see readOnlyOps).
func ReadOnly(op string) bool { return readOnlyOps[op] }
