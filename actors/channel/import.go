package channel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Import (POST /v1/import) writes a channel's records through the channel
// itself, all or none, in entries of bounded size:
//
//  1. the gateway sends the channel's records in chunks (OpImportStage).
//     Each is checked against the channel as it is — the same limits as a
//     live write, and what the channel already holds: a record that is
//     there already is skipped, one that contradicts it is refused — and
//     what it would write is staged: kept in the channel's aux table, where
//     nothing reads it, with a marker (importMarker) that says how far the
//     import got. A refused record aborts the import: its staged chunks
//     are deleted (one range delete) and nothing of it is applied.
//  2. the last chunk starts the commit: from then on the channel answers
//     every other command unavailable (retry) while the staged chunks are
//     applied, one entry each (OpImportCommit). They cannot fail on input:
//     everything was checked when staged. The last step makes the channel
//     (or its new messages) visible, announces channel.updated with reason
//     imported, and the channel opens again once that entry is durable.
//  3. a channel whose import had all its records in one chunk skips the
//     staging: the chunk is applied in one entry at once.
//
// A crash while staging leaves the staged chunks unseen; the import is
// abandoned (a new import, or the channel's next activation once the
// marker is stale, deletes them). A crash while committing is rolled
// forward: the next activation finds the marker and finishes the commit
// itself (ImportOrphaned). Staged messages sit at segments above the
// channel's last one, which no read looks at, and are keyed so that
// nothing reads them before the commit makes them part of the channel.
//
// Messages keep their ids, segments, authors and times; the channel's
// counter continues after the highest one. Imported events are not
// replayed: watchers get the one channel.updated and reload.

// Internal ops of an import (never accepted from clients).
const (
	OpImportStage  = "_import.stage"
	OpImportCommit = "_import.commit"
	OpImportAbort  = "_import.abort"
)

// ImportStageArgs are one chunk of a channel's import.
type ImportStageArgs struct {
	// Token names the import: one import of a channel at a time.
	Token string `json:"token"`
	// DryRun checks the chunk and writes nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Chunk numbers the chunks of the channel's import from 0.
	Chunk int `json:"chunk"`
	// Final marks the channel's last chunk: the commit starts.
	Final bool `json:"final,omitempty"`
	// Channel is the channel's own record (first chunk only); without
	// one, the channel must exist.
	Channel *ImportLine  `json:"channel,omitempty"`
	Records []ImportLine `json:"records"`
}

// ImportLine is one record with its line number.
type ImportLine struct {
	Line   int64           `json:"line"`
	Record json.RawMessage `json:"record"`
	// ParentSegment is the segment of a reply's parent when the import
	// holds the parent (the gateway checked it is an earlier top-level
	// message); 0 when the parent is a message the channel has already.
	ParentSegment uint64 `json:"parent_segment,omitempty"`
}

// The args of OpImportStage are written without JSON around the records,
// which would have to be checked, escaped and copied once more for
// nothing: a JSON head (stageHead) on the first line, then a line per
// record — its line number, its parent segment and the record itself,
// separated by spaces — the channel record first when there is one.
type stageHead struct {
	Token   string `json:"token"`
	DryRun  bool   `json:"dry_run,omitempty"`
	Chunk   int    `json:"chunk"`
	Final   bool   `json:"final,omitempty"`
	Channel bool   `json:"channel,omitempty"`
	Records int    `json:"records"`
}

// Encode writes the args of OpImportStage.
func (a *ImportStageArgs) Encode() []byte {
	h := encode(stageHead{Token: a.Token, DryRun: a.DryRun, Chunk: a.Chunk, Final: a.Final, Channel: a.Channel != nil, Records: len(a.Records)})
	n := len(h) + 1
	for _, l := range a.Records {
		n += len(l.Record) + 24
	}
	b := make([]byte, 0, n)
	b = append(append(b, h...), '\n')
	put := func(l *ImportLine) {
		b = strconv.AppendInt(b, l.Line, 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, l.ParentSegment, 10)
		b = append(b, ' ')
		b = append(append(b, l.Record...), '\n')
	}
	if a.Channel != nil {
		put(a.Channel)
	}
	for i := range a.Records {
		put(&a.Records[i])
	}
	return b
}

