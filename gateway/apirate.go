package gateway

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-chat/switchboard/protocol"
)

// userRates bounds the HTTP API's requests per user: a caller with a
// session token (or, in development auth, acting as a user) has the rate
// and burst a WebSocket session has (--session-rate, --session-burst),
// shared by all of that user's HTTP requests on this node. A server API
// key is not limited, acting as a user or not: a backend is trusted with
// everything else too.
//
// Buckets are kept for at most maxUserRates users. One that has had time
// to fill up again is forgotten, as a new one would be full; they are
// swept when the table is full, at most once a second. A user new to a
// table still full of active users is refused (rate_limited) until a
// sweep makes room.
type userRates struct {
	limit rate.Limit
	burst int
	max   int // users with a bucket (maxUserRates)

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time
}

const maxUserRates = 1 << 16

func newUserRates(perSecond float64, burst int) *userRates {
	if perSecond <= 0 {
		return nil
	}
	return &userRates{limit: rate.Limit(perSecond), burst: burst, max: maxUserRates, buckets: make(map[string]*rate.Limiter)}
}

// take takes one of user's requests at now, or says when the next may
// come. A nil table (no --session-rate) allows everything.
func (u *userRates) take(user string, now time.Time) *protocol.Error {
	if u == nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	l := u.buckets[user]
	if l == nil {
		if len(u.buckets) >= u.max && now.Sub(u.swept) >= time.Second {
			u.swept = now
			for k, b := range u.buckets {
				if b.TokensAt(now) >= float64(u.burst) {
					delete(u.buckets, k)
				}
			}
		}
		if len(u.buckets) >= u.max {
			e := protocol.Errorf(protocol.CodeRateLimited, "this node is limiting the HTTP requests of %d users: retry after retry_after_ms", u.max)
			e.RetryAfterMS = 1000
			return e
		}
		l = rate.NewLimiter(u.limit, u.burst)
		u.buckets[user] = l
	}
	return throttled(l, now, "a user makes at most %g HTTP requests a second, %d at once: retry after retry_after_ms")
}

// throttled takes one request of l at now, or refuses it with when the
// next may come; format names the bound (with the rate and the burst).
func throttled(l *rate.Limiter, now time.Time, format string) *protocol.Error {
	if l.AllowN(now, 1) {
		return nil
	}
	r := l.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	e := protocol.Errorf(protocol.CodeRateLimited, format, float64(l.Limit()), l.Burst())
	e.RetryAfterMS = max(1, int64((wait+time.Millisecond-1)/time.Millisecond))
	return e
}
