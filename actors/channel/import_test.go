package channel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// Import and export of one channel, driven through Handle as the gateway
// drives them (gateway/import.go, gateway/export.go).

// history is a small history with what an import must keep: threads
// (a reply count given and one counted), reactions with who reacted, an
// edit, a deletion, a system message, a gap in the segments and ids that
// are not this server's.
func history(ch string) []string {
	at := func(min int) string { return t0.Add(-time.Duration(1000-min) * time.Minute).Format(time.RFC3339) }
	return []string{
		fmt.Sprintf(`{"kind":"channel","id":%q,"type":"standard","name":"General","created_by":"ann","created_at":%q,"tags":["x"],"last_segment":9}`, ch, at(0)),
		fmt.Sprintf(`{"kind":"member","user":"ann","channel":%q,"membership":"member","roles":["owner"],"read_segment":7}`, ch),
		fmt.Sprintf(`{"kind":"member","user":"bob","channel":%q,"membership":"member","roles":["member"],"read_segment":2,"muted_until":%q,"mute_reason":"spam"}`, ch, at(5000)),
		fmt.Sprintf(`{"kind":"member","user":"eve","channel":%q,"membership":"banned","roles":null,"banned_until":"9999-12-31T23:59:59.999Z","ban_reason":"abuse"}`, ch),
		fmt.Sprintf(`{"kind":"message","id":"m-1","channel":%q,"segment":1,"user":"ann","text":"hello","created_at":%q,"reactions":{"+1":3},"reacted":{"+1":["bob","ann"]}}`, ch, at(1)),
		fmt.Sprintf(`{"kind":"message","id":"m-2","channel":%q,"segment":2,"user":"bob","text":"hi ann","parent_id":"m-1","created_at":%q}`, ch, at(2)),
		fmt.Sprintf(`{"kind":"message","id":"m-3","channel":%q,"segment":3,"user":"ann","text":"edited","created_at":%q,"edited_at":%q,"reply_count":5}`, ch, at(3), at(9)),
		fmt.Sprintf(`{"kind":"message","id":"m-4","channel":%q,"segment":4,"user":"bob","text":"secret","deleted":true,"created_at":%q}`, ch, at(4)),
		fmt.Sprintf(`{"kind":"message","id":"m-5","channel":%q,"segment":5,"user":"ann","text":"r","parent_id":"m-1","created_at":%q,"reacted":{"wow":["bob"]}}`, ch, at(5)),
		fmt.Sprintf(`{"kind":"message","id":"m-6","channel":%q,"segment":6,"user":"eve","type":"system","system":{"kind":"member_banned","user":"eve","actor":"ann"},"created_at":%q}`, ch, at(6)),
		fmt.Sprintf(`{"kind":"message","id":"m-8","channel":%q,"segment":8,"user":"ann","text":"after a gap","created_at":%q,"client_id":"c8"}`, ch, at(8)),
	}
}

// lines makes ImportLines of records, numbered from first.
func lines(first int64, recs []string) []ImportLine {
	out := make([]ImportLine, len(recs))
	for i, r := range recs {
		out[i] = ImportLine{Line: first + int64(i), Record: json.RawMessage(r)}
	}
	return out
}

// parents fills in ParentSegment as the gateway does: for replies whose
// parent is among the lines.
func parents(ls []ImportLine) []ImportLine {
	seg := map[string]uint64{}
	for i, l := range ls {
		var r struct {
			ID       string `json:"id"`
			Segment  uint64 `json:"segment"`
			ParentID string `json:"parent_id"`
		}
		_ = json.Unmarshal(l.Record, &r)
		if r.ParentID != "" {
			ls[i].ParentSegment = seg[r.ParentID]
		}
		seg[r.ID] = r.Segment
	}
	return ls
}

// stage sends one chunk.
func (h *harness) stage(token string, chunk int, final bool, ch *ImportLine, recs []ImportLine) ImportReply {
	h.t.Helper()
	a := ImportStageArgs{Token: token, Chunk: chunk, Final: final, Channel: ch, Records: recs}
	return ok[ImportReply](h, Caller{}, OpImportStage, json.RawMessage(a.Encode()))
}

