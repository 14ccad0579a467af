package gateway

import (
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/protocol"
)

// TestUserRates: each user has its own bucket; the table keeps at most
// max users, forgets those whose bucket has filled up again (at most one
// sweep a second), and refuses a new user while every kept one is busy.
func TestUserRates(t *testing.T) {
	if newUserRates(0, 10) != nil {
		t.Fatal("a table without a rate")
	}
	var none *userRates
	if e := none.take("a", time.Now()); e != nil {
		t.Fatalf("no table refused: %v", e)
	}
	u := newUserRates(10, 2) // 10 a second, 2 at once: full again 0.2 s after
	u.max = 2
	now := time.Unix(1000, 0)
	for _, user := range []string{"a", "a", "b", "b"} {
		if e := u.take(user, now); e != nil {
			t.Fatalf("%s within its burst: %v", user, e)
		}
	}
	e := u.take("a", now)
	if e == nil || e.Code != protocol.CodeRateLimited || e.RetryAfterMS != 100 {
		t.Fatalf("a past its burst: %v", e)
	}
	if e := u.take("c", now); e == nil || e.Code != protocol.CodeRateLimited {
		t.Fatalf("a third user with the table full of busy ones: %v", e)
	}
	// 0.5 s on a and b are full again, but the last sweep was under a
	// second ago: c still waits.
	if e := u.take("c", now.Add(500*time.Millisecond)); e == nil {
		t.Fatal("a second sweep within a second")
	}
	later := now.Add(1100 * time.Millisecond)
	if e := u.take("c", later); e != nil {
		t.Fatalf("c once a and b were forgotten: %v", e)
	}
	if len(u.buckets) != 1 {
		t.Fatalf("%d buckets after the sweep, want c's only", len(u.buckets))
	}
}
