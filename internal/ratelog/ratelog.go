// Package ratelog logs a repeated event at most once per interval and says
// how many it suppressed in between, as C Tor's ratelim_t does: a failure
// that repeats many times a second (a misconfigured client, an exhausted
// descriptor table, a full address pool) must reach the log without
// flooding the journal.
package ratelog

import (
	"bytes"
	"log"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Limiter lets one event through per Every and counts the rest. The zero
// value lets every event through; Now nil means time.Now.
type Limiter struct {
	Every time.Duration
	Now   func() time.Time

	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// Allow reports whether to log now and, if so, how many events were
// suppressed since the last one let through.
func (l *Limiter) Allow() (bool, int) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	t := now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.suppressed = 0
	l.next = t.Add(l.Every)
	return true, n
}

// Log writes msg at lvl if the limiter lets it through, adding the count
// of suppressed events when there were any. It reports whether it wrote.
func (l *Limiter) Log(lg *zap.Logger, lvl zapcore.Level, msg string, fields ...zap.Field) bool {
	ok, n := l.Allow()
	if !ok {
		return false
	}
	if n > 0 {
		fields = append(fields, zap.Int("suppressed", n), zap.Duration("interval", l.Every))
	}
	lg.Log(lvl, msg, fields...)
	return true
}

// StdLogger is a standard-library logger (for http.Server.ErrorLog) whose
// lines become structured entries at lvl: message msg, the line in field
// "error", rate-limited by l. Without it net/http writes plain text to
// stderr, in the middle of a JSON log.
func StdLogger(lg *zap.Logger, lvl zapcore.Level, msg string, l *Limiter) *log.Logger {
	return log.New(&writer{lg: lg, lvl: lvl, msg: msg, l: l}, "", 0)
}

type writer struct {
	lg  *zap.Logger
	lvl zapcore.Level
	msg string
	l   *Limiter
}

func (w *writer) Write(p []byte) (int, error) {
	w.l.Log(w.lg, w.lvl, w.msg, zap.String("error", string(bytes.TrimRight(p, "\n"))))
	return len(p), nil
}
