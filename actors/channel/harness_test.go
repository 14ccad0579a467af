package channel

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// The harness drives one channel State the way the actor adapter does,
// without an actor system: it hands each command to Handle at the time of a
// fake clock, applies the returned Entry to a MemLog and calls Committed.
//
// In manual mode entries are held back: the store (the Reader the State
// reads through) only sees an entry once commit is called, exactly like a
// store whose writes are not yet durable, so tests can prove that pending
// writes are served from the State's pinned caches.

const channelID = "general"

// t0 is the fake clock's start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type harness struct {
	t   *testing.T
	id  string // the channel's id (channelID unless newHarnessFor)
	cfg Config
	log *persistence.MemLog
	r   *countingReader
	s   *State
	now time.Time

	// manual holds entries back until commit.
	manual  bool
	pending []pendingEntry
	// events is every persisted event the channel emitted, in seq order.
	events []Event
}

type pendingEntry struct {
	index uint64
	entry *persistence.Entry
}

// countingReader counts the reads a State makes.
type countingReader struct {
	persistence.Reader
	gets, scans int
	// idemGets and idemScans count the reads of idempotency keys (in
	// gets and scans too).
	idemGets, idemScans int
}

func (c *countingReader) Get(t persistence.Table, k []byte) ([]byte, error) {
	c.gets++
	if t == persistence.TableIdem {
		c.idemGets++
	}
	return c.Reader.Get(t, k)
}

func (c *countingReader) Scan(t persistence.Table, r persistence.Range) ([]persistence.Record, error) {
	c.scans++
	if t == persistence.TableIdem {
		c.idemScans++
	}
	return c.Reader.Scan(t, r)
}

// newHarness returns a harness over an empty log; opts adjust the config.
func newHarness(t *testing.T, opts ...func(*Config)) *harness {
	t.Helper()
	return newHarnessFor(t, channelID, opts...)
}

// newHarnessFor is newHarness for the channel of id id.
func newHarnessFor(t *testing.T, id string, opts ...func(*Config)) *harness {
	t.Helper()
	cfg := DefaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	h := &harness{t: t, id: id, cfg: cfg, log: persistence.NewMemLog(), now: t0}
	h.load()
	return h
}

func (h *harness) load() {
	h.t.Helper()
	h.r = &countingReader{Reader: h.log}
	s, err := Load(h.id, h.r, h.cfg)
	if err != nil {
		h.t.Fatalf("load: %v", err)
	}
	h.s = s
}

// reload commits what is pending and loads a fresh State from the same
// log, as a restart of the channel's actor would.
func (h *harness) reload() {
	h.t.Helper()
	h.commit()
	h.load()
}

// tick advances the fake clock.
func (h *harness) tick(d time.Duration) { h.now = h.now.Add(d) }

// commit makes every pending entry durable, in order.
func (h *harness) commit() {
	h.t.Helper()
	if len(h.pending) == 0 {
		return
	}
	for _, p := range h.pending {
		h.apply(p.entry)
	}
	last := h.pending[len(h.pending)-1].index
	h.pending = nil
	h.s.Committed(last)
}

func (h *harness) apply(e *persistence.Entry) {
	h.t.Helper()
	var aerr error
	h.log.Append(e, func(err error) { aerr = err })
	if aerr != nil {
		h.t.Fatalf("append: %v", aerr)
	}
}

// caller is a user's session on gateway gw1.
func caller(user string) Caller {
	return Caller{User: user, Session: user + "-s1", Gateway: "gw1"}
}

// admin is a global admin's session.
func admin(user string) Caller {
	c := caller(user)
	c.Admin = true
	return c
}

// session is another session of the same user, possibly on another gateway.
func session(user, sess, gw string) Caller {
	return Caller{User: user, Session: sess, Gateway: gw}
}

func encodeArgs(t *testing.T, args any) json.RawMessage {
	t.Helper()
	switch a := args.(type) {
	case nil:
		return nil
	case string:
		return json.RawMessage(a)
	case json.RawMessage:
		return a
	}
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatalf("encode args: %v", err)
	}
	return b
}

