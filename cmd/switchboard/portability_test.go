package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/gateway/auth"
	"github.com/switchboard-chat/switchboard/protocol"
)

// A generated history of 100,000 messages across 100 channels is imported
// into an empty node, exported, and compared byte for byte with what was
// imported; importing it again changes nothing (every record skipped).
func TestImportExportRoundTrip(t *testing.T) {
	g := genSpec{channels: 100, messages: 1000, members: 20, users: 300, seed: 17}
	if testing.Short() {
		g.channels, g.messages = 10, 200
	}
	data := g.bytes(t)
	n, _ := apiNode(t)
	start := time.Now()
	res := importNDJSON(t, n.Addr(), data, false)
	if len(res.Errors) > 0 || res.Users != int64(g.users) || res.Channels != int64(g.channels) ||
		res.Members != int64(g.channels*g.members) || res.Messages != int64(g.channels*g.messages) || res.Skipped != 0 {
		t.Fatalf("import: %+v", res)
	}
	t.Logf("import: %v", time.Since(start))
	start = time.Now()
	sameExport(t, n.Addr(), data)
	t.Logf("export: %v", time.Since(start))
	start = time.Now()
	again := importNDJSON(t, n.Addr(), data, false)
	if len(again.Errors) > 0 || again.Skipped != g.records() || again.Users+again.Channels+again.Members+again.Messages != 0 {
		t.Fatalf("second import: %+v (want %d skipped)", again, g.records())
	}
	t.Logf("second import: %v", time.Since(start))
}

// A dry run says what an import would do and writes nothing.
func TestImportDryRun(t *testing.T) {
	g := genSpec{channels: 4, messages: 300, members: 5, users: 20, seed: 3}
	n, _ := apiNode(t)
	dry := importNDJSON(t, n.Addr(), g.bytes(t), true)
	if len(dry.Errors) > 0 || dry.Users != int64(g.users) || dry.Channels != int64(g.channels) ||
		dry.Members != int64(g.channels*g.members) || dry.Messages != int64(g.channels*g.messages) {
		t.Fatalf("dry run: %+v", dry)
	}
	a := keyAPI(t, n, "")
	a.do("GET", "/v1/channels/legacy-0", nil).want(t, 404, "not_found")
	a.do("GET", "/v1/users/u0000", nil).want(t, 404, "not_found")
}

// Bad lines — an unknown kind, a segment going backwards, messages of a
// channel that does not exist, a line over the bound — are reported with
// their numbers and codes; nothing of their channels is applied; the
// other channels are imported.
func TestImportReportsBadLines(t *testing.T) {
	n, _ := apiNode(t)
	at := `"created_at":"2024-05-01T10:00:00Z"`
	msg := func(ch string, seg int, extra string) string {
		return fmt.Sprintf(`{"kind":"message","id":"%s-%d","channel":%q,"segment":%d,"user":"u1","text":"hi"%s,%s}`, ch, seg, ch, seg, extra, at)
	}
	chRec := func(id string) string { return fmt.Sprintf(`{"kind":"channel","id":%q,"type":"standard",%s}`, id, at) }
	lines := []string{
		`{"kind":"user","id":"u1","name":"One"}`, // 1
		chRec("good-1"),                          // 2
		`{"kind":"member","user":"u1","channel":"good-1","roles":["owner"]}`, // 3
		msg("good-1", 1, ""), // 4
		chRec("bad-kind"),    // 5
		`{"kind":"thread","id":"t","channel":"bad-kind"}`, // 6: unknown kind
		msg("bad-kind", 1, ""),                            // 7
		chRec("back"),                                     // 8
		msg("back", 5, ""),                                // 9
		msg("back", 3, ""),                                // 10: backwards
		msg("nowhere", 1, ""),                             // 11: unknown channel
		msg("nowhere", 2, ""),                             // 12: and again
		chRec("big"),                                      // 13
		msg("big", 1, `,"metadata":{"pad":"`+strings.Repeat("x", 600<<10)+`"}`), // 14: oversize
		msg("big", 2, ""),    // 15
		"",                   // 16: blank
		chRec("good-2"),      // 17
		msg("good-2", 1, ""), // 18
	}
	res := importNDJSON(t, n.Addr(), []byte(strings.Join(lines, "\n")+"\n"), false)
	want := []struct {
		line int64
		code protocol.Code
	}{{6, protocol.CodeBadRequest}, {10, protocol.CodeBadRequest}, {11, protocol.CodeNotFound}, {12, protocol.CodeNotFound}, {14, protocol.CodeTooLarge}}
	if len(res.Errors) != len(want) {
		t.Fatalf("errors %+v", res.Errors)
	}
	for i, w := range want {
		if e := res.Errors[i]; e.Line != w.line || e.Code != w.code {
			t.Errorf("error %d: %+v, want line %d %s", i, e, w.line, w.code)
		}
	}
	if res.Users != 1 || res.Channels != 2 || res.Members != 1 || res.Messages != 2 {
		t.Errorf("counts %+v", res)
	}
	a := keyAPI(t, n, "")
	for _, ch := range []string{"bad-kind", "back", "nowhere", "big"} {
		a.do("GET", "/v1/channels/"+ch, nil).want(t, 404, "not_found")
	}
	for _, ch := range []string{"good-1", "good-2"} {
		a.do("GET", "/v1/channels/"+ch+"/messages", nil).want(t, 200, "")
	}
}

