package user

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// An index change with a reason becomes a notice for the user's sessions
// (the gateways that hold them), while the user is online; without a
// reason, or offline, it is only the index.
func TestIndexNotices(t *testing.T) {
	h := newHarness(t)
	if eff := h.do(OpIndex, `{"channel":"c1","member":true,"reason":"added","view":{"id":"c1"}}`); len(eff.Notices) != 0 {
		t.Fatalf("offline user got notices %q", eff.Notices)
	}
	h.doAs(sess("gw1", "s1"), OpLogin, `{}`)
	h.doAs(sess("gw2", "s2"), OpLogin, `{}`)
	h.doAs(sess("gw2", "s3"), OpLogin, `{}`)
	if got := h.s.SessionGateways(); !slices.Equal(got, []string{"gw1", "gw2"}) {
		t.Fatalf("session gateways %v", got)
	}
	eff := h.do(OpIndex, `{"channel":"c2","member":true,"reason":"invited","view":{"id":"c2","type":"private"}}`)
	if len(eff.Notices) != 1 {
		t.Fatalf("notices %q", eff.Notices)
	}
	var f struct {
		Event   string                    `json:"event"`
		Channel *string                   `json:"channel"`
		Seq     *uint64                   `json:"seq"`
		Data    protocol.ChannelAddedData `json:"data"`
	}
	if err := json.Unmarshal(eff.Notices[0], &f); err != nil || f.Event != protocol.EventChannelAdded || f.Channel != nil || f.Seq != nil ||
		f.Data.Reason != protocol.ReasonInvited || f.Data.Channel.ID != "c2" || f.Data.Channel.Type != protocol.TypePrivate {
		t.Fatalf("added notice %s: %v", eff.Notices[0], err)
	}
	eff = h.do(OpIndex, `{"channel":"c2","member":false,"reason":"kicked"}`)
	var r struct {
		Event string                      `json:"event"`
		Data  protocol.ChannelRemovedData `json:"data"`
	}
	if len(eff.Notices) != 1 || json.Unmarshal(eff.Notices[0], &r) != nil || r.Event != protocol.EventChannelRemoved ||
		r.Data != (protocol.ChannelRemovedData{Channel: "c2", Reason: protocol.ReasonKicked}) {
		t.Fatalf("removed notice %q", eff.Notices)
	}
	if eff := h.do(OpIndex, `{"channel":"c3","member":true}`); len(eff.Notices) != 0 {
		t.Fatalf("an index change without a reason notified %q", eff.Notices)
	}
}