// decodeImportStage reads what Encode wrote. Records alias b.
func decodeImportStage(b []byte) (*ImportStageArgs, *protocol.Error) {
	bad := badRequest("malformed import chunk")
	head, rest, _ := bytes.Cut(b, []byte("\n"))
	var h stageHead
	if json.Unmarshal(head, &h) != nil || h.Records < 0 {
		return nil, bad
	}
	a := &ImportStageArgs{Token: h.Token, DryRun: h.DryRun, Chunk: h.Chunk, Final: h.Final, Records: make([]ImportLine, 0, h.Records)}
	n := h.Records
	if h.Channel {
		n++
	}
	for i := 0; i < n; i++ {
		var line []byte
		var ok bool
		if line, rest, ok = bytes.Cut(rest, []byte("\n")); !ok {
			return nil, bad
		}
		num, line, _ := bytes.Cut(line, []byte(" "))
		par, rec, ok := bytes.Cut(line, []byte(" "))
		ln, err1 := strconv.ParseInt(string(num), 10, 64)
		ps, err2 := strconv.ParseUint(string(par), 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, bad
		}
		l := ImportLine{Line: ln, ParentSegment: ps, Record: rec}
		if h.Channel && i == 0 {
			a.Channel = &l
		} else {
			a.Records = append(a.Records, l)
		}
	}
	if len(rest) > 0 {
		return nil, bad
	}
	return a, nil
}

// ImportTokenArgs name the import of OpImportCommit and OpImportAbort.
type ImportTokenArgs struct {
	Token string `json:"token"`
}

// ImportReply answers the import ops: the lines refused (none applied
// then), and once Done what the import applied. Counts are of what the
// answering command decided: a chunk's skipped records, a commit step's
// members.
type ImportReply struct {
	Errors   []protocol.ImportError `json:"errors,omitempty"`
	Done     bool                   `json:"done"`
	Channels int64                  `json:"channels,omitempty"`
	Members  int64                  `json:"members,omitempty"`
	Messages int64                  `json:"messages,omitempty"`
	Skipped  int64                  `json:"skipped,omitempty"`
}

// importStale is how long a staging import may go without a chunk
// before another import (or the channel's next activation) abandons it.
const importStale = 2 * time.Minute

// Import phases.
const (
	phaseStaging    = "staging"
	phaseCommitting = "committing"
	phaseDone       = "done"
)

// importMarker is the durable state of the channel's import (TableMeta,
// key importKey). Once done it stays, with its result, so that a chunk
// retried after its answer was lost is answered the same.
type importMarker struct {
	Token string `json:"token"`
	Phase string `json:"phase"`
	// Staged is how many chunks are staged (stage keys 0 to Staged-1).
	Staged int `json:"staged"`
	// Seen is the last chunk the gateway sent, and Sum its checksum.
	Seen int    `json:"seen"`
	Sum  uint64 `json:"sum"`
	// Steps is how many staged chunks are applied.
	Steps int `json:"steps"`
	// LastMsgChunk is the staged chunk with the highest segment, applied
	// last (with the step that ends the import); -1 when none.
	LastMsgChunk int `json:"last_msg_chunk"`
	// Channel is the channel the import creates (nil: it exists).
	Channel *protocol.Channel `json:"channel,omitempty"`
	// FirstNew and LastMsg bound the new segments staged; Floor is the
	// last_segment of the channel record.
	FirstNew uint64 `json:"first_new,omitempty"`
	LastMsg  uint64 `json:"last_msg,omitempty"`
	Floor    uint64 `json:"floor,omitempty"`
	// Messages staged, of which Live not deleted; LastActivity is the
	// newest message's time.
	Messages     int64         `json:"messages,omitempty"`
	Live         int64         `json:"live,omitempty"`
	LastActivity protocol.Time `json:"last_activity,omitzero"`
	// Members applied and how many of them count in member_count.
	Members     int64 `json:"members,omitempty"`
	MemberCount int64 `json:"member_count,omitempty"`
	// Result is the answer to the step that ended the import.
	Result  *ImportReply  `json:"result,omitempty"`
	Updated protocol.Time `json:"updated"`
}

