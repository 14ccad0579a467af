package channel

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// The commit of an import (import.go): each step applies one staged chunk
// in one entry; the last also makes the import part of the channel.

func (s *State) handleImportCommit(_ Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a ImportTokenArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	m := s.imp.marker
	switch {
	case m != nil && m.Token == a.Token && m.Phase == phaseDone && m.Result != nil:
		return *m.Result, nil
	case m == nil || m.Token != a.Token || m.Phase != phaseCommitting:
		return nil, protocol.Errorf(protocol.CodeInvalidState, "no import %q of %s is committing", a.Token, s.id)
	}
	k := m.chunkAt(m.Steps)
	v, err := s.log.Get(persistence.TableAux, stageChunkKey(k))
	if err != nil {
		return nil, internal(err)
	}
	c, err := decodeImportChunk(v)
	if err != nil {
		return nil, internal(err)
	}
	step, err := s.applyChunk(c, m)
	if err != nil {
		return nil, internal(err)
	}
	s.entry().Del(persistence.TableAux, stageChunkKey(k))
	m.Steps++
	rep := ImportReply{Skipped: step.Skipped}
	if m.Steps >= m.Staged {
		fin := s.finishImport(m)
		fin.Skipped = rep.Skipped
		rep = fin
		m.Result = &rep
	}
	s.imp.stepIndex = s.cur.Index
	s.putMarker(m)
	return rep, nil
}

// chunkAt is the staged chunk the commit applies at step: in order, but
// the one with the newest message last.
func (m *importMarker) chunkAt(step int) int {
	switch {
	case m.LastMsgChunk < 0:
		return step
	case step == m.Staged-1:
		return m.LastMsgChunk
	case step >= m.LastMsgChunk:
		return step + 1
	}
	return step
}

// stepCounts are what one commit step decided.
type stepCounts struct {
	Members, Skipped int64
}

// applyChunk writes a chunk's records with the current entry. It reads
// everything it needs first, so a failed read writes nothing.
func (s *State) applyChunk(c *importChunk, m *importMarker) (stepCounts, error) {
	var out stepCounts
	// Reads.
	// Replies later chunks counted for this chunk's messages: one scan.
	replies := map[uint64]uint64{}
	if len(c.autoParents) > 0 {
		lo, hi := slices.Min(c.autoParents), slices.Max(c.autoParents)
		recs, err := s.auxScan(stageRepliesKey(lo-1), stageRepliesKey(hi+1), 0, false)
		if err != nil {
			return out, err
		}
		pre := len(stageRepliesKey(0)) - 8
		auto := map[uint64]bool{}
		for _, seg := range c.autoParents {
			auto[seg] = true
		}
		for _, r := range recs {
			seg, _ := persistence.ParseU64(r.Key[pre:])
			if auto[seg] {
				replies[seg], _ = persistence.ParseU64(r.Value)
			}
		}
	}
	olds := make([]*memberRecord, len(c.members))
	for i, sm := range c.members {
		old, err := s.member(sm.user)
		if err != nil {
			return out, err
		}
		olds[i] = old
	}
	counts := make(map[string]userCounts, len(c.reactors))
	for u, n := range c.reactors {
		uc, err := s.userCounts(u)
		if err != nil {
			return out, err
		}
		uc.Reactions += n
		counts[u] = uc
	}
	parents := make(map[uint64]*protocol.Message, len(c.bumps))
	for seg, n := range c.bumps {
		p, err := s.message(seg)
		if err != nil {
			return out, err
		}
		if p != nil {
			p = cloneMessage(p)
			p.ReplyCount += n
			parents[seg] = p
		}
	}
	// The messages whose records change here: counted reply counts, and
	// the newest, which the channel keeps.
	decoded := map[uint64]*protocol.Message{}
	for _, op := range c.ops {
		if op.Table != persistence.TableMessage {
			continue
		}
		seg, _ := persistence.ParseU64(op.Key)
		if replies[seg] > 0 || seg == m.LastMsg {
			msg, err := decodeMessage(op.Value)
			if err != nil {
				return out, err
			}
			decoded[seg] = msg
		}
	}
	members := make([]*memberRecord, len(c.members))
	for i, sm := range c.members {
		if olds[i] != nil {
			continue
		}
		var nm memberRecord
		if json.Unmarshal(sm.record, &nm) != nil {
			return out, ErrCorrupt
		}
		members[i] = &nm
	}
	// Writes.
	e := s.entry()
	for _, op := range c.ops {
		v := op.Value
		if op.Table == persistence.TableMessage {
			seg, _ := persistence.ParseU64(op.Key)
			if msg := decoded[seg]; msg != nil {
				if n := replies[seg]; n > 0 {
					msg.ReplyCount += int64(n)
					v = encode(msg)
				}
				if seg == m.LastMsg {
					s.lastMsg = msg
				}
			}
		}
		if op.Table == persistence.TableAux {
			// Write through the cache, which may know the key absent.
			s.rich.aux.write(string(op.Key), auxVal{v: v, ok: true}, s.cur.Index)
		}
		if op.Table == persistence.TableIdem && s.idemF != nil {
			s.idemF.add(op.Key) // the filter holds every key (idemfilter.go)
		}
		e.Ops = append(e.Ops, persistence.Op{Table: op.Table, Key: op.Key, Value: v})
	}
	seen := map[string]bool{}
	for i, nm := range members {
		if nm == nil || seen[nm.User] {
			out.Skipped++ // the user has a record by now: it stays
			continue
		}
		seen[nm.User] = true
		s.putMember(nm)
		out.Members++
		m.Members++
		if counted(nm) {
			m.MemberCount++
		}
		if listedMember(nm) {
			s.notice(c.members[i].user, true, protocol.ReasonAdded)
		}
	}
	if len(s.cur.Notices) > 0 {
		s.cur.NoticeChannel = encode(s.importView(m))
	}
	for u, uc := range counts {
		s.putUserCounts(u, uc)
	}
	for _, p := range parents {
		s.putMessage(p)
	}
	return out, nil
}