// importAll imports the records of one channel (its channel record first)
// in chunks of n records, committing to the end; it returns the replies'
// totals.
func (h *harness) importAll(token string, recs []string, n int) ImportReply {
	h.t.Helper()
	ls := parents(lines(1, recs))
	var ch *ImportLine
	if strings.Contains(recs[0], `"kind":"channel"`) {
		ch, ls = &ls[0], ls[1:]
	}
	var total ImportReply
	add := func(r ImportReply) {
		total.Skipped += r.Skipped
		total.Errors = append(total.Errors, r.Errors...)
		if r.Done {
			total.Done, total.Channels, total.Members, total.Messages = true, r.Channels, r.Members, r.Messages
		}
	}
	for k := 0; ; k++ {
		part := ls[:min(n, len(ls))]
		ls = ls[len(part):]
		r := h.stage(token, k, len(ls) == 0, ch, part)
		ch = nil
		add(r)
		if len(r.Errors) > 0 || len(ls) == 0 {
			break
		}
	}
	for !total.Done && len(total.Errors) == 0 {
		add(ok[ImportReply](h, Caller{}, OpImportCommit, ImportTokenArgs{Token: token}))
	}
	return total
}

// export reads the channel's export as the gateway does, in pages of
// maxBytes.
func (h *harness) export(maxBytes int) []string {
	h.t.Helper()
	var out []string
	page := func(a ExportArgs) ExportHead {
		a.MaxBytes = maxBytes
		eff := h.do(Caller{}, OpExport, a)
		if eff.Err != nil {
			h.t.Fatalf("export %+v: %v", a, eff.Err)
		}
		head, rest, _ := bytes.Cut(eff.Result, []byte("\n"))
		var hd ExportHead
		if err := json.Unmarshal(head, &hd); err != nil {
			h.t.Fatalf("export head %s: %v", head, err)
		}
		recs := strings.Split(strings.TrimSuffix(string(rest), "\n"), "\n")
		if len(recs) != hd.Records && !(hd.Records == 0 && len(rest) == 0) {
			h.t.Fatalf("export head says %d records, page has %d", hd.Records, len(recs))
		}
		if hd.Records > 0 {
			out = append(out, recs...)
		}
		return hd
	}
	upto := page(ExportArgs{Part: ExportChannel}).Upto
	for a := (ExportArgs{Part: ExportMembers}); ; {
		hd := page(a)
		if hd.Done {
			break
		}
		a.After = hd.After
	}
	for a := (ExportArgs{Part: ExportMessages, Upto: upto}); ; {
		hd := page(a)
		if hd.Done {
			break
		}
		a.AfterSegment = hd.AfterSegment
	}
	return out
}