// do handles one command and checks what holds for every command: a
// refused command changes nothing, and persisted events take the next
// seqs. args is a JSON string, a RawMessage, or a value to marshal.
func (h *harness) do(c Caller, op string, args any) *Effects {
	h.t.Helper()
	before := fingerprint(h.s)
	settings, gen := settingsOf(h.s), h.s.settingsGen
	lastSeq := h.s.LastSeq()
	eff := h.s.Handle(Command{Op: op, Args: encodeArgs(h.t, args), Caller: c}, h.now)
	if eff.Err != nil {
		if eff.Entry != nil || len(eff.Events) > 0 || eff.Result != nil || eff.Index != 0 ||
			len(eff.Watch) > 0 || len(eff.Notices) > 0 || eff.Watching || eff.Unwatching {
			h.t.Fatalf("%s refused with %v but produced effects %+v", op, eff.Err, eff)
		}
		if after := fingerprint(h.s); after != before {
			h.t.Fatalf("%s refused with %v but changed the state:\nbefore %s\nafter  %s", op, eff.Err, before, after)
		}
		return eff
	}
	if op != OpExport && !json.Valid(eff.Result) { // an export page is NDJSON
		h.t.Fatalf("%s: result is not JSON: %s", op, eff.Result)
	}
	// Settings are only written when marked changed: a command that
	// changes them without marking them would lose them on restart.
	if settingsOf(h.s) != settings && h.s.settingsGen == gen {
		h.t.Fatalf("%s changed the channel's settings without settingsChanged", op)
	}
	next := lastSeq + 1
	for _, ev := range eff.Events {
		f := decodeFrame(h.t, ev.Frame)
		if f.Seq != ev.Seq {
			h.t.Fatalf("%s: event %s frame seq %d, Effects seq %d", op, f.Event, f.Seq, ev.Seq)
		}
		if ev.Seq == 0 {
			continue
		}
		if ev.Seq != next {
			h.t.Fatalf("%s: event %s has seq %d, want %d", op, f.Event, ev.Seq, next)
		}
		if eff.Entry == nil {
			h.t.Fatalf("%s: persisted event %s without an entry", op, f.Event)
		}
		next++
		h.events = append(h.events, ev)
	}
	if got := h.s.LastSeq(); got != next-1 {
		h.t.Fatalf("%s: LastSeq %d after %d events from %d", op, got, next-1-lastSeq, lastSeq)
	}
	if eff.Entry != nil {
		if eff.Index == 0 {
			h.t.Fatalf("%s: entry without an index", op)
		}
		if h.manual {
			h.pending = append(h.pending, pendingEntry{eff.Index, eff.Entry})
		} else {
			h.apply(eff.Entry)
			h.s.Committed(eff.Index)
		}
	}
	if op == protocol.OpMessageSend && !h.manual {
		h.checkSendReply(c, eff)
	}
	return eff
}

// checkSendReply: a send's reply, written around the stored encoding, is
// what the general path would have written: the caller's view of the
// message, read back by a fresh State (so the check warms no cache).
func (h *harness) checkSendReply(c Caller, eff *Effects) {
	h.t.Helper()
	c.Perms = h.s.watchers.permsOf(c.Gateway, c.Session) // as admit does
	fresh, err := Load(h.id, h.log, h.cfg)
	if err != nil {
		h.t.Fatalf("load: %v", err)
	}
	var r struct {
		Message struct {
			ID string `json:"id"`
		} `json:"message"`
		Duplicate bool `json:"duplicate"`
	}
	if err := json.Unmarshal(eff.Result, &r); err != nil {
		h.t.Fatalf("send reply %s: %v", eff.Result, err)
	}
	m, perr := fresh.findMessage(r.Message.ID)
	if perr != nil {
		h.t.Fatalf("sent message %s: %v", r.Message.ID, perr)
	}
	if r.Duplicate != (eff.Entry == nil) {
		h.t.Fatalf("send reply says duplicate=%v; the send wrote=%v", r.Duplicate, eff.Entry != nil)
	}
	want, _ := json.Marshal(protocol.MessageResult{Message: fresh.viewMessage(c, m), Duplicate: r.Duplicate})
	if !sameJSON(eff.Result, want) {
		h.t.Fatalf("send reply\n got %s\nwant %s", eff.Result, want)
	}
}

// sameJSON reports whether a and b encode the same value.
func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// ok handles a command that must succeed and decodes its result into a
// fresh value of type T.
func ok[T any](h *harness, c Caller, op string, args any) T {
	h.t.Helper()
	eff := h.do(c, op, args)
	if eff.Err != nil {
		h.t.Fatalf("%s by %s: unexpected error %v", op, c.User, eff.Err)
	}
	var v T
	if err := json.Unmarshal(eff.Result, &v); err != nil {
		h.t.Fatalf("%s: decode result %s: %v", op, eff.Result, err)
	}
	return v
}

// fail handles a command that must be refused with code.
func (h *harness) fail(c Caller, op string, args any, code protocol.Code) *protocol.Error {
	h.t.Helper()
	eff := h.do(c, op, args)
	if eff.Err == nil {
		h.t.Fatalf("%s by %s: succeeded with %s, want %s", op, c.User, eff.Result, code)
	}
	if eff.Err.Code != code {
		h.t.Fatalf("%s by %s: error %v, want %s", op, c.User, eff.Err, code)
	}
	return eff.Err
}

// frame is a decoded event frame.
type frame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Seq     uint64          `json:"seq"`
	Data    json.RawMessage `json:"data"`
}

func decodeFrame(t *testing.T, b []byte) frame {
	t.Helper()
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("event frame %s: %v", b, err)
	}
	return f
}

// unsequenced decodes eff's events named name, which carry no seq, as T
// and lists them as show prints them.
func unsequenced[T any](t *testing.T, eff *Effects, name string, show func(T) string) []string {
	t.Helper()
	var out []string
	for _, ev := range eff.Events {
		f := decodeFrame(t, ev.Frame)
		if f.Event != name {
			continue
		}
		if ev.Seq != 0 || f.Seq != 0 {
			t.Fatalf("%s event with seq %d", name, ev.Seq)
		}
		var v T
		if err := json.Unmarshal(f.Data, &v); err != nil {
			t.Fatalf("%s data %s: %v", name, f.Data, err)
		}
		out = append(out, show(v))
	}
	return out
}

