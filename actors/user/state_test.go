package user

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// harness drives one user State with a fake clock, applying every entry
// to a MemLog as the actor adapter would.
type harness struct {
	t   *testing.T
	cfg Config
	log *persistence.MemLog
	s   *State
	now time.Time
}

func newHarness(t *testing.T, opts ...func(*Config)) *harness {
	t.Helper()
	cfg := DefaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	h := &harness{t: t, cfg: cfg, log: persistence.NewMemLog(), now: t0}
	h.reload()
	return h
}

// reload loads a fresh State from the log, as a restart would.
func (h *harness) reload() {
	h.t.Helper()
	s, err := Load("alice", h.log, &h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.s = s
}

func (h *harness) tick(d time.Duration) { h.now = h.now.Add(d) }

func (h *harness) do(op string, args string) *Effects {
	h.t.Helper()
	return h.doAs(Caller{User: "alice"}, op, args)
}

// doAs handles one command from c and checks that a refused command
// changes nothing.
func (h *harness) doAs(c Caller, op string, args string) *Effects {
	h.t.Helper()
	fp := func() string {
		return fmt.Sprintf("%+v %v %d %v %v %v %d", h.s.profile, h.s.channels, h.s.index,
			h.s.presence.sessions, h.s.presence.watchers, h.s.presence.lastSeen, h.s.files.count)
	}
	before := fp()
	var raw json.RawMessage
	if args != "" {
		raw = json.RawMessage(args)
	}
	eff := h.s.Handle(Command{Op: op, Args: raw, Caller: c}, h.now)
	if eff.Err != nil {
		if eff.Entry != nil || eff.Result != nil {
			h.t.Fatalf("%s refused with %v but produced an entry or a result", op, eff.Err)
		}
		if after := fp(); after != before {
			h.t.Fatalf("%s refused with %v but changed the state:\n%s\n%s", op, eff.Err, before, after)
		}
		return eff
	}
	if !json.Valid(eff.Result) {
		h.t.Fatalf("%s: result is not JSON: %s", op, eff.Result)
	}
	if eff.Entry != nil {
		var aerr error
		h.log.Append(eff.Entry, func(err error) { aerr = err })
		if aerr != nil {
			h.t.Fatal(aerr)
		}
		h.s.Committed(eff.Index)
	}
	return eff
}

func (h *harness) user(op, args string) protocol.User {
	h.t.Helper()
	eff := h.do(op, args)
	if eff.Err != nil {
		h.t.Fatalf("%s %s: %v", op, args, eff.Err)
	}
	var r struct {
		User protocol.User `json:"user"`
	}
	if err := json.Unmarshal(eff.Result, &r); err != nil {
		h.t.Fatal(err)
	}
	return r.User
}

func (h *harness) fail(op, args string, code protocol.Code) {
	h.t.Helper()
	eff := h.do(op, args)
	if eff.Err == nil || eff.Err.Code != code {
		h.t.Fatalf("%s %s: %v %s, want %s", op, args, eff.Err, eff.Result, code)
	}
}

func TestLogin(t *testing.T) {
	h := newHarness(t)
	h.fail(OpGet, "", protocol.CodeNotFound)
	if me := h.user(protocol.OpMe, ""); me.ID != "alice" || me.Status != "offline" || !me.CreatedAt.IsZero() {
		t.Errorf("me before login %+v", me)
	}

	eff := h.do(OpLogin, `{"name":"Alice","image":"a.png"}`)
	if eff.Err != nil || eff.Entry == nil || !eff.ReplyEarly {
		t.Fatalf("first login: err=%v entry=%v early=%v, want the user created and the reply not waiting for it", eff.Err, eff.Entry != nil, eff.ReplyEarly)
	}
	u := h.user(OpGet, "")
	if u.ID != "alice" || u.Name != "Alice" || u.Image != "a.png" || !u.CreatedAt.Equal(t0) || !u.UpdatedAt.Equal(t0) {
		t.Errorf("created %+v", u)
	}

	// The same claims again write nothing; empty claims change nothing.
	h.tick(time.Hour)
	for _, args := range []string{`{"name":"Alice","image":"a.png"}`, `{}`, ``} {
		if eff := h.do(OpLogin, args); eff.Err != nil || eff.Entry != nil {
			t.Errorf("login %s: err=%v entry=%v, want nothing written", args, eff.Err, eff.Entry != nil)
		}
	}
	// New claims update the profile.
	h.tick(time.Hour)
	u = h.user(OpLogin, `{"name":"Alice B."}`)
	if u.Name != "Alice B." || u.Image != "a.png" || !u.CreatedAt.Equal(t0) || !u.UpdatedAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("updated %+v", u)
	}
	h.reload()
	if me := h.user(protocol.OpMe, ""); me.Name != "Alice B." || !me.CreatedAt.Equal(t0) || me.Status != "offline" {
		t.Errorf("after reload %+v", me)
	}
	h.fail(OpLogin, `{"name":7}`, protocol.CodeBadRequest)
	h.fail(OpLogin, `[]`, protocol.CodeBadRequest)
	// Only a login's reply goes before its write: an update's waits.
	if eff := h.do(OpLogin, `{"name":"Alice C."}`); eff.Entry == nil || !eff.ReplyEarly {
		t.Errorf("login with new claims: entry=%v early=%v", eff.Entry != nil, eff.ReplyEarly)
	}
	if eff := h.do(protocol.OpUserUpdate, `{"name":"Alice D."}`); eff.Entry == nil || eff.ReplyEarly {
		t.Errorf("user.update: entry=%v early=%v, want its reply after the write", eff.Entry != nil, eff.ReplyEarly)
	}
}

