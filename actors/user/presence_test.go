package user

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

func sess(gw, id string) Caller { return Caller{User: "alice", Session: id, Gateway: gw} }

// gateway is a gateway's own caller (heartbeats, watches).
func gateway(gw string) Caller { return Caller{Gateway: gw} }

// presenceEvents decodes eff's presence frames as "status@seconds".
func presenceEvents(t *testing.T, eff *Effects) []string {
	t.Helper()
	var out []string
	for _, f := range eff.Events {
		var fr struct {
			Event string                 `json:"event"`
			Seq   uint64                 `json:"seq"`
			Data  protocol.PresenceEvent `json:"data"`
		}
		if err := json.Unmarshal(f, &fr); err != nil || fr.Event != protocol.EventPresence || fr.Seq != 0 || fr.Data.User != "alice" {
			t.Fatalf("presence frame %s: %v", f, err)
		}
		out = append(out, fmt.Sprintf("%s@%v", fr.Data.Status, fr.Data.LastSeen.Sub(t0).Seconds()))
	}
	return out
}

func (h *harness) presence(c Caller, args string) []string {
	h.t.Helper()
	eff := h.doAs(c, OpPresence, args)
	if eff.Err != nil {
		h.t.Fatalf("presence %s: %v", args, eff.Err)
	}
	return presenceEvents(h.t, eff)
}

func (h *harness) wake() []string {
	h.t.Helper()
	at, ok := h.s.NextWake()
	if !ok {
		h.t.Fatal("no wake-up due")
	}
	h.now = at
	eff := h.doAs(Caller{}, OpTick, "")
	if eff.Err != nil {
		h.t.Fatal(eff.Err)
	}
	return presenceEvents(h.t, eff)
}

func want(t *testing.T, got []string, w ...string) {
	t.Helper()
	if !slices.Equal(got, w) {
		t.Fatalf("presence events %v, want %v", got, w)
	}
}

// TestPresenceSessions: online while any session lease is live on any
// gateway; offline with last_seen when the last closes.
func TestPresenceSessions(t *testing.T) {
	h := newHarness(t)
	eff := h.doAs(sess("gw1", "s1"), OpLogin, `{"name":"Alice"}`)
	want(t, presenceEvents(t, eff), "online@0")
	if me := h.user(protocol.OpMe, ""); me.Status != "online" || !me.LastSeen.Equal(t0) {
		t.Fatalf("me %+v", me)
	}
	h.tick(time.Second)
	want(t, presenceEvents(t, h.doAs(sess("gw2", "s2"), OpLogin, `{}`))) // already online
	h.tick(time.Second)
	want(t, h.presence(gateway("gw1"), `{"closed":["s1"]}`))
	if !h.s.Online() {
		t.Fatal("offline with a session left on gw2")
	}
	h.tick(time.Second)
	want(t, h.presence(gateway("gw2"), `{"closed":["s2"]}`), "offline@3")
	h.reload()
	if u := h.user(OpGet, ""); u.Status != "offline" || !u.LastSeen.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("after restart %+v", u)
	}
	// A close for a session never seen (or already gone) is harmless.
	want(t, h.presence(gateway("gw2"), `{"closed":["s2","nope"]}`))
	h.fail(OpPresence, `{"renew":["x"]}`, protocol.CodeBadRequest) // not from a gateway
}

// TestPresenceLeases: a session not renewed within its TTL lapses, and
// the user goes offline as of the last renewal; a renewal for a session
// the actor does not know (it restarted) brings it back.
func TestPresenceLeases(t *testing.T) {
	h := newHarness(t)
	h.doAs(sess("gw1", "s1"), OpLogin, `{"presence_ttl_ms":3000}`)
	for i := 0; i < 3; i++ {
		h.tick(2 * time.Second)
		want(t, h.presence(gateway("gw1"), `{"renew":["s1"],"ttl_ms":3000}`))
	}
	if at, _ := h.s.NextWake(); !at.Equal(t0.Add(9 * time.Second)) {
		t.Fatalf("next wake at %v", at.Sub(t0))
	}
	// gw1 stops renewing (hung or cut off): the lease lapses.
	want(t, h.wake(), "offline@6")
	if _, ok := h.s.NextWake(); ok {
		t.Fatal("a wake-up with no lease left")
	}
	h.reload() // the actor restarts: leases are gone, last_seen is not
	h.tick(time.Second)
	want(t, h.presence(gateway("gw1"), `{"renew":["s1"],"ttl_ms":3000}`), "online@10")
	// A TTL above the cap is capped.
	h.presence(gateway("gw1"), `{"renew":["s1"],"ttl_ms":99999999999}`)
	if at, _ := h.s.NextWake(); !at.Equal(h.now.Add(h.cfg.Rich.MaxPresenceTTL)) {
		t.Fatalf("capped lease ends at %v", at.Sub(h.now))
	}
}

