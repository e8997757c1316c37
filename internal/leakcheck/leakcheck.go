// Package leakcheck is a test helper: it asserts that a test leaves no
// goroutine and no file descriptor behind.
package leakcheck

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Check records the goroutine and fd counts now and registers a cleanup
// that polls (bounded, on the real counts) until both are back to that
// level. Call it first in a test so its cleanup runs after every cleanup
// registered later (servers closed, conns closed). Tests using it must not
// run in parallel with others.
func Check(t testing.TB) {
	t.Helper()
	g0, f0 := runtime.NumGoroutine(), countFDs()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			// splice(2) keeps a pool of pipes that only a GC releases.
			runtime.GC()
			g, f := runtime.NumGoroutine(), countFDs()
			if g <= g0 && f <= f0 {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("leak: goroutines %d -> %d, fds %d -> %d (%s)\n%s", g0, g, f0, f, fdList(), buf)
				return
			}
			time.Sleep(5 * time.Millisecond) // polling a real condition, bounded above
		}
	})
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

func fdList() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+"="+l)
	}
	return strings.Join(out, " ")
}
