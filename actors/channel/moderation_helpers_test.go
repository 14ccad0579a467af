package channel

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/protocol"
)

// Helpers for the membership and moderation tests.

// args builds op args for the test channel.
func args(kv ...any) map[string]any {
	a := map[string]any{"channel": channelID}
	for i := 0; i+1 < len(kv); i += 2 {
		a[kv[i].(string)] = kv[i+1]
	}
	return a
}

// tokenCaller is a session that joins with a join token's perms.
func tokenCaller(user string, perms ...string) Caller {
	c := caller(user)
	c.Perms = perms
	return c
}

// record returns user's member record as stored (nil: none).
func (h *harness) record(user string) *memberRecord {
	h.t.Helper()
	m, err := h.s.member(user)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

// view returns user's member object as channel.get shows it to them.
func (h *harness) view(user string) *protocol.Member {
	h.t.Helper()
	return ok[protocol.ChannelResult](h, caller(user), protocol.OpChannelGet, args()).Member
}

// channel returns the channel object.
func (h *harness) channel() protocol.Channel {
	h.t.Helper()
	return *ok[protocol.ChannelResult](h, admin("root"), protocol.OpChannelGet, args()).Channel
}

// sendAs sends a message as c and returns the effects.
func (h *harness) sendAs(c Caller, clientID string) *Effects {
	h.t.Helper()
	return h.do(c, protocol.OpMessageSend, args("client_id", clientID, "text", "t "+clientID))
}

// mustSend sends as c and fails the test on an error.
func (h *harness) mustSend(c Caller, clientID string) protocol.Message {
	h.t.Helper()
	eff := h.sendAs(c, clientID)
	if eff.Err != nil {
		h.t.Fatalf("send %s by %s: %v", clientID, c.User, eff.Err)
	}
	var r messageResult
	_ = json.Unmarshal(eff.Result, &r)
	return r.Message
}

// sendFails sends as c and checks the refusal and its retry_after_ms.
func (h *harness) sendFails(c Caller, clientID string, code protocol.Code, retryMS int64) {
	h.t.Helper()
	e := h.fail(c, protocol.OpMessageSend, args("client_id", clientID, "text", "x"), code)
	if e.RetryAfterMS != retryMS {
		h.t.Errorf("send by %s: %s with retry_after_ms %d, want %d", c.User, code, e.RetryAfterMS, retryMS)
	}
}

// noop checks that a command succeeds and writes and announces nothing.
func (h *harness) noop(c Caller, op string, a any) *Effects {
	h.t.Helper()
	eff := h.do(c, op, a)
	if eff.Err != nil {
		h.t.Fatalf("%s by %s: %v", op, c.User, eff.Err)
	}
	if eff.Entry != nil || len(eff.Events) > 0 || len(eff.Watch) > 0 || len(eff.Notices) > 0 {
		h.t.Fatalf("%s by %s repeated: entry=%v events=%v watch=%v notices=%v", op, c.User, eff.Entry != nil, eventNames(h.t, eff), eff.Watch, eff.Notices)
	}
	return eff
}

// systemKinds lists the kinds of the system messages among eff's events.
func systemKinds(t *testing.T, eff *Effects) []string {
	t.Helper()
	var out []string
	for _, ev := range eff.Events {
		f := decodeFrame(t, ev.Frame)
		if f.Event != protocol.EventMessageNew {
			continue
		}
		var d messageResult
		_ = json.Unmarshal(f.Data, &d)
		if d.Message.Type == protocol.MessageSystem && d.Message.System != nil {
			out = append(out, d.Message.System.Kind)
		}
	}
	return out
}

// stopped lists the sessions eff stops watching, sorted.
func stopped(eff *Effects) []string {
	var out []string
	for _, wc := range eff.Watch {
		for _, s := range wc.Sessions {
			out = append(out, wc.Gateway+"/"+s)
		}
	}
	slices.Sort(out)
	return out
}

// memberEventData decodes a member.* event.
func memberEventData(t *testing.T, ev Event) (string, memberEvent) {
	t.Helper()
	f := decodeFrame(t, ev.Frame)
	var d memberEvent
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatal(err)
	}
	return f.Event, d
}