func TestPresenceGatewayGone(t *testing.T) {
	h := newHarness(t)
	h.doAs(sess("gw1", "s1"), OpLogin, `{}`)
	h.doAs(sess("gw2", "s2"), OpLogin, `{}`)
	h.presence(gateway("gw1"), `{"watch":true}`)
	h.tick(time.Second)
	eff := h.doAs(Caller{}, OpGatewayGone, `{"gateway":"gw1"}`)
	want(t, presenceEvents(t, eff))
	if !slices.Equal(h.s.PresenceGateways(), nil) || !h.s.Online() {
		t.Fatalf("after gw1 gone: watchers %v online %v", h.s.PresenceGateways(), h.s.Online())
	}
	want(t, presenceEvents(t, h.doAs(Caller{}, OpGatewayGone, `{"gateway":"gw2"}`)), "offline@1")
}

// TestPresenceWatchers: gateways hold leases on a user's presence; only
// existing users may be watched; every change goes to each watcher once.
func TestPresenceWatchers(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Rich.MaxPresenceWatchers = 2 })
	h.fail(OpPresence, `{"watch":true}`, protocol.CodeBadRequest)
	eff := h.doAs(gateway("gw1"), OpPresence, `{"watch":true}`)
	if eff.Err == nil || eff.Err.Code != protocol.CodeNotFound {
		t.Fatalf("watching a user never seen: %v", eff.Err)
	}
	h.do(OpLogin, `{}`) // the user exists, not online
	u := h.user(OpGet, "")
	if u.Status != "offline" {
		t.Fatalf("%+v", u)
	}
	var r struct{ User protocol.User }
	_ = json.Unmarshal(h.doAs(gateway("gw1"), OpPresence, `{"watch":true,"ttl_ms":5000}`).Result, &r)
	if r.User.ID != "alice" || r.User.Status != "offline" {
		t.Fatalf("watch result %+v", r.User)
	}
	h.presence(gateway("gw2"), `{"watch":true,"ttl_ms":60000}`)
	if eff := h.doAs(gateway("gw3"), OpPresence, `{"watch":true}`); eff.Err == nil || eff.Err.Code != protocol.CodeUnavailable {
		t.Fatalf("third watcher past the bound: %v", eff.Err)
	}
	if got := h.s.PresenceGateways(); !slices.Equal(got, []string{"gw1", "gw2"}) {
		t.Fatalf("watchers %v", got)
	}
	// gw1 does not renew its watch: it lapses.
	h.wake()
	if got := h.s.PresenceGateways(); !slices.Equal(got, []string{"gw2"}) {
		t.Fatalf("watchers after lapse %v", got)
	}
	h.presence(gateway("gw2"), `{"watch":false}`)
	if h.s.Busy() {
		t.Fatal("busy with no lease")
	}
}

func TestPresenceSessionBound(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Rich.MaxSessions = 2 })
	h.do(OpLogin, `{}`)
	h.presence(gateway("gw1"), `{"renew":["a","b","c"]}`)
	if n := len(h.s.presence.sessions); n != 2 {
		t.Fatalf("%d leases, want 2", n)
	}
}

func fileArgs(id string) string {
	return fmt.Sprintf(`{"file":{"id":%q,"url":"/v1/files/%s","type":"image","name":"a.png","size":3,"mime":"image/png","node":"n1","blob":"b-%s"}}`, id, id, id)
}