var importKey = []byte("import")

// Staged chunks and counters live in the aux table:
//
//	stage\0 c <chunk (4 bytes)>   → an encoded importChunk
//	stage\0 r <segment (8 bytes)> → replies an imported message gained (8 bytes)
const nsStage = "stage\x00"

func stageChunkKey(k int) []byte {
	return append([]byte(nsStage+"c"), byte(k>>24), byte(k>>16), byte(k>>8), byte(k))
}

func stageRepliesKey(seg uint64) []byte {
	return append([]byte(nsStage+"r"), persistence.U64(seg)...)
}

// importState is the channel's in-memory side of an import.
type importState struct {
	marker *importMarker
	// gate is set while an import commits: other commands are refused
	// until the entry that ends it (gateIndex, once known) is durable.
	gate      bool
	gateIndex uint64
	// orphan is set when the activation found a commit in progress: no
	// gateway drives it, the actor does (ImportOrphaned), one step at a
	// time: stepIndex is the entry of the last step.
	orphan    bool
	stepIndex uint64
}

// loadImport reads the import marker (Load).
func (s *State) loadImport() error {
	v, err := s.log.Get(persistence.TableMeta, importKey)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	var m importMarker
	if json.Unmarshal(v, &m) != nil {
		return ErrCorrupt
	}
	s.imp.marker = &m
	if m.Phase == phaseCommitting {
		s.imp.gate, s.imp.orphan = true, true
	}
	return nil
}

// ImportOrphaned reports whether the activation must drive an import's
// commit itself (OpImportCommit with the marker's token): it found the
// commit in progress, and the step it took last is durable.
func (s *State) ImportOrphaned() (string, bool) {
	m := s.imp.marker
	if !s.imp.orphan || m == nil || m.Phase != phaseCommitting || s.imp.stepIndex > s.durable {
		return "", false
	}
	return m.Token, true
}

// ImportAbandoned reports an import that stopped staging long ago, which
// the activation deletes (OpImportAbort with the marker's token).
func (s *State) ImportAbandoned(now time.Time) (string, bool) {
	m := s.imp.marker
	if m == nil || m.Phase != phaseStaging || now.Sub(m.Updated.Time) < importStale {
		return "", false
	}
	return m.Token, true
}

// importGated reports whether op must wait for an import's commit.
func (s *State) importGated(op string) bool {
	if !s.imp.gate {
		return false
	}
	switch op {
	case OpImportStage, OpImportCommit, OpImportAbort, protocol.OpChannelUnwatch, OpTick:
		return false
	}
	return true
}

// importCommitted opens the gate once the import's last entry is durable.
func (s *State) importCommitted(index uint64) {
	if s.imp.gate && s.imp.gateIndex != 0 && index >= s.imp.gateIndex {
		s.imp.gate, s.imp.gateIndex = false, 0
	}
}

func (s *State) putMarker(m *importMarker) {
	m.Updated = protocol.At(s.now)
	s.imp.marker = m
	s.entry().Put(persistence.TableMeta, importKey, encode(m))
}

// dropStaged deletes every staged chunk and counter.
func (s *State) dropStaged() {
	from := []byte(nsStage)
	s.entry().DelRange(persistence.TableAux, from, prefixEnd(from))
	s.rich.aux.dropIf(func(k string) bool { return len(k) >= len(nsStage) && k[:len(nsStage)] == nsStage })
}

// abortImport deletes a staging import.
func (s *State) abortImport() {
	s.dropStaged()
	s.entry().Del(persistence.TableMeta, importKey)
	s.imp.marker = nil
}

func (s *State) handleImportAbort(_ Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a ImportTokenArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	if m := s.imp.marker; m != nil && m.Token == a.Token && m.Phase == phaseStaging {
		s.abortImport()
	}
	return ImportReply{}, nil
}

