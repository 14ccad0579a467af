package channel

import (
	"bytes"
	"encoding/json"
	"slices"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// OpExport is an internal op (never accepted from clients): one page of
// the channel's records for GET /v1/export. The gateway asks for the
// channel's record (part channel), then pages through its members and its
// messages; each page is read by the channel, so an export sees what the
// channel serves (undurable writes included, as replies do) and never
// holds more than a page of it.
const OpExport = "_channel.export"

// Parts of an export.
const (
	ExportChannel  = "channel"
	ExportMembers  = "members"
	ExportMessages = "messages"
)

// ExportArgs ask for one page.
type ExportArgs struct {
	Part string `json:"part"`
	// After is the last member's user id of the previous page.
	After string `json:"after,omitempty"`
	// AfterSegment is the last message's segment of the previous page;
	// Upto the channel's last segment when its export began (the part
	// channel answers it), so messages sent since are left out.
	AfterSegment uint64 `json:"after_segment,omitempty"`
	Upto         uint64 `json:"upto,omitempty"`
	// MaxBytes bounds the page (at least one record; 0: 256 KiB).
	MaxBytes int `json:"max_bytes,omitempty"`
}

// ExportHead is the first line of a page's result; the records follow,
// one a line, as an export writes them.
type ExportHead struct {
	Records      int    `json:"records"`
	Done         bool   `json:"done"`
	After        string `json:"after,omitempty"`
	AfterSegment uint64 `json:"after_segment,omitempty"`
	Upto         uint64 `json:"upto,omitempty"`
}

const defaultExportPage = 256 << 10

// exportPage builds a page's result.
type exportPage struct {
	head  ExportHead
	lines [][]byte
	size  int
	max   int
}

func (p *exportPage) add(line []byte) {
	p.lines = append(p.lines, line)
	p.size += len(line) + 1
	p.head.Records++
}

func (p *exportPage) full() bool { return p.head.Records > 0 && p.size >= p.max }

func (p *exportPage) bytes() json.RawMessage {
	h := encode(p.head)
	b := make([]byte, 0, len(h)+1+p.size)
	b = append(append(b, h...), '\n')
	for _, l := range p.lines {
		b = append(append(b, l...), '\n')
	}
	return b
}

// withKind returns the JSON object obj with "kind" first and extra
// (",\"key\":value" pairs, or nothing) last.
func withKind(kind string, obj, extra []byte) []byte {
	b := make([]byte, 0, len(obj)+len(kind)+len(extra)+12)
	b = append(b, `{"kind":"`...)
	b = append(b, kind...)
	b = append(b, '"')
	if len(obj) > 2 {
		b = append(b, ',')
		b = append(b, obj[1:len(obj)-1]...)
	}
	b = append(b, extra...)
	return append(b, '}')
}

func (s *State) handleExport(_ Caller, args json.RawMessage, _ time.Time) (any, *protocol.Error) {
	var a ExportArgs
	if err := protocol.DecodeArgs(args, &a); err != nil {
		return nil, err
	}
	p := &exportPage{max: a.MaxBytes}
	if p.max <= 0 {
		p.max = defaultExportPage
	}
	var err error
	switch a.Part {
	case ExportChannel:
		c := s.meta.Channel // as stored: nothing of the reader's, nothing of the time of reading
		c.LastMessage, c.Member, c.UnreadCount, c.Mentioned = nil, nil, nil, nil
		if c.Tags == nil {
			c.Tags = []string{}
		}
		p.add(withKind(protocol.KindChannel, encode(&c), nil))
		p.head.Done, p.head.Upto = true, c.LastSegment
	case ExportMembers:
		err = s.exportMembers(p, a.After)
	case ExportMessages:
		err = s.exportMessages(p, a.AfterSegment, a.Upto)
	default:
		return nil, badRequest("part must be channel, members or messages")
	}
	if err != nil {
		return nil, internal(err)
	}
	return p.bytes(), nil
}

func (s *State) exportMembers(p *exportPage, after string) error {
	for {
		page, more, err := s.memberPage(after, 256)
		if err != nil {
			return err
		}
		for i, m := range page {
			v := m.Member // the stored record, with its unread count
			v.UnreadCount = s.unread(m)
			p.add(withKind(protocol.KindMember, encode(&v), nil))
			after = m.User
			if p.full() {
				p.head.Done, p.head.After = !more && i == len(page)-1, after
				return nil
			}
		}
		if !more || len(page) == 0 {
			p.head.Done, p.head.After = true, after
			return nil
		}
	}
}

// exportBatch is how many messages one store read of an export takes.
const exportBatch = 256

func (s *State) exportMessages(p *exportPage, after, upto uint64) error {
	for !p.full() && after < upto {
		segs, encs, err := s.exportScan(after, upto)
		if err != nil {
			return err
		}
		if len(segs) == 0 {
			after = upto
			break
		}
		reacted, err := s.reactedIn(segs[0], segs[len(segs)-1])
		if err != nil {
			return err
		}
		for i, seg := range segs {
			r := reacted[seg]
			if r == nil {
				r = map[string][]string{}
			}
			p.add(withKind(protocol.KindMessage, encs[i], append([]byte(`,"reacted":`), encode(r)...)))
			after = seg
			if p.full() {
				break
			}
		}
	}
	p.head.AfterSegment = after
	p.head.Done = after >= upto
	return nil
}

// exportScan returns the next messages above after (up to upto) with
// their stored encodings, the cache's copy where a write is not yet
// durable.
func (s *State) exportScan(after, upto uint64) ([]uint64, [][]byte, error) {
	r := persistence.Range{After: persistence.U64(after), Before: persistence.U64(upto + 1), Limit: exportBatch}
	recs, err := s.log.Scan(persistence.TableMessage, r)
	if err != nil {
		return nil, nil, err
	}
	edge := upto
	if len(recs) == exportBatch {
		edge, _ = persistence.ParseU64(recs[len(recs)-1].Key)
	}
	enc := map[uint64][]byte{}
	var segs []uint64
	for _, rec := range recs {
		seg, _ := persistence.ParseU64(rec.Key)
		if !s.msgs.isDirty(seg) {
			enc[seg] = protocol.Sanitize(rec.Value) // see decodeMessage
			segs = append(segs, seg)
		}
	}
	s.msgs.eachDirty(func(seg uint64, m *protocol.Message) {
		if seg > after && seg <= edge && m != nil {
			enc[seg] = encode(m)
			segs = append(segs, seg)
		}
	})
	slices.Sort(segs)
	out := make([][]byte, len(segs))
	for i, seg := range segs {
		out[i] = enc[seg]
	}
	return segs, out, nil
}

// reactedIn returns who reacted to the messages in [lo, hi]: segment →
// reaction → user ids, sorted.
func (s *State) reactedIn(lo, hi uint64) (map[uint64]map[string][]string, error) {
	recs, err := s.auxScan(msgReactPrefix(lo), msgReactPrefix(hi+1), 0, false)
	if err != nil {
		return nil, err
	}
	out := map[uint64]map[string][]string{}
	pre := len(nsMsgReact)
	for _, r := range recs {
		seg, ok := persistence.ParseU64(r.Key[pre : pre+8])
		user, name, found := bytes.Cut(r.Key[pre+8:], []byte{0})
		if !ok || !found {
			return nil, ErrCorrupt
		}
		byName := out[seg]
		if byName == nil {
			byName = map[string][]string{}
			out[seg] = byName
		}
		byName[string(name)] = append(byName[string(name)], string(user))
	}
	for _, byName := range out {
		for _, users := range byName {
			slices.Sort(users)
		}
	}
	return out, nil
}
