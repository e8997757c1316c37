package dispatch

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// clientWarnInterval is how often a repeated client mistake is logged at
// warning level. Tor rate-limits the same warnings (unsafe SOCKS, HTTP on
// a SocksPort) with a ratelim_t and reports how many it suppressed; a
// misconfigured browser retries many times a second, and one line per
// interval tells the user everything without flooding the journal.
const clientWarnInterval = 30 * time.Second

// rateLimiter lets one event through per interval and counts the rest.
type rateLimiter struct {
	every time.Duration
	now   func() time.Time

	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// allow reports whether to log now and how many events were suppressed
// since the last one logged.
func (r *rateLimiter) allow() (bool, int) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Before(r.next) {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.suppressed = 0
	r.next = now.Add(r.every)
	return true, n
}

// clientWarnings are the rate-limited warnings about misconfigured
// clients. Messages name the mistake and the fix, never the destination.
type clientWarnings struct {
	httpOnSOCKS rateLimiter
	unsafeSOCKS rateLimiter
}

func newClientWarnings(every time.Duration, now func() time.Time) *clientWarnings {
	if now == nil {
		now = time.Now
	}
	return &clientWarnings{
		httpOnSOCKS: rateLimiter{every: every, now: now},
		unsafeSOCKS: rateLimiter{every: every, now: now},
	}
}

func (w *clientWarnings) warn(log *zap.Logger, r *rateLimiter, msg string, fields ...zap.Field) {
	ok, n := r.allow()
	if !ok {
		return
	}
	if n > 0 {
		fields = append(fields, zap.Int("suppressed", n), zap.Duration("interval", r.every))
	}
	log.Warn(msg, fields...)
}