func (s *State) handleImportStage(_ Caller, args json.RawMessage, now time.Time) (any, *protocol.Error) {
	ap, perr := decodeImportStage(args)
	if perr != nil {
		return nil, perr
	}
	a := *ap
	if a.Token == "" || a.Chunk < 0 {
		return nil, badRequest("token and chunk are required")
	}
	sum := xxhash.Sum64(args)
	m := s.imp.marker
	if m != nil && m.Token == a.Token && !a.DryRun {
		switch {
		case m.Phase == phaseDone && m.Seen == a.Chunk && m.Sum == sum && m.Result != nil:
			return *m.Result, nil // a retry of the chunk that ended it
		case m.Phase != phaseDone && m.Seen == a.Chunk && m.Sum == sum:
			return ImportReply{}, nil // a retry of a chunk already staged
		case m.Phase == phaseStaging && a.Chunk != m.Seen+1:
			return nil, protocol.Errorf(protocol.CodeInvalidState, "import chunk %d of %s came after chunk %d", a.Chunk, s.id, m.Seen)
		case m.Phase == phaseCommitting:
			return nil, protocol.Errorf(protocol.CodeInvalidState, "the import of %s is committing", s.id)
		}
	}
	if m != nil && m.Token != a.Token && m.Phase != phaseDone {
		if m.Phase == phaseCommitting || now.Sub(m.Updated.Time) < importStale {
			e := protocol.Errorf(protocol.CodeInvalidState, "another import of %s is in progress; retry once it ends", s.id)
			return nil, e
		}
		if !a.DryRun {
			s.abortImport() // abandoned: its staged chunks go in this entry
		}
	}
	if !a.DryRun && (s.imp.marker == nil || s.imp.marker.Token != a.Token || s.imp.marker.Phase == phaseDone) {
		s.imp.marker = nil // a new import of this channel
	}
	st := &stager{s: s, args: &a, m: s.imp.marker, now: now, chunk: newImportChunk()}
	return st.run(sum)
}

// stager checks and stages one chunk.
type stager struct {
	s     *State
	args  *ImportStageArgs
	m     *importMarker // nil: nothing of the import is durable yet
	now   time.Time
	chunk *importChunk
	reply ImportReply
	base  uint64 // the channel's last segment
	fresh bool   // the channel does not exist: the import creates it
	// ch is the channel a new channel's import creates.
	ch *protocol.Channel
	// lastMsg and firstNew are the highest and lowest new segments so
	// far, floor the channel record's last_segment; messages and live
	// count the new messages.
	lastMsg, firstNew, floor uint64
	messages, live           int64
	lastActivity             protocol.Time
	// existing are the stored messages at the chunk's segments (prefetch).
	existing map[uint64][]byte
	// replies count the replies of messages of earlier chunks, autoMsgs
	// the messages of this one whose replies it counts (countReply).
	replies   map[uint64]uint64
	autoMsgs  map[uint64]autoMsg
	chunkMsgs map[uint64]bool // the segments of the chunk's messages
}

func (st *stager) fail(line int64, e *protocol.Error) {
	if len(st.reply.Errors) < maxImportErrors {
		st.reply.Errors = append(st.reply.Errors, protocol.ImportError{Line: line, Code: e.Code, Message: e.Message})
	}
}

// maxImportErrors bounds the errors one chunk reports.
const maxImportErrors = 1000

func (st *stager) run(sum uint64) (any, *protocol.Error) {
	s, a := st.s, st.args
	st.base = s.meta.Channel.LastSegment
	if st.m != nil {
		st.ch, st.fresh = st.m.Channel, st.m.Channel != nil
		st.lastMsg, st.firstNew, st.floor = st.m.LastMsg, st.m.FirstNew, st.m.Floor
	} else if perr := st.begin(); perr != nil {
		return nil, perr
	}
	if len(st.reply.Errors) == 0 {
		// A first read of what decides whether a record is there
		// already: those are skipped without decoding them whole.
		heads := make([]protocol.RecordFields, len(a.Records))
		for i := range a.Records {
			if !st.fresh {
				heads[i], _ = protocol.ScanRecord(a.Records[i].Record, false)
			}
		}
		if err := st.prefetch(heads); err != nil {
			st.fail(0, internal(err))
		}
		for i := range a.Records {
			l := &a.Records[i]
			if st.there(l, &heads[i]) {
				continue
			}
			v, perr := protocol.DecodeRecord(l.Record)
			if perr != nil {
				st.fail(l.Line, perr)
				continue
			}
			st.record(l, v)
		}
		st.finishChunk()
	}
	if len(st.reply.Errors) > 0 {
		if !a.DryRun && st.m != nil {
			s.abortImport()
		}
		st.reply.Skipped = 0
		return st.reply, nil
	}
	if a.DryRun {
		// What the chunk would apply, as far as the channel can tell now.
		st.reply.Done = a.Final
		st.reply.Members, st.reply.Messages = int64(len(st.chunk.members)), st.messages
		if st.fresh && a.Channel != nil {
			st.reply.Channels = 1
		}
		return st.reply, nil
	}
	if a.Final && (st.m == nil || st.m.Staged == 0) {
		// Nothing is staged: this chunk is the whole import.
		return st.applyNow(sum)
	}
	return st.stage(sum)
}

