package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"socksd/internal/daemontest"
)

// The reliability suite (reliability_*_test.go) puts socksd through what a
// hostile local user or an unlucky workstation does to it: floods,
// slowloris, descriptor exhaustion, Tor killed and frozen, DNS abuse,
// garbage, churn. Every test measures, asserts the bounds, and checks
// that socksd comes back to its baseline goroutines and descriptors with
// bounded RSS. `make test` runs the short form; `make soak`
// (SOCKSD_SOAK=long) the long one, and writes the numbers to
// SOCKSD_SOAK_REPORT.

// soakLong reports whether the long form runs.
func soakLong() bool { return os.Getenv("SOCKSD_SOAK") == "long" }

// pick returns short in the short form and long in the long one.
func pick[T any](short, long T) T {
	if soakLong() {
		return long
	}
	return short
}

// rssBound is the largest RSS a reliability test accepts. The race
// detector multiplies a Go program's memory several times.
func rssBound() int64 {
	if raceEnabled {
		return 1 << 30
	}
	return 160 << 20
}

var reportMu sync.Mutex

// report logs one measured line and appends it to SOCKSD_SOAK_REPORT.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	path := os.Getenv("SOCKSD_SOAK_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "- **%s** (%s form, race=%v): %s\n", t.Name(), pick("short", "long"), raceEnabled, line)
}

// procSample is what socksd's own /metrics says about the process.
type procSample struct {
	Goroutines int
	FDs        int
	RSS        int64
}

func (p procSample) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, RSS %.1f MiB", p.Goroutines, p.FDs, float64(p.RSS)/(1<<20))
}

// sampleProc scrapes go_goroutines, process_open_fds and
// process_resident_memory_bytes from socksd's metrics listener.
func sampleProc(s *Socksd) (procSample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	code, body, err := httpDo(ctx, "GET", "http://"+s.Metrics+"/metrics")
	if err != nil {
		return procSample{}, err
	}
	if code != 200 {
		return procSample{}, fmt.Errorf("GET /metrics: %d", code)
	}
	var p procSample
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			p.Goroutines = int(f)
		case "process_open_fds":
			p.FDs = int(f)
		case "process_resident_memory_bytes":
			p.RSS = int64(f)
		}
	}
	if p.Goroutines == 0 || p.FDs == 0 || p.RSS == 0 {
		return p, fmt.Errorf("metrics lack the process figures")
	}
	return p, nil
}

func mustSample(t *testing.T, s *Socksd) procSample {
	t.Helper()
	p, err := sampleProc(s)
	if err != nil {
		t.Fatalf("sampling socksd: %v\n%s", err, daemontest.Tail(s.Log(), 3000))
	}
	return p
}

// Slack over the baseline: a scrape's own connection and goroutines, a
// control-port reconnect's, and Go's splice pipe pool.
const (
	goroutineSlack = 8
	fdSlack        = 8
)

// waitBaseline polls (bounded) until socksd is back within the slack of
// base and its RSS is under rssBound, and returns how long that took.
func waitBaseline(t *testing.T, s *Socksd, base procSample, timeout time.Duration) (procSample, time.Duration) {
	t.Helper()
	t0 := time.Now()
	var last procSample
	for {
		p, err := sampleProc(s)
		if err == nil {
			last = p
			if p.Goroutines <= base.Goroutines+goroutineSlack && p.FDs <= base.FDs+fdSlack {
				if p.RSS > rssBound() {
					t.Errorf("RSS %.1f MiB after recovery, bound %.1f MiB", float64(p.RSS)/(1<<20), float64(rssBound())/(1<<20))
				}
				return p, time.Since(t0)
			}
		}
		if time.Since(t0) > timeout {
			t.Fatalf("socksd not back to baseline (%v) after %v: %v (last error %v)", base, timeout, last, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval of a bounded loop
	}
}

// peakRSS samples RSS every interval until stop is closed and returns the
// largest value seen.
func peakRSS(s *Socksd, every time.Duration, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if p, err := sampleProc(s); err == nil {
				peak = max(peak, p.RSS)
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// cpuTicks returns the user+system clock ticks pid has used
// (/proc/PID/stat fields 14 and 15; 100 ticks a second on Linux).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from ')'.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	sy, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc stat")
	}
	return u + sy, nil
}

// cpuShare measures pid's CPU use over d as a share of one core.
func cpuShare(t *testing.T, pid int, d time.Duration) float64 {
	t.Helper()
	a, err := cpuTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	time.Sleep(d) // the measurement window, not synchronisation
	b, err := cpuTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	return float64(b-a) / 100 / time.Since(t0).Seconds()
}