func TestUserUpdate(t *testing.T) {
	h := newHarness(t)
	h.user(OpLogin, `{"name":"Alice"}`)
	h.tick(time.Minute)
	u := h.user(protocol.OpUserUpdate, `{"description":"hi","metadata":{ "k" : 1 }}`)
	if u.Name != "Alice" || u.Description != "hi" || string(u.Metadata) != `{"k":1}` || !u.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("updated %+v", u)
	}
	u = h.user(protocol.OpUserUpdate, `{"name":"","metadata":null}`)
	if u.Name != "" || u.Metadata != nil || u.Description != "hi" {
		t.Errorf("cleared %+v", u)
	}
	h.reload()
	if me := h.user(protocol.OpMe, ""); me.Description != "hi" || me.Metadata != nil {
		t.Errorf("after reload %+v", me)
	}

	l := protocol.DefaultLimits()
	tests := []struct {
		name string
		args string
		code protocol.Code
	}{
		{"name too long", `{"name":"` + strings.Repeat("n", l.MaxNameLen+1) + `"}`, protocol.CodeTooLong},
		{"description too long", `{"description":"` + strings.Repeat("d", l.MaxTextLen+1) + `"}`, protocol.CodeTooLong},
		{"image too long", `{"image":"` + strings.Repeat("i", l.MaxTextLen+1) + `"}`, protocol.CodeTooLong},
		{"metadata not an object", `{"metadata":[1]}`, protocol.CodeBadRequest},
		{"metadata a string", `{"metadata":"x"}`, protocol.CodeBadRequest},
		{"metadata too large", `{"metadata":{"k":"` + strings.Repeat("v", l.MaxDataBytes) + `"}}`, protocol.CodeTooLarge},
		{"wrong type", `{"name":1}`, protocol.CodeBadRequest},
		{"partly valid", `{"description":"ok","name":"` + strings.Repeat("n", l.MaxNameLen+1) + `"}`, protocol.CodeTooLong},
		{"not an object", `"x"`, protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.fail(protocol.OpUserUpdate, tt.args, tt.code)
		})
	}
}

func (h *harness) channels() []string {
	h.t.Helper()
	eff := h.do(OpChannels, "")
	if eff.Err != nil {
		h.t.Fatal(eff.Err)
	}
	var r ChannelsResult
	_ = json.Unmarshal(eff.Result, &r)
	return r.Channels
}