// begin checks the channel's own record (the first chunk, or the first
// that stages anything).
func (st *stager) begin() *protocol.Error {
	s, a := st.s, st.args
	line := int64(0)
	if a.Channel != nil {
		line = a.Channel.Line
	} else if len(a.Records) > 0 {
		line = a.Records[0].Line
	}
	switch {
	case s.exists && s.meta.Channel.Deleted:
		st.fail(line, protocol.Errorf(protocol.CodeNotFound, "channel %s was deleted: nothing is imported into it", s.id))
	case a.Channel != nil && a.Chunk == 0:
		v, perr := protocol.DecodeRecord(a.Channel.Record)
		if perr != nil {
			st.fail(line, perr)
			return nil
		}
		r, ok := v.(*protocol.ChannelRecord)
		if !ok {
			st.fail(line, badRequest("the first record of a channel's chunk must be its channel record"))
			return nil
		}
		if s.exists {
			st.reply.Skipped++
			return nil
		}
		ch, perr := s.importedChannel(r, st.now)
		if perr != nil {
			st.fail(line, perr)
			return nil
		}
		st.ch, st.fresh, st.floor = ch, true, ch.LastSegment
	case !s.exists && (a.Chunk == 0 || !a.DryRun):
		st.fail(line, protocol.Errorf(protocol.CodeNotFound, "channel %s does not exist and the import has no channel record for it before this line", s.id))
	}
	return nil
}

// prefetch reads, in one scan, the messages the channel has at the
// segments of the chunk's messages (a second import of a history checks
// every one of them).
func (st *stager) prefetch(heads []protocol.RecordFields) error {
	if st.fresh {
		return nil
	}
	var lo, hi uint64
	for _, h := range heads {
		if h.Kind == protocol.KindMessage && h.Segment > 0 && h.Segment <= st.base {
			if lo == 0 || h.Segment < lo {
				lo = h.Segment
			}
			hi = max(hi, h.Segment)
		}
	}
	if lo == 0 {
		return nil
	}
	recs, err := st.s.log.Scan(persistence.TableMessage, persistence.Range{After: persistence.U64(lo - 1), Before: persistence.U64(hi + 1)})
	if err != nil {
		return err
	}
	st.existing = make(map[uint64][]byte, len(recs))
	for _, r := range recs {
		seg, _ := persistence.ParseU64(r.Key)
		st.existing[seg] = r.Value
	}
	return nil
}

// there decides a record of a channel that exists from its first read
// alone when the channel has it already (a member record of its user, a
// message at its segment with its id): skipped. It reports whether it
// decided.
func (st *stager) there(l *ImportLine, h *protocol.RecordFields) bool {
	if st.fresh || h.Channel != st.s.id {
		return false
	}
	switch {
	case h.Kind == protocol.KindMember && h.User != "":
		m, err := st.s.member(h.User)
		if err != nil || m == nil {
			return false
		}
	case h.Kind == protocol.KindMessage && h.Segment > 0 && h.Segment <= st.base && h.ID != "":
		id, err := st.existingID(h.Segment)
		if err != nil || id != h.ID {
			return false
		}
	default:
		return false
	}
	st.reply.Skipped++
	return true
}