func TestImportNewChannelKeepsEverything(t *testing.T) {
	for _, chunk := range []int{100, 3, 1} { // one chunk (applied at once), staged chunks
		t.Run(fmt.Sprint("chunk", chunk), func(t *testing.T) {
			h := newHarnessFor(t, "imp")
			rep := h.importAll("tok", history("imp"), chunk)
			if len(rep.Errors) > 0 || rep.Channels != 1 || rep.Members != 3 || rep.Messages != 7 || rep.Skipped != 0 {
				t.Fatalf("import: %+v", rep)
			}
			ch := ok[struct{ Channel protocol.Channel }](h, admin("root"), protocol.OpChannelGet, `{"channel":"imp"}`).Channel
			if ch.LastSegment != 9 || ch.MessageCount != 6 || ch.MemberCount != 2 || ch.CreatedBy != "ann" || ch.LastMessage == nil || ch.LastMessage.ID != "m-8" {
				t.Errorf("channel %+v", ch)
			}
			hist := ok[historyResult](h, caller("ann"), protocol.OpMessagesHistory, `{"channel":"imp","limit":100}`)
			var ids []string
			for _, m := range hist.Messages {
				ids = append(ids, m.ID)
			}
			if strings.Join(ids, ",") != "m-1,m-2,m-3,m-4,m-5,m-6,m-8" {
				t.Errorf("history %v", ids)
			}
			m1, m3, m4 := hist.Messages[0], hist.Messages[2], hist.Messages[3]
			if m1.ReplyCount != 2 || m1.Reactions["+1"] != 3 || m1.Reactions["wow"] != 0 || len(m1.MyReactions) != 1 || m1.MyReactions[0] != "+1" {
				t.Errorf("m-1 %+v", m1)
			}
			if m3.ReplyCount != 5 || m3.EditedAt.IsZero() || m4.Text != "" || !m4.Deleted {
				t.Errorf("m-3 %+v, m-4 %+v", m3, m4)
			}
			thread := ok[historyResult](h, caller("ann"), protocol.OpMessagesHistory, `{"channel":"imp","parent_id":"m-1"}`)
			if len(thread.Messages) != 2 || thread.Messages[1].Reactions["wow"] != 1 {
				t.Errorf("thread %+v", thread.Messages)
			}
			// A banned user stays out; a muted one cannot send; the
			// counter continues after the floor.
			h.fail(caller("eve"), protocol.OpChannelJoin, `{"channel":"imp"}`, protocol.CodeBanned)
			h.fail(caller("bob"), protocol.OpMessageSend, `{"channel":"imp","client_id":"b1","text":"x"}`, protocol.CodeMuted)
			sent := ok[sendRes](h, caller("ann"), protocol.OpMessageSend, `{"channel":"imp","client_id":"a1","text":"new"}`)
			if sent.Message.Segment != 10 {
				t.Errorf("new message at %d, want 10", sent.Message.Segment)
			}
			// A resend of an imported client_id is the imported message.
			dup := ok[sendRes](h, caller("ann"), protocol.OpMessageSend, `{"channel":"imp","client_id":"c8","text":"again"}`)
			if !dup.Duplicate || dup.Message.ID != "m-8" {
				t.Errorf("resend of c8: %+v", dup)
			}
			// Imported ids are found: react, edit by id.
			ok[sendRes](h, caller("ann"), protocol.OpReactionAdd, `{"channel":"imp","message_id":"m-3","name":"ok"}`)
			ok[sendRes](h, caller("ann"), protocol.OpMessageEdit, `{"channel":"imp","message_id":"m-8","text":"edited later"}`)
		})
	}
}

// Export of an import, imported into another channel store, exports the
// same bytes; whatever the page size.
func TestImportExportRoundTrip(t *testing.T) {
	h := newHarnessFor(t, "imp")
	h.importAll("tok", history("imp"), 2)
	first := h.export(1)
	if len(first) != 1+3+7 {
		t.Fatalf("export has %d records:\n%s", len(first), strings.Join(first, "\n"))
	}
	h2 := newHarnessFor(t, "imp")
	if rep := h2.importAll("tok2", first, 4); len(rep.Errors) > 0 {
		t.Fatalf("re-import: %+v", rep.Errors)
	}
	second := h2.export(1 << 20)
	if strings.Join(first, "\n") != strings.Join(second, "\n") {
		t.Fatalf("round trip differs:\n%s\n---\n%s", strings.Join(first, "\n"), strings.Join(second, "\n"))
	}
	if !strings.Contains(first[4], `"reacted":{"+1":["ann","bob"]}`) || !strings.HasSuffix(first[5], `"reacted":{}}`) {
		t.Errorf("reacted:\n%s\n%s", first[4], first[5])
	}
	// Importing the same records again changes nothing: all skipped.
	entries := h2.s.index
	rep := h2.importAll("tok3", first, 4)
	if rep.Skipped != int64(len(first)) || rep.Messages+rep.Members+rep.Channels != 0 || h2.s.index != entries {
		t.Errorf("second import: %+v, %d entries written", rep, h2.s.index-entries)
	}
}