// An import into a channel clients watch: they get one channel.updated
// (reason imported, with what came) and, from the Go client, a reset;
// the history has the imported messages and the counter goes on after
// them.
func TestImportWhileClientsWatch(t *testing.T) {
	n := testNode(t, func(c *Config) { c.APIKey = apiKey })
	ctx := ctxT(t)
	alice, bob := dial(t, n, "alice"), dial(t, n, "bob")
	if _, _, err := alice.CreateChannel(ctx, protocol.ChannelCreateArgs{ID: "live", Type: protocol.TypeStandard}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, "live"); err != nil {
		t.Fatal(err)
	}
	sent, err := alice.Send(ctx, protocol.SendArgs{Channel: "live", Text: "before"})
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, bob, protocol.EventMessageNew)
	var lines []string
	lines = append(lines, `{"kind":"member","user":"carol","channel":"live","roles":["member"]}`)
	for i := 1; i <= 50; i++ {
		seg := sent.Segment + uint64(i)
		lines = append(lines, fmt.Sprintf(`{"kind":"message","id":"old-%d","channel":"live","segment":%d,"user":"carol","text":"from the old server %d","created_at":"2019-01-01T00:00:00Z"}`, i, seg, i))
	}
	res := importNDJSON(t, n.Addr(), []byte(strings.Join(lines, "\n")), false)
	if len(res.Errors) > 0 || res.Messages != 50 || res.Members != 1 {
		t.Fatalf("import %+v", res)
	}
	e := nextEvent(t, bob, protocol.EventChannelUpdated)
	var d struct {
		Channel  protocol.Channel `json:"channel"`
		Reason   string           `json:"reason"`
		Imported struct {
			Messages, Members int64
			From              uint64 `json:"from_segment"`
			To                uint64 `json:"to_segment"`
		} `json:"imported"`
	}
	if err := json.Unmarshal(e.Data, &d); err != nil || d.Reason != protocol.ReasonImported || d.Imported.Messages != 50 ||
		d.Imported.From != sent.Segment+1 || d.Imported.To != sent.Segment+50 || d.Channel.LastSegment != sent.Segment+50 {
		t.Fatalf("channel.updated %s", e.Data)
	}
	if r := nextEvent(t, bob, client.EventReset); r.Channel != "live" {
		t.Errorf("reset %+v", r)
	}
	h, err := bob.History(ctx, protocol.HistoryArgs{Channel: "live", Limit: ptr(100)})
	if err != nil || len(h.Messages) != 51+1 || h.Messages[len(h.Messages)-1].ID != "old-50" {
		t.Fatalf("history: %d messages, %v", len(h.Messages), err)
	}
	next, err := alice.Send(ctx, protocol.SendArgs{Channel: "live", Text: "after"})
	if err != nil || next.Segment != sent.Segment+51 {
		t.Fatalf("send after the import: %+v %v", next, err)
	}
	if m := nextEvent(t, bob, protocol.EventMessageNew); !strings.Contains(string(m.Data), `"after"`) {
		t.Errorf("event after the import: %s", m.Data)
	}
}

// Export and import are for a server API key alone; their parameters are
// checked; an export is NDJSON, an export of a channel that does not exist
// a 404.
func TestExportImportAccess(t *testing.T) {
	n, signer := apiNode(t)
	putUsers(t, n, "alice")
	key, asAlice := keyAPI(t, n, ""), keyAPI(t, n, "alice")
	tok, _ := signer.SessionToken(auth.Session{User: "alice"}, time.Hour)
	session := api{t: t, addr: n.Addr(), authz: "Bearer " + tok}
	none := api{t: t, addr: n.Addr()}
	for _, r := range []struct {
		a      api
		status int
		code   string
	}{{asAlice, 403, "forbidden"}, {session, 403, "forbidden"}, {none, 401, "unauthenticated"}} {
		r.a.do("GET", "/v1/export", nil, "/v1/export").want(t, r.status, r.code)
		r.a.do("POST", "/v1/import", "", "/v1/import").want(t, r.status, r.code)
	}
	key.do("GET", "/v1/export?chanel=x", nil).want(t, 400, "bad_request")
	key.do("GET", "/v1/export?channel=a%20b", nil).want(t, 400, "bad_request")
	key.do("GET", "/v1/export?channel=missing", nil, "/v1/export").want(t, 404, "not_found")
	key.do("POST", "/v1/import?dry_run=maybe", "", "/v1/import").want(t, 400, "bad_request")
	res := key.do("POST", "/v1/import", "\n\n", "/v1/import").want(t, 200, "")
	if string(res.raw) != `{"users":0,"channels":0,"members":0,"messages":0,"skipped":0,"errors":[]}`+"\n" {
		t.Errorf("empty import: %s", res.raw)
	}
	req, _ := http.NewRequest("GET", "http://"+n.Addr()+"/v1/export", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != protocol.ContentTypeNDJSON || !strings.HasPrefix(string(body), `{"kind":"user","id":"alice"`) {
		t.Errorf("export: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}
