package channel

import (
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Threads are one level deep: a reply names a top-level parent, shares the
// channel's segment counter, and is listed in the parent's thread index
// (aux thread\0<parent><reply>), so a thread pages by a range scan of its
// index however far apart its replies lie. The parent's reply_count counts
// replies not deleted; every change to it is announced with a
// message.updated event for the parent.

// threadParent resolves the parent_id of messages.history.
func (s *State) threadParent(id string) (*protocol.Message, *protocol.Error) {
	p, perr := s.findMessage(id)
	if perr != nil {
		return nil, perr
	}
	if p.ParentID != "" {
		return nil, badRequest("message %s is a reply; its thread is that of %s", id, p.ParentID)
	}
	return p, nil
}

// replied records a new reply in its parent's thread: the index, the
// parent's reply_count, and a message.updated event for the parent.
func (s *State) replied(c Caller, parent, reply *protocol.Message) {
	s.auxPut(threadKey(parent.Segment, reply.Segment), nil)
	p := cloneMessage(parent)
	p.ReplyCount++
	s.putMessage(p)
	s.emit(protocol.EventMessageUpdated, messageEvent{Message: eventMessage{p}, Actor: c.User})
}

// replyDeleted lowers the parent's reply_count when a reply is deleted
// and announces it. The reply stays in the index: history lists deleted
// messages as tombstones.
func (s *State) replyDeleted(old *protocol.Message, actor string) {
	if old.ParentID == "" {
		return
	}
	parent, perr := s.findMessage(old.ParentID)
	if perr != nil || parent.ReplyCount == 0 {
		return // nothing to keep in step
	}
	p := cloneMessage(parent)
	p.ReplyCount--
	s.putMessage(p)
	s.emit(protocol.EventMessageUpdated, messageEvent{Message: eventMessage{p}, Actor: actor})
}

// threadPage is page for the replies of the message at parent: it walks
// the thread's index rather than the channel, in chunks, reading only the
// replies. Its results mean what page's do.
func (s *State) threadPage(parent uint64, q pageQuery) ([]*protocol.Message, bool, uint64, error) {
	pre := threadPrefix(parent)
	after := append(append([]byte{}, pre...), persistence.U64(q.after)...)
	before := threadPrefix(parent + 1)
	if q.before != 0 {
		before = append(append([]byte{}, pre...), persistence.U64(q.before)...)
	}
	var out []*protocol.Message
	scanned := 0
	var last uint64 // the last reply examined
	chunk := min(max(q.limit+1, minPageChunk), maxPageChunk)
	for len(out) <= q.limit {
		recs, err := s.auxScan(after, before, chunk, !q.forward)
		if err != nil {
			return nil, false, 0, err
		}
		for _, r := range recs {
			if scanned >= s.scanBudget() {
				return finishPage(out, q), true, last, nil
			}
			seg, _ := persistence.ParseU64(r.Key[len(pre):])
			if !s.visible(seg) {
				continue // a reply an import has not committed yet
			}
			m, err := s.message(seg)
			if err != nil {
				return nil, false, 0, err
			}
			scanned++
			last = seg
			if m != nil && (q.filter == nil || q.filter(m)) {
				out = append(out, m)
				if len(out) > q.limit {
					break
				}
			}
		}
		if len(recs) < chunk {
			break // the index holds no more
		}
		k := recs[len(recs)-1].Key
		if q.forward {
			after = k
		} else {
			before = k
		}
		chunk = min(chunk*2, maxPageChunk)
	}
	more := len(out) > q.limit
	var next uint64
	if more {
		out = out[:q.limit]
		next = out[q.limit-1].Segment
	}
	return finishPage(out, q), more, next, nil
}