func TestImportRefusesBadLinesAndAppliesNothing(t *testing.T) {
	h := newHarnessFor(t, "imp")
	recs := history("imp")
	bad := append(append([]string{}, recs[:6]...),
		`{"kind":"message","id":"m-x","channel":"imp","segment":2,"user":"ann","text":"back","created_at":"2026-01-01T00:00:00Z"}`)
	bad = append(bad, recs[6:]...)
	rep := h.importAll("tok", bad, 2) // the bad line is in the fourth chunk
	if len(rep.Errors) != 1 || rep.Errors[0].Line != 7 || rep.Errors[0].Code != protocol.CodeBadRequest {
		t.Fatalf("errors %+v", rep.Errors)
	}
	h.fail(admin("root"), protocol.OpChannelGet, `{"channel":"imp"}`, protocol.CodeNotFound)
	if recs, _ := h.log.Scan(persistence.TableAux, persistence.Range{}); len(recs) != 0 {
		t.Errorf("staged records left behind: %d", len(recs))
	}
	if _, err := h.log.Get(persistence.TableMeta, importKey); err == nil {
		t.Error("the import's marker is left behind")
	}
	// Records of a channel that does not exist, with no channel record.
	h2 := newHarnessFor(t, "nope")
	rep = h2.importAll("tok", recs[1:3], 10)
	if len(rep.Errors) != 1 || rep.Errors[0].Code != protocol.CodeNotFound || rep.Errors[0].Line != 1 {
		t.Fatalf("unknown channel: %+v", rep.Errors)
	}
}

func TestImportIntoExistingChannel(t *testing.T) {
	h := newHarnessFor(t, "imp")
	ok[createResult](h, caller("ann"), protocol.OpChannelCreate, `{"type":"standard"}`)
	ok[sendRes](h, caller("ann"), protocol.OpMessageSend, `{"channel":"imp","client_id":"1","text":"live"}`)
	last := h.s.LastSegment()
	at := t0.Format(time.RFC3339)
	more := []string{
		`{"kind":"member","user":"ann","channel":"imp","membership":"member","roles":["member"]}`,
		`{"kind":"member","user":"zed","channel":"imp","membership":"member","roles":["member"]}`,
		fmt.Sprintf(`{"kind":"message","id":"old-1","channel":"imp","segment":%d,"user":"zed","text":"imported","created_at":%q}`, last+5, at),
	}
	rep := h.importAll("tok", more, 1)
	if len(rep.Errors) > 0 || rep.Members != 1 || rep.Messages != 1 || rep.Skipped != 1 {
		t.Fatalf("import: %+v", rep)
	}
	if h.s.LastSegment() != last+5 {
		t.Errorf("last segment %d, want %d", h.s.LastSegment(), last+5)
	}
	// The same again: skipped, nothing written.
	entries := h.s.index
	if rep := h.importAll("tok2", more, 2); rep.Skipped != 3 || h.s.index != entries {
		t.Errorf("again: %+v, %d entries", rep, h.s.index-entries)
	}
	// A record that contradicts the channel is refused.
	clash := fmt.Sprintf(`{"kind":"message","id":"other","channel":"imp","segment":%d,"user":"zed","text":"x","created_at":%q}`, last+5, at)
	if rep := h.importAll("tok3", []string{clash}, 1); len(rep.Errors) != 1 || rep.Errors[0].Code != protocol.CodeInvalidState {
		t.Errorf("clash: %+v", rep)
	}
	// So is a segment at or below the last one that holds nothing.
	hole := fmt.Sprintf(`{"kind":"message","id":"hole","channel":"imp","segment":%d,"user":"zed","text":"x","created_at":%q}`, last+2, at)
	if rep := h.importAll("tok4", []string{hole}, 1); len(rep.Errors) != 1 || rep.Errors[0].Code != protocol.CodeInvalidState {
		t.Errorf("hole: %+v", rep)
	}
}