// eventNames lists the names of the persisted events of eff.
func eventNames(t *testing.T, eff *Effects) []string {
	t.Helper()
	var out []string
	for _, ev := range eff.Events {
		out = append(out, decodeFrame(t, ev.Frame).Event)
	}
	return out
}

// fingerprint captures the state a refused command must leave alone.
// settingsOf is the meta record without its counters.
func settingsOf(s *State) string {
	m := s.meta
	m.LastSeq, m.FirstSeq = 0, 0
	m.Channel.LastSegment, m.Channel.MessageCount, m.Channel.MemberCount = 0, 0, 0
	m.Channel.LastActivity = protocol.Time{}
	return string(encode(&m))
}

func fingerprint(s *State) string {
	var last string
	if s.lastMsg != nil {
		last = string(encode(s.lastMsg))
	}
	var users []string
	for gw, ss := range s.watchers.byGateway {
		for sess, u := range ss {
			users = append(users, gw+"/"+sess+"="+u)
		}
	}
	slices.Sort(users)
	var typing []string
	for u, t := range s.rich.typing {
		typing = append(typing, fmt.Sprintf("%s=%+v", u, *t))
	}
	slices.Sort(typing)
	return fmt.Sprintf("exists=%v index=%d meta=%s last=%s watchers=%d %v recent=%d dirty=%d/%d/%d/%d typing=%v",
		s.exists, s.index, encode(&s.meta), last, s.watchers.n, users, len(s.recent),
		len(s.msgs.dirty), len(s.members.dirty), len(s.idem.dirty), len(s.rich.aux.dirty), typing)
}

// Result shapes.
type createResult struct {
	Channel protocol.Channel `json:"channel"`
	Member  *protocol.Member `json:"member"`
	Seq     uint64           `json:"seq"`
}

type watchResult struct {
	Channel       protocol.Channel   `json:"channel"`
	Member        *protocol.Member   `json:"member"`
	Messages      []protocol.Message `json:"messages"`
	HasMore       bool               `json:"has_more"`
	Seq           uint64             `json:"seq"`
	Events        []json.RawMessage  `json:"events"`
	EventsHasMore bool               `json:"events_has_more"`
	Reset         bool               `json:"reset"`
}

type messageResult struct {
	Message protocol.Message `json:"message"`
}

type historyResult struct {
	Messages []protocol.Message `json:"messages"`
	HasMore  bool               `json:"has_more"`
}

// create makes the channel as owner with the given type and extra args.
func (h *harness) create(owner, typ string, extra map[string]any) createResult {
	h.t.Helper()
	args := map[string]any{"type": typ}
	for k, v := range extra {
		args[k] = v
	}
	return ok[createResult](h, caller(owner), protocol.OpChannelCreate, args)
}

// send sends text as user with a client id derived from the text.
func (h *harness) send(user, clientID, text string) protocol.Message {
	h.t.Helper()
	r := ok[messageResult](h, caller(user), protocol.OpMessageSend,
		map[string]any{"channel": channelID, "client_id": clientID, "text": text})
	return r.Message
}

func (h *harness) join(c Caller, since *uint64) watchResult {
	h.t.Helper()
	args := map[string]any{"channel": channelID}
	if since != nil {
		args["since_seq"] = *since
	}
	return ok[watchResult](h, c, protocol.OpChannelJoin, args)
}

func (h *harness) history(c Caller, args map[string]any) historyResult {
	h.t.Helper()
	a := map[string]any{"channel": channelID}
	for k, v := range args {
		a[k] = v
	}
	return ok[historyResult](h, c, protocol.OpMessagesHistory, a)
}

func u64(v uint64) *uint64 { return &v }

// noRecord reports whether a join result's member is the synthesized one
// of a caller without a member record (a live viewer, a reader).
func noRecord(m *protocol.Member) bool {
	return m != nil && m.Membership == protocol.MembershipViewer && m.CreatedAt.IsZero()
}

// userMessages leaves out system messages (joins take segments too).
func userMessages(msgs []protocol.Message) []protocol.Message {
	var out []protocol.Message
	for _, m := range msgs {
		if m.Type != protocol.MessageSystem {
			out = append(out, m)
		}
	}
	return out
}

// segments lists the segments of msgs.
func segments(msgs []protocol.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Segment
	}
	return out
}

// span returns [from, to].
func span(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// setRoles gives user a member record with roles, written straight to the
// log, and reloads the State so that it reads the record from there (the
// channel has no op for roles yet).
func (h *harness) setRoles(user string, roles ...string) {
	h.t.Helper()
	h.commit()
	m := newMember(channelID, user, roles, h.now)
	e := &persistence.Entry{}
	e.Put(persistence.TableMember, []byte(user), encode(m))
	h.apply(e)
	h.load()
}
