package channel

import (
	"bytes"
	"encoding/json"
	"errors"
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

// ImportInProgress reports whether an import is staged or committing: the
// channel's scope holds records even if the channel does not exist yet.
func (s *State) ImportInProgress() bool {
	return s.imp.marker != nil && s.imp.marker.Phase != phaseDone
}
