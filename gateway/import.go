package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/switchboard-chat/switchboard/actors/channel"
	"github.com/switchboard-chat/switchboard/actors/user"
	"github.com/switchboard-chat/switchboard/cluster/clusterpb"
	"github.com/switchboard-chat/switchboard/protocol"
)

// POST /v1/import[?dry_run=true] (API key only) reads NDJSON records as a
// stream, a line at a time (at most protocol.MaxRecordBytes each). Users
// are imported as their lines come. A channel's records — its channel
// record, then its members and messages, together — go to the channel in
// chunks (channel.OpImportStage), which applies them all or none
// (actors/channel/import.go); a channel without a channel record must
// exist. The gateway checks what needs the whole file: the order of
// segments, thread parents, repeated ids and memberships. A bad line is
// reported with its number and stops its channel's import; other channels
// go on. Users the records name are created if they do not exist.

// Bounds of an import.
const (
	// importChunkBytes is how many bytes of records one chunk carries:
	// what it writes is one entry of the channel's log, bounded well
	// under what one entry may be, and a channel this size or smaller is
	// imported in that one entry.
	importChunkBytes = 512 << 10
	maxImportErrors  = 1000    // errors listed in the reply
	importUserOps    = 32      // user records and checks in flight
	maxEnsured       = 1 << 20 // users remembered as checked
)

func (g *Gateway) serveImport(w http.ResponseWriter, r *http.Request) {
	_, apiKey, ok := g.admitAPI(w, r)
	if !ok {
		return
	}
	defer g.end()
	if !apiKey {
		writeHTTPError(w, 0, apiKeyOnly())
		return
	}
	dry := false
	for k, vs := range r.URL.Query() {
		switch {
		case k != "dry_run":
			writeHTTPError(w, 0, protocol.Errorf(protocol.CodeBadRequest, "unknown query parameter %q: POST %s takes dry_run", k, protocol.PathImport))
			return
		case len(vs) != 1 || (vs[0] != "true" && vs[0] != "false" && vs[0] != "1" && vs[0] != "0"):
			writeHTTPError(w, 0, protocol.Errorf(protocol.CodeBadRequest, "dry_run must be true or false"))
			return
		}
		dry = vs[0] == "true" || vs[0] == "1"
	}
	imp := &importer{g: g, ctx: r.Context(), dry: dry, token: randomID() + randomID(), groups: map[string]bool{},
		refused: map[string]*protocol.Error{}, ensured: map[string]bool{}, userOps: make(chan struct{}, importUserOps)}
	imp.run(r.Body)
	res := imp.result()
	b, _ := json.Marshal(res)
	writeJSON(w, http.StatusOK, b)
}

// importer is one import.
type importer struct {
	g     *Gateway
	ctx   context.Context
	dry   bool
	token string

	cur *group
	// groups are the channels whose records have begun; refused are
	// channels a bad line condemned before their records began.
	groups  map[string]bool
	refused map[string]*protocol.Error

	mu       sync.Mutex // guards the fields below (user records complete on their own)
	res      protocol.ImportResult
	errs     []protocol.ImportError
	unlisted int64
	// ensured are users this import made sure of: true when it created
	// them, from a reference, before any record of theirs came.
	ensured map[string]bool

	userOps chan struct{} // slots of user operations in flight
	users   sync.WaitGroup
}

// group is the records of one channel.
type group struct {
	id     string
	line   int64               // the line it began at
	record *channel.ImportLine // its channel record (nil: the channel exists)
	chunk  []channel.ImportLine
	size   int
	sent   int  // chunks sent
	staged bool // the channel may hold some of it: abort on failure
	failed bool
	// inflight is the reply of the chunk on its way (inflightChunk).
	inflight      chan *clusterpb.Reply
	inflightChunk []channel.ImportLine
	// refusal, when set, is what every later line of the group is told
	// (the channel does not exist).
	refusal *protocol.Error

	lastSeg uint64
	ids     map[uint64]msgRef // message ids (hashed): segment, reply or not
	members map[string]bool
	refs    map[string]bool // users named
	counts  protocol.ImportResult
}

