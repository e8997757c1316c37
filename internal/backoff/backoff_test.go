package backoff

import (
	"testing"
	"time"
)

func TestAcceptDoublesToMaxAndResets(t *testing.T) {
	var a Accept
	want := []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond,
		80 * time.Millisecond, 160 * time.Millisecond, 320 * time.Millisecond, 640 * time.Millisecond, time.Second, time.Second}
	for i, w := range want {
		if got := a.Next(); got != w {
			t.Fatalf("failure %d: wait %v, want %v", i+1, got, w)
		}
	}
	a.Reset()
	if got := a.Next(); got != Min {
		t.Fatalf("after Reset: wait %v, want %v", got, Min)
	}
}

func TestSleepEndsWhenDoneCloses(t *testing.T) {
	done := make(chan struct{})
	close(done)
	if Sleep(time.Hour, done) {
		t.Fatal("Sleep reported a full wait although done was closed")
	}
	if !Sleep(time.Millisecond, make(chan struct{})) {
		t.Fatal("Sleep reported closing although done stayed open")
	}
}
