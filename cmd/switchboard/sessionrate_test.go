package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestSessionRequestRate: a session makes at most --session-burst
// requests at once and --session-rate a second after that; a request past
// it is answered rate_limited with when to retry, and changes nothing;
// ping is free; after the wait the session goes on.
func TestSessionRequestRate(t *testing.T) {
	n := testNode(t, func(c *Config) { c.Gateway.SessionRate, c.Gateway.SessionBurst = 5, 4 })
	alice := dial(t, n, "alice")
	ctx := ctxT(t)
	expect(t, alice, protocol.OpChannelCreate, map[string]any{"id": "paced", "type": "standard"}, "")
	for i := range 3 {
		expect(t, alice, protocol.OpMessageSend, a("paced", "client_id", "m"+string(rune('0'+i)), "text", "hi"), "")
	}
	// The burst is spent: the next send waits about 1/5 s.
	err := alice.Call(ctx, protocol.OpMessageSend, a("paced", "client_id", "over", "text", "hi"), nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeRateLimited || pe.RetryAfterMS < 1 || pe.RetryAfterMS > 200 ||
		!strings.Contains(pe.Message, "5 requests a second, 4 at once") {
		t.Fatalf("a send past the burst: %v", err)
	}
	if err := alice.Call(ctx, protocol.OpPing, struct{}{}, nil); err != nil {
		t.Fatalf("ping at the limit: %v", err)
	}
	time.Sleep(time.Duration(pe.RetryAfterMS) * time.Millisecond) // the wait the server asked for
	expect(t, alice, protocol.OpMessageSend, a("paced", "client_id", "after", "text", "hi"), "")

	// The refused send stored nothing: history holds the other four.
	var h protocol.HistoryResult
	for try := 0; ; try++ { // as a client does: again after retry_after_ms
		err := alice.Call(ctx, protocol.OpMessagesHistory, a("paced"), &h)
		if !errors.As(err, &pe) || pe.Code != protocol.CodeRateLimited || try == 10 {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		time.Sleep(time.Duration(pe.RetryAfterMS) * time.Millisecond)
	}
	var ids []string
	for _, m := range h.Messages {
		if m.ClientID != "" {
			ids = append(ids, m.ClientID)
		}
	}
	if strings.Join(ids, ",") != "m0,m1,m2,after" {
		t.Fatalf("history client_ids %v, want m0,m1,m2,after", ids)
	}
	m := string(scrape(t, n))
	if !strings.Contains(m, `switchboard_request_duration_seconds_count{code="rate_limited",op="message.send"} 1`) {
		t.Errorf("the refusal is not counted in the request metrics:\n%s", grepLines(m, "rate_limited"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