type msgRef struct {
	seg   uint64
	reply bool
}

func (imp *importer) fail(line int64, e *protocol.Error) {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	if len(imp.errs) >= maxImportErrors {
		imp.unlisted++
		return
	}
	imp.errs = append(imp.errs, protocol.ImportError{Line: line, Code: e.Code, Message: e.Message})
}

func (imp *importer) result() protocol.ImportResult {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	res := imp.res
	res.Errors = slices.Clone(imp.errs)
	slices.SortStableFunc(res.Errors, func(a, b protocol.ImportError) int { return int(a.Line - b.Line) })
	if imp.unlisted > 0 {
		res.Errors = append(res.Errors, protocol.ImportError{Code: protocol.CodeBadRequest,
			Message: fmt.Sprintf("%d more errors are not listed", imp.unlisted)})
	}
	if res.Errors == nil {
		res.Errors = []protocol.ImportError{}
	}
	return res
}

// run reads the body to its end (or the request's).
func (imp *importer) run(body io.Reader) {
	br := bufio.NewReaderSize(body, 64<<10)
	buf := make([]byte, 0, 64<<10)
	for n := int64(1); ; n++ {
		line, oversize, err := readLine(br, protocol.MaxRecordBytes, buf[:0])
		buf = line[:0]
		if len(line) > 0 || oversize || err == nil {
			imp.line(n, line, oversize)
		}
		if err == io.EOF {
			break
		}
		if err != nil || imp.ctx.Err() != nil {
			imp.fail(0, protocol.Errorf(protocol.CodeBadRequest, "reading the body failed at line %d", n))
			imp.abortGroup()
			imp.users.Wait()
			return
		}
	}
	imp.finishGroup()
	imp.users.Wait()
}

