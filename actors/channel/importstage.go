package channel

import (
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// The staging of an import (import.go): each chunk is checked against
// the channel and what it writes is decided here, then staged or, for an
// import of one chunk, applied at once.

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
		if id, ok := protocol.LeadingString(v, "id"); ok {
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