// existingID returns the id of the message the channel has at seg ("":
// none).
func (st *stager) existingID(seg uint64) (string, error) {
	if m, ok := st.s.msgs.get(seg); ok && m != nil {
		return m.ID, nil // the cache's copy may be newer than the store's
	}
	if v, ok := st.existing[seg]; ok {
		if id, ok := leadingID(v); ok {
			return id, nil
		}
		m, err := decodeMessage(v)
		if err != nil {
			return "", err
		}
		return m.ID, nil
	}
	m, err := st.s.message(seg)
	if err != nil || m == nil {
		return "", err
	}
	return m.ID, nil
}

// leadingID reads the id of a stored message, which encode writes first.
func leadingID(v []byte) (string, bool) {
	const pre = `{"id":"`
	if !bytes.HasPrefix(v, []byte(pre)) {
		return "", false
	}
	rest := v[len(pre):]
	i := bytes.IndexByte(rest, '"')
	if i < 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return "", false
	}
	return string(rest[:i]), true
}

// record checks one member or message record and adds what it writes to
// the chunk.
func (st *stager) record(l *ImportLine, v any) {
	switch r := v.(type) {
	case *protocol.MemberRecord:
		st.member(l, r)
	case *protocol.MessageRecord:
		st.message(l, r)
	default:
		st.fail(l.Line, badRequest("a channel's import holds member and message records; users and channels come on lines of their own"))
	}
}

func (st *stager) member(l *ImportLine, r *protocol.MemberRecord) {
	s := st.s
	m, perr := s.importedMember(r)
	if perr != nil {
		st.fail(l.Line, perr)
		return
	}
	if !st.fresh {
		old, err := s.member(m.User)
		if err != nil {
			st.fail(l.Line, internal(err))
			return
		}
		if old != nil {
			st.reply.Skipped++ // the channel has this user's record: it stays
			return
		}
	}
	st.chunk.members = append(st.chunk.members, stagedMember{user: m.User, record: encode(m), line: l.Line})
}

func (st *stager) message(l *ImportLine, r *protocol.MessageRecord) {
	s := st.s
	msg, reacted, perr := s.importedMessage(r)
	if perr != nil {
		st.fail(l.Line, perr)
		return
	}
	if msg.Segment <= st.base && !st.fresh {
		old, err := st.existingID(msg.Segment)
		switch {
		case err != nil:
			st.fail(l.Line, internal(err))
		case old == msg.ID:
			st.reply.Skipped++ // already here
		case old != "":
			st.fail(l.Line, protocol.Errorf(protocol.CodeInvalidState, "segment %d of %s holds message %s, not %s", msg.Segment, s.id, old, msg.ID))
		default:
			st.fail(l.Line, protocol.Errorf(protocol.CodeInvalidState, "segment %d is at or below %s's last segment %d and holds no message: segments are never reused", msg.Segment, s.id, st.base))
		}
		return
	}
	if msg.Segment <= st.lastMsg {
		st.fail(l.Line, badRequest("segment %d goes backwards: a channel's messages come in increasing segment order (the last was %d)", msg.Segment, st.lastMsg))
		return
	}
	if !st.fresh {
		if old, err := s.lookupMessage(msg.ID); err != nil {
			st.fail(l.Line, internal(err))
			return
		} else if old != nil {
			st.fail(l.Line, protocol.Errorf(protocol.CodeInvalidState, "%s already has a message %s, at segment %d", s.id, msg.ID, old.Segment))
			return
		}
	}
	parent := l.ParentSegment
	if msg.ParentID != "" && parent == 0 {
		p, perr := st.existingParent(msg.ParentID)
		if perr != nil {
			st.fail(l.Line, perr)
			return
		}
		parent = p
	}
	if parent >= msg.Segment {
		st.fail(l.Line, badRequest("parent_id %s is not an earlier message", msg.ParentID))
		return
	}
	st.lastMsg = msg.Segment
	if st.firstNew == 0 {
		st.firstNew = msg.Segment
	}
	st.addMessage(msg, reacted, parent, r.ReplyCount == nil)
}