// While an import commits, the channel answers unavailable; a live send
// while it stages makes the commit refuse.
func TestImportCommitGatesTheChannel(t *testing.T) {
	h := newHarnessFor(t, "imp")
	ok[createResult](h, caller("ann"), protocol.OpChannelCreate, `{"type":"standard"}`)
	ok[sendRes](h, caller("ann"), protocol.OpMessageSend, `{"channel":"imp","client_id":"1","text":"live"}`)
	at := t0.Format(time.RFC3339)
	msg := func(seg int) string {
		return fmt.Sprintf(`{"kind":"message","id":"i-%d","channel":"imp","segment":%d,"user":"ann","text":"x","created_at":%q}`, seg, seg, at)
	}
	h.manual = true
	h.stage("tok", 0, false, nil, lines(1, []string{msg(10), msg(11)}))
	h.commit()
	// Staged: not visible, and the channel works.
	hist := ok[historyResult](h, caller("ann"), protocol.OpMessagesHistory, `{"channel":"imp"}`)
	if len(hist.Messages) != 1 {
		t.Fatalf("staged messages visible: %d", len(hist.Messages))
	}
	h.stage("tok", 1, true, nil, lines(3, []string{msg(12)}))
	h.fail(caller("ann"), protocol.OpMessagesHistory, `{"channel":"imp"}`, protocol.CodeUnavailable)
	h.commit()
	r := ok[ImportReply](h, Caller{}, OpImportCommit, ImportTokenArgs{Token: "tok"})
	if r.Done {
		t.Fatal("done after one of two steps")
	}
	r = ok[ImportReply](h, Caller{}, OpImportCommit, ImportTokenArgs{Token: "tok"})
	if !r.Done || r.Messages != 3 {
		t.Fatalf("commit: %+v", r)
	}
	// Still gated until the last step is durable.
	h.fail(caller("ann"), protocol.OpMessagesHistory, `{"channel":"imp"}`, protocol.CodeUnavailable)
	h.commit()
	hist = ok[historyResult](h, caller("ann"), protocol.OpMessagesHistory, `{"channel":"imp"}`)
	if len(hist.Messages) != 4 || h.s.LastSegment() != 12 {
		t.Fatalf("after commit: %d messages, last segment %d", len(hist.Messages), h.s.LastSegment())
	}
	h.manual = false
	// A live send between chunks: the commit refuses, nothing applied.
	h.stage("tok2", 0, false, nil, lines(1, []string{msg(20)}))
	for i := 0; h.s.LastSegment() < 20; i++ {
		ok[sendRes](h, caller("ann"), protocol.OpMessageSend, fmt.Sprintf(`{"channel":"imp","client_id":"x%d","text":"live"}`, i))
	}
	r = h.stage("tok2", 1, true, nil, lines(2, []string{msg(25)}))
	if len(r.Errors) != 1 || r.Errors[0].Code != protocol.CodeInvalidState {
		t.Fatalf("commit after live sends: %+v", r)
	}
	if m, _ := h.s.lookupMessage("i-20"); m != nil {
		t.Error("an aborted import's message is visible")
	}
}

// A commit the activation finds in progress is finished by the next one.
func TestImportCommitRollsForwardAfterRestart(t *testing.T) {
	h := newHarnessFor(t, "imp")
	recs := history("imp")
	ls := parents(lines(1, recs))
	h.stage("tok", 0, false, &ls[0], ls[1:5])
	h.stage("tok", 1, true, nil, ls[5:])
	r := ok[ImportReply](h, Caller{}, OpImportCommit, ImportTokenArgs{Token: "tok"})
	if r.Done {
		t.Fatal("done in one step")
	}
	h.reload()
	tok, orphan := h.s.ImportOrphaned()
	if !orphan || tok != "tok" {
		t.Fatalf("orphaned %q %v", tok, orphan)
	}
	h.fail(admin("root"), protocol.OpChannelGet, `{"channel":"imp"}`, protocol.CodeUnavailable)
	for {
		tok, orphan := h.s.ImportOrphaned()
		if !orphan {
			break
		}
		ok[ImportReply](h, Caller{}, OpImportCommit, ImportTokenArgs{Token: tok})
	}
	ch := ok[struct{ Channel protocol.Channel }](h, admin("root"), protocol.OpChannelGet, `{"channel":"imp"}`).Channel
	if ch.MessageCount != 6 || ch.MemberCount != 2 || ch.LastSegment != 9 {
		t.Errorf("channel %+v", ch)
	}
}

