package client

import (
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

func TestAgain(t *testing.T) {
	later, past := time.Now().Add(time.Minute), time.Now().Add(-time.Second)
	limited := func(ms int64) *protocol.Error {
		return &protocol.Error{Code: protocol.CodeRateLimited, RetryAfterMS: ms}
	}
	for _, tc := range []struct {
		name     string
		op       string
		e        *protocol.Error
		deadline time.Time
		retry    bool
		wait     time.Duration // 0: a backoff's
	}{
		{"answered", protocol.OpMessagesHistory, nil, later, false, 0},
		{"unavailable", protocol.OpMessagesHistory, &protocol.Error{Code: protocol.CodeUnavailable}, later, true, 0},
		{"unavailable past the deadline", protocol.OpMessagesHistory, &protocol.Error{Code: protocol.CodeUnavailable}, past, false, 0},
		{"unavailable, no sooner than asked", protocol.OpMessagesHistory, &protocol.Error{Code: protocol.CodeUnavailable, RetryAfterMS: 500}, later, true, 500 * time.Millisecond},
		{"unavailable, asked to wait past the deadline", protocol.OpMessagesHistory, &protocol.Error{Code: protocol.CodeUnavailable, RetryAfterMS: 500}, time.Now().Add(100 * time.Millisecond), false, 0},
		{"a session's rate", protocol.OpMessageSend, limited(20), later, true, 20 * time.Millisecond},
		{"the longest wait waited out", protocol.OpMessagesHistory, limited(1000), later, true, time.Second},
		{"slow mode's seconds go to the caller", protocol.OpMessageSend, limited(10000), later, false, 0},
		{"a wait past the deadline", protocol.OpMessageSend, limited(20), time.Now().Add(5 * time.Millisecond), false, 0},
		{"no wait given", protocol.OpMessageSend, limited(0), later, false, 0},
		{"not safe to repeat", protocol.OpChannelCreate, limited(20), later, false, 0},
		{"not retried at all", protocol.OpMessagesHistory, &protocol.Error{Code: protocol.CodeNotFound}, later, false, 0},
	} {
		wait, retry := again(tc.op, tc.e, tc.deadline, 100*time.Millisecond)
		if retry != tc.retry || (retry && tc.wait != 0 && wait != tc.wait) || (retry && tc.wait == 0 && (wait <= 0 || wait > 200*time.Millisecond)) {
			t.Errorf("%s: again = %v, %v; want retry %v (wait %v)", tc.name, wait, retry, tc.retry, tc.wait)
		}
	}
}