// existingParent resolves the parent of a reply among the messages the
// channel already has: it must be a top-level message.
func (st *stager) existingParent(id string) (uint64, *protocol.Error) {
	s := st.s
	p, err := s.lookupMessage(id)
	switch {
	case err != nil:
		return 0, internal(err)
	case p == nil || st.fresh:
		return 0, badRequest("parent_id %s is not an earlier message of %s", id, s.id)
	case p.ParentID != "":
		return 0, badRequest("parent_id %s is a reply; threads are one level deep (reply to %s)", id, p.ParentID)
	}
	return p.Segment, nil
}

// addMessage adds a new message's records to the chunk.
func (st *stager) addMessage(msg *protocol.Message, reacted map[string][]string, parent uint64, autoCount bool) {
	c := st.chunk
	put := func(t persistence.Table, k, v []byte) {
		if v == nil {
			v = []byte{}
		}
		c.ops = append(c.ops, persistence.Op{Table: t, Key: k, Value: v})
	}
	seg := msg.Segment
	if st.chunkMsgs == nil {
		st.chunkMsgs = map[uint64]bool{}
	}
	st.chunkMsgs[seg] = true
	if msg.ParentID == "" && autoCount {
		// Encoded once the chunk has counted its replies (finishChunk).
		c.autoParents = append(c.autoParents, seg)
		if st.autoMsgs == nil {
			st.autoMsgs = map[uint64]autoMsg{}
		}
		st.autoMsgs[seg] = autoMsg{msg: msg, op: len(c.ops)}
		put(persistence.TableMessage, persistence.U64(seg), nil)
	} else {
		put(persistence.TableMessage, persistence.U64(seg), encode(msg))
	}
	if !canonicalID(msg.ID, seg) {
		put(persistence.TableAux, msgIDKey(msg.ID), persistence.U64(seg))
	}
	if msg.ClientID != "" && msg.User != "" {
		put(persistence.TableIdem, idemStoreKey(msg.User, msg.ClientID), persistence.U64(seg))
	}
	if parent != 0 {
		put(persistence.TableAux, threadKey(parent, seg), nil)
		if !msg.Deleted {
			if parent <= st.base && !st.fresh {
				c.bumps[parent]++
			} else {
				st.countReply(parent)
			}
		}
	}
	for name, users := range reacted {
		for _, u := range users {
			put(persistence.TableAux, reactKey(u, seg, name), nil)
			put(persistence.TableAux, msgReactKey(seg, u, name), nil)
			c.reactors[u]++
		}
	}
	for _, f := range msg.Attachments {
		put(persistence.TableAux, fileSegKey(f.ID, seg), nil)
	}
	c.lastMsg = seg
	st.messages++
	if !msg.Deleted {
		st.live++
	}
	if msg.CreatedAt.After(st.lastActivity.Time) {
		st.lastActivity = msg.CreatedAt
	}
}

// countReply counts a reply of a message the import brings, for its
// reply_count when the record had none: on the message itself when the
// chunk holds it, else in a staged counter (saveReplies) that the commit
// adds; a parent whose record had a reply_count is left as it is.
func (st *stager) countReply(parent uint64) {
	if am, ok := st.autoMsgs[parent]; ok {
		am.msg.ReplyCount++
		return
	}
	if st.chunkMsgs[parent] {
		return // in this chunk, with its reply_count given
	}
	if st.replies == nil {
		st.replies = map[uint64]uint64{}
	}
	st.replies[parent]++
}

// autoMsg is a message whose reply_count the chunk counts, and the index
// of its op.
type autoMsg struct {
	msg *protocol.Message
	op  int
}

// finishChunk encodes the messages whose reply counts the chunk counted.
func (st *stager) finishChunk() {
	for _, am := range st.autoMsgs {
		st.chunk.ops[am.op].Value = encode(am.msg)
	}
}

// saveReplies adds the chunk's reply counts to the staged counters.
func (st *stager) saveReplies() error {
	s := st.s
	for seg, n := range st.replies {
		v, _, err := s.auxGet(stageRepliesKey(seg))
		if err != nil {
			return err
		}
		old, _ := persistence.ParseU64(v)
		s.auxPut(stageRepliesKey(seg), persistence.U64(old+n))
	}
	return nil
}