// A staging import abandoned for long is dropped by the next one.
func TestImportAbandonedStagingIsReplaced(t *testing.T) {
	h := newHarnessFor(t, "imp")
	ls := parents(lines(1, history("imp")))
	h.stage("old", 0, false, &ls[0], ls[1:3])
	a := ImportStageArgs{Token: "new", Channel: &ls[0], Records: ls[1:3]}
	eff := h.do(Caller{}, OpImportStage, json.RawMessage(a.Encode()))
	if eff.Err == nil || eff.Err.Code != protocol.CodeInvalidState {
		t.Fatalf("a second import while one stages: %v", eff.Err)
	}
	h.tick(importStale + time.Second)
	if tok, ok := h.s.ImportAbandoned(h.now); !ok || tok != "old" {
		t.Fatalf("abandoned %q %v", tok, ok)
	}
	if rep := h.importAll("new", history("imp"), 3); len(rep.Errors) > 0 || rep.Messages != 7 {
		t.Fatalf("import after an abandoned one: %+v", rep)
	}
}

// A history with wide gaps pages without walking every missing segment.
func TestHistoryPagesOverGaps(t *testing.T) {
	h := newHarnessFor(t, "imp")
	recs := []string{`{"kind":"channel","id":"imp","type":"standard","created_at":"2026-01-01T00:00:00Z"}`}
	for _, seg := range []int{1, 50000, 100000, 100001, 300000} {
		recs = append(recs, fmt.Sprintf(`{"kind":"message","id":"g-%d","channel":"imp","segment":%d,"user":"ann","text":"x","created_at":"2026-01-01T00:00:00Z"}`, seg, seg))
	}
	if rep := h.importAll("tok", recs, 10); len(rep.Errors) > 0 {
		t.Fatal(rep.Errors)
	}
	h.reload()
	all := ok[historyResult](h, admin("root"), protocol.OpMessagesHistory, `{"channel":"imp","limit":100}`)
	if len(all.Messages) != 5 || all.HasMore {
		t.Fatalf("newest page: %d messages, has_more %v", len(all.Messages), all.HasMore)
	}
	first := ok[historyResult](h, admin("root"), protocol.OpMessagesHistory, `{"channel":"imp","after":0,"limit":2}`)
	if len(first.Messages) != 2 || first.Messages[1].Segment != 50000 || !first.HasMore {
		t.Fatalf("first page: %+v", first)
	}
	if h.r.scans > 20 {
		t.Errorf("%d store scans for two pages", h.r.scans)
	}
}

func TestExportPagesHoldEveryRecordOnce(t *testing.T) {
	h := newHarnessFor(t, "imp")
	ok[createResult](h, caller("u000"), protocol.OpChannelCreate, `{"type":"standard"}`)
	for i := 1; i < 600; i++ {
		ok[watchResult](h, caller(fmt.Sprintf("u%03d", i)), protocol.OpChannelJoin, `{"channel":"imp"}`)
	}
	for i := 0; i < 700; i++ {
		ok[sendRes](h, caller("u001"), protocol.OpMessageSend, fmt.Sprintf(`{"channel":"imp","client_id":"c%d","text":"m %d"}`, i, i))
	}
	recs := h.export(4 << 10)
	kinds := map[string]int{}
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[r] {
			t.Fatalf("record twice: %s", r)
		}
		seen[r] = true
		var k struct{ Kind string }
		_ = json.Unmarshal([]byte(r), &k)
		kinds[k.Kind]++
	}
	// 600 members; 700 messages and 599 join system messages.
	if kinds["channel"] != 1 || kinds["member"] != 600 || kinds["message"] != 1299 {
		t.Errorf("kinds %v", kinds)
	}
}

type sendRes struct {
	Message   protocol.Message `json:"message"`
	Duplicate bool             `json:"duplicate"`
}
