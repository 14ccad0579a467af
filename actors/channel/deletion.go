package channel

import (
	"bytes"

	"github.com/switchboard-chat/switchboard/protocol"
)

// deletion is what deleting a message removes beside the message itself:
// every reaction and favorite it holds (with their by-message copies), its
// users' counts lowered to match, and its records of the files it carries.
// It is read before anything is written (planDeletion), so a failed read
// refuses the deletion rather than half-doing it.
type deletion struct {
	keys   [][]byte              // aux records to delete
	counts map[string]userCounts // the new counts of the users concerned
}

// planDeletion reads what deleting old removes.
func (s *State) planDeletion(old *protocol.Message) (*deletion, error) {
	d := &deletion{counts: map[string]userCounts{}}
	count := func(user string) (userCounts, error) {
		if uc, ok := d.counts[user]; ok {
			return uc, nil
		}
		return s.userCounts(user)
	}
	seg := old.Segment
	pre := msgReactPrefix(seg)
	recs, err := s.auxPrefix(pre, 0)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		user, name, ok := bytes.Cut(r.Key[len(pre):], []byte{0})
		if !ok {
			return nil, ErrCorrupt
		}
		uc, err := count(string(user))
		if err != nil {
			return nil, err
		}
		uc.Reactions = max(uc.Reactions-1, 0)
		d.counts[string(user)] = uc
		d.keys = append(d.keys, r.Key, reactKey(string(user), seg, string(name)))
	}
	pre = msgFavPrefix(seg)
	if recs, err = s.auxPrefix(pre, 0); err != nil {
		return nil, err
	}
	for _, r := range recs {
		user := string(r.Key[len(pre):])
		uc, err := count(user)
		if err != nil {
			return nil, err
		}
		uc.Favorites = max(uc.Favorites-1, 0)
		d.counts[user] = uc
		d.keys = append(d.keys, r.Key, favKey(user, seg))
	}
	for _, f := range old.Attachments {
		d.keys = append(d.keys, fileSegKey(f.ID, seg))
		// A record of the former shape names one message: it goes with
		// that one only.
		if at, ok, err := s.legacyFileSegment(f.ID); err != nil {
			return nil, err
		} else if ok && at == seg {
			d.keys = append(d.keys, fileKey(f.ID))
		}
	}
	return d, nil
}

// deleting applies a message's deletion to the rich state before the
// deleted version m of old is written: its reactions and favorites go
// (counts and all), its files stop being readable through it, and a reply
// leaves its parent's reply_count.
func (s *State) deleting(old, m *protocol.Message, d *deletion, actor string) {
	m.Reactions = nil
	for _, k := range d.keys {
		s.auxDel(k)
	}
	for user, uc := range d.counts {
		s.putUserCounts(user, uc)
	}
	s.replyDeleted(old, actor)
}
