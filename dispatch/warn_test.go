package dispatch

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestClientWarningsRateLimited: one warning per interval; the next one
// says how many were suppressed in between.
func TestClientWarningsRateLimited(t *testing.T) {
	now := time.Unix(1000, 0)
	w := newClientWarnings(30*time.Second, func() time.Time { return now })
	core, logs := observer.New(zap.WarnLevel)
	log := zap.New(core)

	for i := 0; i < 5; i++ {
		w.warn(log, &w.httpOnSOCKS, "http on socks")
	}
	w.warn(log, &w.unsafeSOCKS, "unsafe") // its own limiter
	if got := logs.Len(); got != 2 {
		t.Fatalf("%d warnings in one interval, want 1 per kind", got)
	}
	now = now.Add(29 * time.Second)
	w.warn(log, &w.httpOnSOCKS, "http on socks")
	if logs.Len() != 2 {
		t.Fatal("warned again before the interval ended")
	}
	now = now.Add(time.Second)
	w.warn(log, &w.httpOnSOCKS, "http on socks")
	all := logs.All()
	if len(all) != 3 {
		t.Fatalf("%d warnings, want 3", len(all))
	}
	if n, ok := all[2].ContextMap()["suppressed"]; !ok || n != int64(5) {
		t.Fatalf("suppressed = %v (%v), want 5", n, all[2].ContextMap())
	}
	if _, ok := all[0].ContextMap()["suppressed"]; ok {
		t.Fatal("first warning claims suppressed events")
	}
}