// importView is the channel as the import will leave it, for the notices
// of members added before the last step.
func (s *State) importView(m *importMarker) *protocol.Channel {
	if s.exists || m.Channel == nil {
		return s.channelView()
	}
	c := *m.Channel
	c.Tags = append([]string{}, c.Tags...)
	return &c
}

// ImportedEvent is the data of the channel.updated event an import ends
// with (reason imported): watchers reload the channel.
type ImportedEvent struct {
	Channel  *protocol.Channel `json:"channel"`
	Reason   string            `json:"reason"`
	Imported ImportedCounts    `json:"imported"`
}

// ImportedCounts say what an import brought.
type ImportedCounts struct {
	Messages    int64  `json:"messages"`
	Members     int64  `json:"members"`
	FromSegment uint64 `json:"from_segment,omitempty"`
	ToSegment   uint64 `json:"to_segment,omitempty"`
}

// finishImport makes the import part of the channel (the last step's
// entry): the channel itself when the import creates it, its counters and
// counts, the event, and the end of the staging area. The gate opens once
// this entry is durable.
func (s *State) finishImport(m *importMarker) ImportReply {
	rep := ImportReply{Done: true, Members: m.Members, Messages: m.Messages}
	if m.Channel != nil {
		s.exists = true
		s.meta.Channel = *m.Channel
		s.meta.Channel.LastSegment = 0
		s.meta.Channel.MemberCount, s.meta.Channel.MessageCount = 0, 0
		if s.cfg.Webhooks {
			// Webhooks hear of an imported channel from its first event.
			s.meta.HookSeq, s.meta.HookSet = s.meta.LastSeq, true
		}
		rep.Channels = 1
	}
	c := &s.meta.Channel
	c.LastSegment = max(c.LastSegment, m.Floor, m.LastMsg)
	c.MessageCount += m.Live
	c.MemberCount += m.MemberCount
	switch {
	case m.Channel != nil && c.LastActivity.IsZero():
		c.LastActivity = c.CreatedAt
		if m.LastActivity.After(c.LastActivity.Time) {
			c.LastActivity = m.LastActivity
		}
	case m.Channel == nil && m.LastActivity.After(c.LastActivity.Time):
		c.LastActivity = m.LastActivity
	}
	s.settingsChanged()
	s.emit(protocol.EventChannelUpdated, ImportedEvent{Channel: s.channelView(), Reason: protocol.ReasonImported,
		Imported: ImportedCounts{Messages: m.Messages, Members: m.Members, FromSegment: m.FirstNew, ToSegment: m.LastMsg}})
	s.dropStaged()
	m.Phase = phaseDone
	s.imp.orphan = false
	s.imp.gateIndex = s.cur.Index
	return rep
}
