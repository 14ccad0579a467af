package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// A generated history, written exactly as an export writes it (so that
// the export of its import can be compared with it byte for byte): users,
// then each channel with its members and messages — threads with counted
// replies, reactions with who reacted, edits, deletions, system
// messages, gaps in the segments, ids that are not this server's.

type genSpec struct {
	// channels hold messages on average: half of them half as many,
	// half of them one and a half times as many (some are imported in
	// one entry, some staged in chunks).
	channels, messages, members, users int
	seed                               uint64
}

// size is how many messages channel ci holds.
func (g genSpec) size(ci int) int {
	if ci%2 == 0 {
		return g.messages / 2
	}
	return g.messages - g.messages/2 + g.messages
}

var genEpoch = time.Date(2021, 6, 1, 9, 0, 0, 0, time.UTC)

// withKind splices "kind" into the front of a JSON object.
func withKind(kind string, obj []byte) []byte {
	return append([]byte(`{"kind":"`+kind+`",`), obj[1:]...)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// generate writes the history's lines to w.
func (g genSpec) generate(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	line := func(b []byte) error {
		if _, err := bw.Write(b); err != nil {
			return err
		}
		return bw.WriteByte('\n')
	}
	users := make([]string, g.users)
	for i := range users {
		users[i] = fmt.Sprintf("u%04d", i)
	}
	byKey := func(ids []string) []string {
		s := slices.Clone(ids)
		sort.Slice(s, func(i, j int) bool { return persistence.ScopeLess(s[i], s[j]) })
		return s
	}
	for i, u := range byKey(users) {
		at := protocol.At(genEpoch.Add(time.Duration(i) * time.Minute))
		rec := protocol.UserRecord{Kind: protocol.KindUser, ID: u, Name: "User " + u, Metadata: json.RawMessage(`{"team":"t` + fmt.Sprint(i%7) + `"}`),
			CreatedAt: at, UpdatedAt: at}
		if err := line(mustJSON(rec)); err != nil {
			return err
		}
	}
	chans := make([]string, g.channels)
	for i := range chans {
		chans[i] = fmt.Sprintf("legacy-%d", i)
	}
	for ci, ch := range byKey(chans) {
		if err := g.channel(ci, ch, users, line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func (g genSpec) channel(ci int, ch string, users []string, line func([]byte) error) error {
	r := rand.New(rand.NewPCG(g.seed, uint64(ci)))
	created := genEpoch.Add(time.Duration(ci) * time.Hour)
	// Members: a sample of the users, by id.
	var members []string
	for _, i := range r.Perm(len(users))[:g.members] {
		members = append(members, users[i])
	}
	slices.Sort(members)
	// Messages first (the channel record carries their counts).
	type msg struct {
		m       protocol.Message
		reacted map[string][]string
	}
	msgs := make([]msg, 0, g.size(ci))
	var seg uint64
	var tops []int // indexes of top-level messages
	live := int64(0)
	for i := 0; i < g.size(ci); i++ {
		seg += 1 + uint64(r.IntN(20)/19) // a gap now and then
		at := created.Add(time.Duration(i+1) * time.Minute)
		m := protocol.Message{ID: fmt.Sprintf("src-%d-%d", ci, i), Channel: ch, Segment: seg, User: members[r.IntN(len(members))],
			Type: protocol.MessageText, Text: fmt.Sprintf("message %d of %s: %x", i, ch, r.Uint64()), CreatedAt: protocol.At(at)}
		switch {
		case i%97 == 5:
			m.Type, m.Text, m.User = protocol.MessageSystem, "", members[0]
			m.System = &protocol.SystemInfo{Kind: protocol.SystemMemberJoined, User: members[0]}
		case i%10 == 3 && len(tops) > 0:
			p := tops[len(tops)-1-r.IntN(min(len(tops), 5))]
			m.ParentID = msgs[p].m.ID
		}
		if i%13 == 4 {
			m.EditedAt = protocol.At(at.Add(time.Minute))
		}
		if i%11 == 0 {
			m.Data = json.RawMessage(`{"k":` + fmt.Sprint(i) + `}`)
			m.Tags = []string{"t"}
		}
		var reacted map[string][]string
		if i%7 == 2 {
			reacted = map[string][]string{}
			for _, name := range []string{"+1", "heart"}[:1+r.IntN(2)] {
				var us []string
				for _, j := range r.Perm(len(members))[:1+r.IntN(3)] {
					us = append(us, members[j])
				}
				slices.Sort(us)
				reacted[name] = us
			}
			m.Reactions = map[string]int64{}
			for name, us := range reacted {
				m.Reactions[name] = int64(len(us))
			}
			m.Reactions["+1"] += int64(r.IntN(2)) // someone unknown reacted too
		}
		if i%17 == 9 {
			m.Deleted, m.Text, m.Data, m.Tags, m.Reactions, reacted = true, "", nil, nil, nil, nil
		}
		if m.ParentID == "" && m.Type != protocol.MessageSystem {
			tops = append(tops, len(msgs))
		}
		if !m.Deleted {
			live++
		}
		msgs = append(msgs, msg{m, reacted})
	}
	// Reply counts are counted (the records have them, as an export
	// writes them).
	idx := map[string]int{}
	for i, x := range msgs {
		idx[x.m.ID] = i
	}
	for _, x := range msgs {
		if x.m.ParentID != "" && !x.m.Deleted {
			msgs[idx[x.m.ParentID]].m.ReplyCount++
		}
	}
	last := seg
	chRec := protocol.Channel{ID: ch, Type: protocol.TypeStandard, Name: "Legacy " + fmt.Sprint(ci), Tags: []string{"import"},
		Public: true, MemberCount: int64(len(members)), MessageCount: live, LastSegment: last, CreatedBy: members[0],
		CreatedAt: protocol.At(created), UpdatedAt: protocol.At(created), LastActivity: msgs[len(msgs)-1].m.CreatedAt}
	if err := line(withKind(protocol.KindChannel, mustJSON(&chRec))); err != nil {
		return err
	}
	for i, u := range members {
		role := protocol.RoleMember
		if i == 0 {
			role = protocol.RoleOwner
		}
		read := uint64(r.IntN(int(last) + 1))
		m := protocol.Member{User: u, Channel: ch, Membership: protocol.MembershipMember, Roles: []string{role}, ReadSegment: read,
			UnreadCount: int64(last - read), CreatedAt: protocol.At(created)}
		if i == 3 {
			m.MutedUntil, m.MuteReason = protocol.At(genEpoch.AddDate(20, 0, 0)), "spam"
		}
		if err := line(withKind(protocol.KindMember, mustJSON(&m))); err != nil {
			return err
		}
	}
	for _, x := range msgs {
		reacted := x.reacted
		if reacted == nil {
			reacted = map[string][]string{}
		}
		b := mustJSON(x.m)
		b = append(b[:len(b)-1], `,"reacted":`...)
		b = append(append(b, mustJSON(reacted)...), '}')
		if err := line(withKind(protocol.KindMessage, b)); err != nil {
			return err
		}
	}
	return nil
}

// records is the number of records the history has.
func (g genSpec) records() int64 {
	n := g.users + g.channels*(1+g.members)
	for ci := 0; ci < g.channels; ci++ {
		n += g.size(ci)
	}
	return int64(n)
}

// bytes returns the generated history.
func (g genSpec) bytes(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := g.generate(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// importNDJSON sends records to the node's import.
func importNDJSON(t testing.TB, addr string, data []byte, dry bool) *protocol.ImportResult {
	t.Helper()
	res, err := client.Import(context.Background(), http.DefaultClient, "http://"+addr, apiKey, bytes.NewReader(data), dry, nil)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return res
}

// sameExport compares the node's export with want, line by line as the
// export streams, and reports the first difference.
func sameExport(t *testing.T, addr string, want []byte) {
	t.Helper()
	got, gotW := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(gotW, 256<<10) // not a pipe handoff a line
		_, err := client.Export(context.Background(), http.DefaultClient, "http://"+addr, apiKey, "", bw, nil)
		if err == nil {
			err = bw.Flush()
		}
		gotW.CloseWithError(err)
		errc <- err
	}()
	defer got.Close()
	gs := bufio.NewScanner(got)
	gs.Buffer(nil, 1<<20)
	rest := want
	for n := 1; ; n++ {
		gok := gs.Scan()
		line, more, found := bytes.Cut(rest, []byte("\n"))
		rest = more
		if !gok || !found {
			if gok != found {
				t.Fatalf("line %d: export has a line: %v, want one: %v (export error %v)", n, gok, found, gs.Err())
			}
			break
		}
		if !bytes.Equal(line, gs.Bytes()) {
			t.Fatalf("line %d differs:\n   export %s\nimported %s", n, gs.Bytes(), line)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("export: %v", err)
	}
}
