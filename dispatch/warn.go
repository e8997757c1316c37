package dispatch

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"socksd/internal/ratelog"
)

// clientWarnInterval is how often a repeated client mistake is logged at
// warning level. Tor rate-limits the same warnings (unsafe SOCKS, HTTP on
// a SocksPort) with a ratelim_t and reports how many it suppressed; a
// misconfigured browser retries many times a second, and one line per
// interval tells the user everything without flooding the journal.
const clientWarnInterval = 30 * time.Second

// clientWarnings are the rate-limited warnings about misconfigured
// clients. Messages name the mistake and the fix, never the destination.
type clientWarnings struct {
	httpOnSOCKS ratelog.Limiter
	foreignHost ratelog.Limiter
	unsafeSOCKS ratelog.Limiter
	// streamOptions: a pt_args listener got arguments it cannot apply.
	streamOptions ratelog.Limiter
	// httpStreamOptions: a CONNECT's Tor-Stream-Options was refused.
	httpStreamOptions ratelog.Limiter
}

func newClientWarnings(every time.Duration, now func() time.Time) *clientWarnings {
	return &clientWarnings{
		httpOnSOCKS: ratelog.Limiter{Every: every, Now: now},
		foreignHost: ratelog.Limiter{Every: every, Now: now},
		unsafeSOCKS: ratelog.Limiter{Every: every, Now: now},

		streamOptions:     ratelog.Limiter{Every: every, Now: now},
		httpStreamOptions: ratelog.Limiter{Every: every, Now: now},
	}
}

func (w *clientWarnings) warn(log *zap.Logger, r *ratelog.Limiter, msg string, fields ...zap.Field) {
	r.Log(log, zapcore.WarnLevel, msg, fields...)
}
