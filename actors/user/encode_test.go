package user

import (
	"encoding/json"
	"testing"

	"github.com/switchboard-chat/switchboard/persistence"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestLoginArgsAppend: the gateway's login args are what encoding/json
// writes.
func TestLoginArgsAppend(t *testing.T) {
	for _, a := range []LoginArgs{
		{},
		{Name: "Alice"},
		{Image: "a.png"},
		{PresenceTTLMS: 60000},
		{Name: "Ünï <&> \"q\"", Image: "https://x/a.png?a=1&b=2", PresenceTTLMS: 1},
	} {
		want, _ := json.Marshal(a)
		if got := a.Append([]byte("x")); string(got) != "x"+string(want) {
			t.Errorf("%+v: got %s, want %s", a, got[1:], want)
		}
	}
}

// TestLoginReplyIsTheSessionsView: a login answers the connecting
// session's view of the user (online, admin as its token says) encoded as
// encoding/json writes {"user": ...}, which the gateway sends on as it
// is; the stored profile is encoded the same way.
func TestLoginReplyIsTheSessionsView(t *testing.T) {
	h := newHarness(t)
	c := Caller{User: "alice", Admin: true, Session: "s1", Gateway: "gw1"}
	eff := h.doAs(c, OpLogin, `{"name":"Al <i> & ce","image":"a.png"}`)
	if eff.Err != nil {
		t.Fatal(eff.Err)
	}
	var r struct {
		User protocol.User `json:"user"`
	}
	if err := json.Unmarshal(eff.Result, &r); err != nil {
		t.Fatal(err)
	}
	type plain protocol.User
	want, _ := json.Marshal(struct {
		User plain `json:"user"`
	}{plain(r.User)})
	if string(eff.Result) != string(want) {
		t.Fatalf("login result\n%s\nwant\n%s", eff.Result, want)
	}
	if u := r.User; u.ID != "alice" || u.Name != "Al <i> & ce" || u.Status != protocol.StatusOnline || !u.Admin || !u.LastSeen.Equal(t0) || !u.CreatedAt.Equal(t0) {
		t.Errorf("login view %+v", u)
	}
	stored, err := h.log.Get(persistence.TableMeta, nil)
	if err != nil {
		t.Fatal(err)
	}
	var p plain
	if err := json.Unmarshal(stored, &p); err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(p); string(b) != string(stored) || p.Status != "" || p.Admin || p.Name != "Al <i> & ce" {
		t.Errorf("stored profile %s", stored)
	}
	// Another user's session does not see alice as admin; a login is
	// always the session's own user, so only me shows the difference.
	if me := h.user(protocol.OpMe, ""); me.Admin || me.Status != protocol.StatusOnline {
		t.Errorf("me from a session without admin %+v", me)
	}
}
