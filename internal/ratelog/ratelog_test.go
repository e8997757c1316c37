package ratelog

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestLimiter: one event per interval; the next one says how many were
// suppressed in between.
func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := &Limiter{Every: 30 * time.Second, Now: func() time.Time { return now }}
	core, logs := observer.New(zap.InfoLevel)
	lg := zap.New(core)
	for range 5 {
		l.Log(lg, zapcore.WarnLevel, "event")
	}
	if logs.Len() != 1 {
		t.Fatalf("%d entries in one interval, want 1", logs.Len())
	}
	now = now.Add(29 * time.Second)
	if l.Log(lg, zapcore.WarnLevel, "event") || logs.Len() != 1 {
		t.Fatal("logged again before the interval ended")
	}
	now = now.Add(time.Second)
	if !l.Log(lg, zapcore.WarnLevel, "event") {
		t.Fatal("not logged after the interval")
	}
	all := logs.All()
	if n := all[1].ContextMap()["suppressed"]; n != int64(5) {
		t.Fatalf("suppressed = %v, want 5", n)
	}
	if _, ok := all[0].ContextMap()["suppressed"]; ok {
		t.Fatal("first entry claims suppressed events")
	}
}

// TestStdLogger: net/http's plain-text lines become structured entries,
// rate-limited.
func TestStdLogger(t *testing.T) {
	now := time.Unix(1000, 0)
	core, logs := observer.New(zap.InfoLevel)
	sl := StdLogger(zap.New(core), zapcore.WarnLevel, "metrics listener", &Limiter{Every: time.Minute, Now: func() time.Time { return now }})
	for range 3 {
		sl.Printf("http: Accept error: accept tcp: too many open files; retrying in 5ms")
	}
	all := logs.All()
	if len(all) != 1 || all[0].Level != zapcore.WarnLevel || all[0].Message != "metrics listener" {
		t.Fatalf("entries %+v", all)
	}
	if got := all[0].ContextMap()["error"]; got != "http: Accept error: accept tcp: too many open files; retrying in 5ms" {
		t.Fatalf("error field %q", got)
	}
}