// readLine reads one line without its newline (or \r\n). A line longer
// than max is oversize: its first max bytes are returned, the rest read
// and dropped.
func readLine(br *bufio.Reader, max int, buf []byte) ([]byte, bool, error) {
	oversize := false
	for {
		frag, err := br.ReadSlice('\n')
		if n := min(len(frag), max+1-len(buf)); n > 0 {
			buf = append(buf, frag[:n]...)
		}
		if len(buf) > max {
			oversize = true
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		buf = bytes.TrimSuffix(buf, []byte("\n"))
		buf = bytes.TrimSuffix(buf, []byte("\r"))
		if len(buf) > max {
			buf = buf[:max]
		}
		return buf, oversize, err
	}
}

// line handles one line.
func (imp *importer) line(n int64, b []byte, oversize bool) {
	if len(bytes.TrimSpace(b)) == 0 && !oversize {
		return // blank lines count, and say nothing
	}
	if oversize {
		imp.bad(n, protocol.HeadOf(b), protocol.Errorf(protocol.CodeTooLarge, "the line is over %d bytes", protocol.MaxRecordBytes))
		return
	}
	// Member and message records are read for what the file's checks
	// need; their channel decodes and checks them whole.
	f, perr := protocol.ScanRecord(b, true)
	if perr != nil {
		imp.bad(n, protocol.HeadOf(b), perr)
		return
	}
	switch f.Kind {
	case protocol.KindUser, protocol.KindChannel:
		v, perr := protocol.DecodeRecord(b)
		if perr != nil {
			imp.bad(n, protocol.HeadOf(b), perr)
			return
		}
		if r, ok := v.(*protocol.UserRecord); ok {
			imp.user(n, r)
		} else {
			imp.channelRecord(n, b, v.(*protocol.ChannelRecord))
		}
	case protocol.KindMember:
		imp.record(n, b, &f, func(g *group) *protocol.Error { return imp.member(g, &f) }, nil)
	case protocol.KindMessage:
		var parent uint64
		imp.record(n, b, &f, func(g *group) *protocol.Error {
			var perr *protocol.Error
			parent, perr = imp.message(g, &f)
			return perr
		}, &parent)
	}
}

// bad reports a line that is not a valid record, and refuses the channel
// it belongs to (as far as it can tell: the current one when it names
// none).
func (imp *importer) bad(n int64, h protocol.RecordHead, e *protocol.Error) {
	imp.fail(n, e)
	ch := h.Channel
	if h.Kind == protocol.KindUser {
		return
	}
	if ch == "" && imp.cur != nil {
		ch = imp.cur.id
	}
	switch {
	case ch == "":
	case imp.cur != nil && imp.cur.id == ch:
		imp.cur.failed = true
	case !imp.groups[ch]:
		imp.refused[ch] = protocol.Errorf(protocol.CodeBadRequest, "line %d of channel %s was refused: none of its records are applied", n, ch)
	}
}

func (imp *importer) user(n int64, r *protocol.UserRecord) {
	if perr := imp.g.checkID("id", r.ID); perr != nil {
		imp.fail(n, perr)
		return
	}
	imp.mu.Lock()
	overwrite := imp.ensured[r.ID]
	imp.ensured[r.ID] = false
	imp.mu.Unlock()
	args, _ := json.Marshal(user.ImportArgs{User: r, Overwrite: overwrite, DryRun: imp.dry})
	imp.userOp(r.ID, args, func(rep *clusterpb.Reply, created bool) {
		switch {
		case rep.Error != nil:
			imp.fail(n, replyError(rep))
		case created:
			imp.mu.Lock()
			imp.res.Users++
			imp.mu.Unlock()
		default:
			imp.mu.Lock()
			imp.res.Skipped++
			imp.mu.Unlock()
		}
	})
}

// userOp runs OpImport on a user, a bounded number at a time.
func (imp *importer) userOp(id string, args []byte, done func(rep *clusterpb.Reply, created bool)) {
	select {
	case imp.userOps <- struct{}{}:
	case <-imp.ctx.Done():
		return
	}
	imp.users.Go(func() {
		defer func() { <-imp.userOps }()
		rep := imp.g.requestRetrying(imp.ctx, &clusterpb.Request{Kind: kindUser, Target: id, Op: user.OpImport, Args: args,
			Caller: &clusterpb.Caller{Admin: true}})
		var res user.ImportResult
		if rep.Error == nil {
			_ = json.Unmarshal(rep.Result, &res)
		}
		done(rep, res.Created)
	})
}

// channelRecord starts a channel's group.
func (imp *importer) channelRecord(n int64, b []byte, r *protocol.ChannelRecord) {
	imp.finishGroup()
	if perr := imp.g.checkID("id", r.ID); perr != nil {
		imp.fail(n, perr)
		return
	}
	g := imp.begin(r.ID, n)
	g.record = &channel.ImportLine{Line: n, Record: bytes.Clone(b)}
}

// begin starts the group of channel id at line n.
func (imp *importer) begin(id string, n int64) *group {
	g := &group{id: id, line: n, ids: map[uint64]msgRef{}, members: map[string]bool{}, refs: map[string]bool{}}
	if imp.groups[id] {
		imp.fail(n, protocol.Errorf(protocol.CodeBadRequest, "channel %s appears again: a channel's records come together, after its channel record", id))
		g.failed = true
		g.refusal = protocol.Errorf(protocol.CodeBadRequest, "channel %s appeared before this line already", id)
	}
	if e := imp.refused[id]; e != nil {
		g.failed = true
		delete(imp.refused, id)
	}
	imp.groups[id] = true
	imp.cur = g
	return g
}

// record adds a member or message line to its channel's group; check is
// the line's own checks, parent where it puts a reply's parent segment.
func (imp *importer) record(n int64, b []byte, f *protocol.RecordFields, check func(*group) *protocol.Error, parent *uint64) {
	ch := f.Channel
	if perr := imp.g.checkID("channel", ch); perr != nil {
		imp.bad(n, protocol.RecordHead{}, perr)
		return
	}
	g := imp.cur
	if g == nil || g.id != ch {
		if imp.groups[ch] {
			imp.fail(n, protocol.Errorf(protocol.CodeBadRequest, "a record of channel %s after other channels' records: a channel's records come together, after its channel record", ch))
			return
		}
		imp.finishGroup()
		g = imp.begin(ch, n)
	}
	if g.refusal != nil {
		imp.fail(n, g.refusal)
		return
	}
	if perr := check(g); perr == errSkip {
		g.counts.Skipped++
		return
	} else if perr != nil {
		imp.fail(n, perr)
		g.failed = true
		return
	}
	if g.failed {
		return // checked, not sent: the channel is refused
	}
	// What the chunk writes is about its records' size, and more for
	// who reacted (two keys for each): a chunk is sent before a record
	// would take it over the bound.
	cost := len(b)
	for _, u := range f.Reactors {
		cost += 2 * (len(u) + 24)
	}
	if g.size > 0 && g.size+cost > importChunkBytes {
		imp.send(g, false)
	}
	l := channel.ImportLine{Line: n, Record: bytes.Clone(b)}
	if parent != nil {
		l.ParentSegment = *parent
	}
	g.chunk = append(g.chunk, l)
	g.size += cost
}

// member checks a member line against the file: one per user.
func (imp *importer) member(g *group, r *protocol.RecordFields) *protocol.Error {
	if perr := imp.g.checkID("user", r.User); perr != nil {
		return perr
	}
	if g.members[r.User] {
		return errSkip
	}
	g.members[r.User] = true
	g.refs[r.User] = true
	return nil
}

// errSkip marks a line skipped by the file's own rules (a membership
// given twice: the first one counts).
var errSkip = &protocol.Error{Code: "skip"}

// message checks a message line against the file: segments increase,
// ids are not repeated, a parent is an earlier top-level message (or one
// the channel has). It returns the parent's segment when the file has it.
func (imp *importer) message(g *group, r *protocol.RecordFields) (uint64, *protocol.Error) {
	if r.Segment <= g.lastSeg {
		return 0, protocol.Errorf(protocol.CodeBadRequest, "segment %d goes backwards: a channel's messages come in increasing segment order (the last was %d)", r.Segment, g.lastSeg)
	}
	h := xxhash.Sum64String(r.ID)
	if prev, ok := g.ids[h]; ok {
		return 0, protocol.Errorf(protocol.CodeBadRequest, "message id %s is used by segment %d already", r.ID, prev.seg)
	}
	var parent uint64
	if r.ParentID != "" {
		p, ok := g.ids[xxhash.Sum64String(r.ParentID)]
		switch {
		case ok && p.reply:
			return 0, protocol.Errorf(protocol.CodeBadRequest, "parent_id %s is a reply; threads are one level deep", r.ParentID)
		case ok:
			parent = p.seg
		}
	}
	g.lastSeg = r.Segment
	g.ids[h] = msgRef{seg: r.Segment, reply: r.ParentID != ""}
	if r.User != "" {
		g.refs[r.User] = true
	}
	for _, u := range r.Reactors {
		if imp.g.checkID("reacted", u) == nil {
			g.refs[u] = true
		}
	}
	return parent, nil
}

// ensure creates the users a channel's records named that do not exist.
func (imp *importer) ensure(refs map[string]bool) {
	for u := range refs {
		imp.mu.Lock()
		_, done := imp.ensured[u]
		if !done {
			if len(imp.ensured) >= maxEnsured {
				clear(imp.ensured) // checking again is harmless
			}
			imp.ensured[u] = false
		}
		imp.mu.Unlock()
		if done {
			continue
		}
		imp.userOp(u, []byte("{}"), func(rep *clusterpb.Reply, created bool) {
			if rep.Error != nil {
				e := replyError(rep)
				imp.fail(0, protocol.Errorf(e.Code, "user %s, named by the records, could not be created: %s", u, e.Message))
				return
			}
			if created {
				imp.mu.Lock()
				imp.ensured[u] = true
				imp.mu.Unlock()
			}
		})
	}
}