// stage writes the chunk to the staging area (final: and starts the
// commit).
func (st *stager) stage(sum uint64) (any, *protocol.Error) {
	s, a := st.s, st.args
	m := st.m
	if m == nil {
		m = &importMarker{Token: a.Token, Phase: phaseStaging, Seen: -1, LastMsgChunk: -1, Channel: st.ch}
	}
	if err := st.saveReplies(); err != nil {
		st.fail(0, internal(err))
		s.dropStaged()
		if st.m != nil {
			s.abortImport()
		}
		return st.reply, nil
	}
	if !st.chunk.empty() {
		if st.chunk.lastMsg != 0 {
			m.LastMsgChunk = m.Staged
		}
		s.auxPut(stageChunkKey(m.Staged), st.chunk.encode())
		m.Staged++
	}
	if m.Staged == 0 && m.Channel == nil && !a.Final {
		// Nothing to remember yet: the import of an existing channel
		// whose records so far are all there already.
		return st.reply, nil
	}
	m.Seen, m.Sum = a.Chunk, sum
	m.LastMsg, m.Floor = st.lastMsg, st.floor
	if m.FirstNew == 0 {
		m.FirstNew = st.firstNew
	}
	m.Messages += st.messages
	m.Live += st.live
	if st.lastActivity.After(m.LastActivity.Time) {
		m.LastActivity = st.lastActivity
	}
	if a.Final {
		if perr := s.startCommit(m); perr != nil {
			st.fail(0, perr)
			s.abortImport()
			return st.reply, nil
		}
	}
	s.putMarker(m)
	return st.reply, nil
}

// startCommit checks that what was staged still fits the channel (live
// writes went on while it was staged) and closes the gate.
func (s *State) startCommit(m *importMarker) *protocol.Error {
	switch {
	case m.Channel != nil && s.exists:
		return protocol.Errorf(protocol.CodeInvalidState, "channel %s was created while it was imported", s.id)
	case m.Channel == nil && !s.exists:
		return protocol.Errorf(protocol.CodeInvalidState, "channel %s is gone", s.id)
	case m.FirstNew != 0 && m.FirstNew <= s.meta.Channel.LastSegment:
		return protocol.Errorf(protocol.CodeInvalidState, "channel %s took new messages while it was imported (its last segment is %d now); import it again",
			s.id, s.meta.Channel.LastSegment)
	}
	m.Phase = phaseCommitting
	s.imp.gate = true
	return nil
}

// applyNow applies a whole import held by one chunk in one entry.
func (st *stager) applyNow(sum uint64) (any, *protocol.Error) {
	s, a := st.s, st.args
	m := st.m
	if m == nil {
		m = &importMarker{Token: a.Token, Seen: -1, LastMsgChunk: -1, Channel: st.ch}
	}
	if st.chunk.empty() && m.Channel == nil {
		// All there already: nothing is written.
		if st.m != nil {
			s.abortImport()
		}
		st.reply.Done = true
		return st.reply, nil
	}
	m.LastMsg, m.Floor, m.FirstNew = st.lastMsg, st.floor, st.firstNew
	m.Messages, m.Live = st.messages, st.live
	m.LastActivity = st.lastActivity
	if perr := s.startCommit(m); perr != nil {
		st.fail(0, perr)
		if st.m != nil {
			s.abortImport()
		}
		return st.reply, nil
	}
	m.Seen, m.Sum = a.Chunk, sum
	if err := st.saveReplies(); err != nil {
		st.fail(0, internal(err))
		return st.reply, nil
	}
	step, err := s.applyChunk(st.chunk, m)
	if err != nil {
		s.imp.gate = false
		s.dropStaged() // the reply counts just saved
		st.fail(0, internal(err))
		return st.reply, nil
	}
	rep := s.finishImport(m)
	rep.Members, rep.Skipped = step.Members, step.Skipped+st.reply.Skipped
	m.Result = &rep
	s.putMarker(m)
	return rep, nil
}

func (m *importMarker) String() string {
	return fmt.Sprintf("import %s %s staged=%d steps=%d", m.Token, m.Phase, m.Staged, m.Steps)
}

// ImportInProgress reports whether an import is staged or committing: the
// channel's scope holds records even if the channel does not exist yet.
func (s *State) ImportInProgress() bool {
	return s.imp.marker != nil && s.imp.marker.Phase != phaseDone
}