func (h *harness) index(channel string, member bool) *Effects {
	h.t.Helper()
	eff := h.do(OpIndex, fmt.Sprintf(`{"channel":%q,"member":%v}`, channel, member))
	if eff.Err != nil {
		h.t.Fatal(eff.Err)
	}
	return eff
}

func TestChannelIndex(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxChannels = 3 })
	if got := h.channels(); len(got) != 0 {
		t.Fatalf("fresh user lists %v", got)
	}
	for _, ch := range []string{"a", "b", "c", "d"} {
		h.tick(time.Second)
		if eff := h.index(ch, true); eff.Entry == nil {
			t.Fatalf("adding %s wrote nothing", ch)
		}
	}
	if got := h.channels(); !slices.Equal(got, []string{"d", "c", "b"}) {
		t.Errorf("channels %v, want the 3 most recently joined, newest first", got)
	}
	// Adding again is idempotent: it neither writes nor moves the channel.
	h.tick(time.Second)
	if eff := h.index("b", true); eff.Entry != nil {
		t.Errorf("adding b again wrote an entry")
	}
	if got := h.channels(); !slices.Equal(got, []string{"d", "c", "b"}) {
		t.Errorf("channels %v after adding b again", got)
	}
	// Removing is idempotent too.
	if eff := h.index("d", false); eff.Entry == nil {
		t.Errorf("removing d wrote nothing")
	}
	if eff := h.index("d", false); eff.Entry != nil {
		t.Errorf("removing d again wrote an entry")
	}
	if eff := h.index("never", false); eff.Entry != nil {
		t.Errorf("removing an unknown channel wrote an entry")
	}
	if got := h.channels(); !slices.Equal(got, []string{"c", "b", "a"}) {
		t.Errorf("channels %v after removing d", got)
	}
	// Leaving and joining again makes it the most recent.
	h.index("a", false)
	h.tick(time.Second)
	h.index("a", true)
	want := []string{"a", "c", "b"}
	if got := h.channels(); !slices.Equal(got, want) {
		t.Errorf("channels %v after rejoining a, want %v", got, want)
	}
	h.reload()
	if got := h.channels(); !slices.Equal(got, want) {
		t.Errorf("after reload %v, want %v", got, want)
	}
	h.fail(OpIndex, `{"member":true}`, protocol.CodeBadRequest)
	h.fail(OpIndex, `{"channel":1}`, protocol.CodeBadRequest)
	h.fail("_user.bogus", `{}`, protocol.CodeBadRequest)
}

func TestChannelIndexTies(t *testing.T) {
	h := newHarness(t)
	// Joined at the same instant: ordered by id, stable across reloads.
	for _, ch := range []string{"z", "m", "a"} {
		h.index(ch, true)
	}
	for i := 0; i < 2; i++ {
		if got := h.channels(); !slices.Equal(got, []string{"a", "m", "z"}) {
			t.Errorf("channels %v", got)
		}
		h.reload()
	}
}

// TestAdminShownOnOwnUserOnly: admin comes from the session's token and is
// shown on the caller's own user, never to others.
func TestAdminShownOnOwnUserOnly(t *testing.T) {
	h := newHarness(t)
	h.do(OpLogin, `{}`)
	var r struct {
		User protocol.User `json:"user"`
	}
	eff := h.doAs(Caller{User: "alice", Admin: true}, protocol.OpMe, `{}`)
	if err := json.Unmarshal(eff.Result, &r); err != nil || !r.User.Admin {
		t.Fatalf("me of an admin session: %s %v", eff.Result, err)
	}
	eff = h.doAs(Caller{User: "mallory", Admin: true}, OpGet, `{}`)
	var other struct {
		User protocol.User `json:"user"`
	}
	if err := json.Unmarshal(eff.Result, &other); err != nil || other.User.Admin {
		t.Fatalf("another admin sees alice as admin: %s %v", eff.Result, err)
	}
}