func TestFiles(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Rich.MaxFiles = 3; c.Rich.MaxFileChannels = 2 })
	other := Caller{User: "bob"}
	if eff := h.doAs(other, OpFileAdd, fileArgs("f1")); eff.Err == nil || eff.Err.Code != protocol.CodeForbidden {
		t.Fatalf("bob adds to alice's files: %v", eff.Err)
	}
	for _, id := range []string{"f1", "f2", "f3"} {
		if eff := h.do(OpFileAdd, fileArgs(id)); eff.Err != nil {
			t.Fatal(eff.Err)
		}
	}
	if eff := h.do(OpFileAdd, fileArgs("f1")); eff.Err != nil {
		t.Fatalf("a retried add: %v", eff.Err)
	}
	h.fail(OpFileAdd, fileArgs("f4"), protocol.CodeTooLarge)
	h.fail(OpFileAdd, `{"file":{"id":"x"}}`, protocol.CodeBadRequest)

	h.fail(OpFileUse, `{"ids":["f1","nope"],"channel":"c1"}`, protocol.CodeNotFound)
	if eff := h.doAs(other, OpFileUse, `{"ids":["f1"],"channel":"c1"}`); eff.Err == nil || eff.Err.Code != protocol.CodeForbidden {
		t.Fatalf("bob uses alice's file: %v", eff.Err)
	}
	use := func(ch string) FilesResult {
		eff := h.do(OpFileUse, `{"ids":["f1","f2"],"channel":"`+ch+`"}`)
		if eff.Err != nil {
			t.Fatal(eff.Err)
		}
		var r FilesResult
		_ = json.Unmarshal(eff.Result, &r)
		return r
	}
	r := use("c1")
	if len(r.Files) != 2 || r.Files[0].ID != "f1" || r.Files[0].Owner != "alice" || !slices.Equal(r.Files[1].Channels, []string{"c1"}) {
		t.Fatalf("use %+v", r.Files)
	}
	if eff := h.do(OpFileUse, `{"ids":["f1"],"channel":"c1"}`); eff.Entry != nil {
		t.Error("using a file in the same channel again wrote")
	}
	use("c2")
	h.fail(OpFileUse, `{"ids":["f1"],"channel":"c3"}`, protocol.CodeTooLarge)
	h.reload()
	var g FileResult
	_ = json.Unmarshal(h.doAs(other, OpFileGet, `{"id":"f2"}`).Result, &g)
	if g.File.Node != "n1" || g.File.Blob != "b-f2" || !slices.Equal(g.File.Channels, []string{"c1", "c2"}) || !g.File.CreatedAt.Equal(t0) {
		t.Fatalf("get %+v", g.File)
	}
	h.fail(OpFileAdd, fileArgs("f5"), protocol.CodeTooLarge) // the count survives a restart
	h.fail(OpFileGet, `{"id":"zz"}`, protocol.CodeNotFound)
}

// TestFilesPending: a record written by an entry not yet durable is read
// from memory.
func TestFilesPending(t *testing.T) {
	h := newHarness(t)
	eff := h.s.Handle(Command{Op: OpFileAdd, Args: json.RawMessage(fileArgs("f1")), Caller: Caller{User: "alice"}}, h.now)
	if eff.Err != nil || eff.Entry == nil {
		t.Fatal(eff.Err)
	}
	g := h.s.Handle(Command{Op: OpFileGet, Args: json.RawMessage(`{"id":"f1"}`)}, h.now)
	if g.Err != nil {
		t.Fatalf("pending file unreadable: %v", g.Err)
	}
	h.s.Committed(eff.Index) // not applied to the log: it is now unreadable
	if g := h.s.Handle(Command{Op: OpFileGet, Args: json.RawMessage(`{"id":"f1"}`)}, h.now); g.Err == nil {
		t.Fatal("the pending copy outlived Committed")
	}
}

// TestPresenceHungGatewayHearsItsSessionsGo: a gateway that renews a
// session and a watch of the same user in one report, then stops, lets
// both leases lapse at the same instant; the offline event still goes to
// it (its watchers learn the user went, whoever else watches).
func TestPresenceHungGatewayHearsItsSessionsGo(t *testing.T) {
	h := newHarness(t)
	h.doAs(sess("gw1", "s1"), OpLogin, `{}`)
	h.tick(time.Second)
	h.presence(gateway("gw1"), `{"renew":["s1"],"watch":true,"ttl_ms":3000}`)
	at, _ := h.s.NextWake()
	h.now = at.Add(time.Millisecond) // the timer fires late
	eff := h.doAs(Caller{}, OpTick, "")
	want(t, presenceEvents(t, eff), "offline@1")
	if !slices.Equal(eff.EventsTo, []string{"gw1"}) {
		t.Fatalf("the offline event goes to %v", eff.EventsTo)
	}
	if got := h.s.PresenceGateways(); len(got) != 0 {
		t.Fatalf("watchers after the lapse %v", got)
	}
	// The next command's events go to the watchers of the time.
	h.presence(gateway("gw2"), `{"watch":true}`)
	eff = h.doAs(sess("gw2", "s2"), OpLogin, `{}`)
	if !slices.Equal(eff.EventsTo, []string{"gw2"}) {
		t.Fatalf("the online event goes to %v", eff.EventsTo)
	}
}
