package e2e

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"socksd/test/tornet"
)

// torLoad keeps workers making CONNECTs through socksd and records each
// outcome, so a test can ask what happened to requests started in a
// window.
type torLoad struct {
	mu   sync.Mutex
	outs []loadOutcome
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

type loadOutcome struct {
	start time.Time
	rtt   time.Duration
	code  int // SOCKS reply code; -1 for a transport error
}

func startTorLoad(n *tornet.Network, s *Socksd, workers int, timeout time.Duration) *torLoad {
	l := &torLoad{stop: make(chan struct{})}
	get := []byte("GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				t0 := time.Now()
				res, err := torSOCKS5Try(s.Addr, fmt.Sprintf("load-%d", w), "pw", torCmdConnect, "127.0.0.1", n.HTTPPort, get, timeout)
				o := loadOutcome{start: t0, rtt: time.Since(t0), code: int(res.Code)}
				if err != nil {
					o.code = -1
				}
				if res.Conn != nil {
					res.Conn.Close()
				}
				l.mu.Lock()
				l.outs = append(l.outs, o)
				l.mu.Unlock()
				if o.code != 0 {
					// A failing Tor answers at once: pace the retries.
					select {
					case <-l.stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		}()
	}
	return l
}

// Stop ends the load and waits for the workers; a second call is a no-op.
func (l *torLoad) Stop() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// window returns the outcomes of requests started in [from, to).
func (l *torLoad) window(from, to time.Time) []loadOutcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []loadOutcome
	for _, o := range l.outs {
		if !o.start.Before(from) && o.start.Before(to) {
			out = append(out, o)
		}
	}
	return out
}

// firstOKAfter waits (bounded) for a request started after t to succeed
// and returns when it started.
func (l *torLoad) firstOKAfter(t *testing.T, after time.Time, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for _, o := range l.outs {
			if o.code == 0 && o.start.After(after) {
				l.mu.Unlock()
				return o.start
			}
		}
		l.mu.Unlock()
		time.Sleep(50 * time.Millisecond) // poll interval of a bounded loop
	}
	t.Fatalf("no successful request within %v after %v", timeout, after.Format("15:04:05.000"))
	return time.Time{}
}

// TestReliabilityTorKill: the tor socksd controls is killed -9 again and
// again under load. While it is down every request fails fast (0x01,
// never a hang, never a direct dial); when it is back socksd serves
// again, and afterwards it is at its baseline.
func TestReliabilityTorKill(t *testing.T) {
	n := needTornet(t)
	kills := pick(2, 10)
	ct := startClientTor(t, "reliability-kill")
	tmpl := strings.Replace(attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt}), `level = "debug"`, `level = "info"`, 1)
	s := startSocksd(t, tmpl)
	fetchUntilOK(t, n, s, "kill-warmup", 60*time.Second)
	base := mustSample(t, s)

	load := startTorLoad(n, s, 4, 30*time.Second)
	defer load.Stop()
	var worstFail, worstBack time.Duration
	failed := 0
	for i := range kills {
		load.firstOKAfter(t, time.Now(), 60*time.Second)
		tk := time.Now()
		ct.kill(t, syscall.SIGKILL)
		// Down for a while under load, then tor comes back.
		time.Sleep(time.Second) // how long tor stays down: the scenario, not synchronisation
		td := time.Now()
		down := load.window(tk.Add(100*time.Millisecond), td)
		ct.start(t)
		tr := time.Now()
		back := load.firstOKAfter(t, tr, 60*time.Second)
		worstBack = max(worstBack, back.Sub(tr))
		if len(down) == 0 {
			t.Fatalf("kill %d: no request started while tor was down", i)
		}
		for _, o := range down {
			if o.code == 0 {
				t.Errorf("kill %d: a request started %v after the kill succeeded while tor was down", i, o.start.Sub(tk))
			}
			if o.code != 0x01 && o.code != -1 {
				t.Errorf("kill %d: reply %#x while tor was down, want 0x01", i, o.code)
			}
			worstFail = max(worstFail, o.rtt)
			failed++
		}
	}
	load.Stop()
	if worstFail > time.Second {
		t.Errorf("slowest failure while tor was down: %v, want under 1 s (fail fast)", worstFail)
	}
	after, rec := waitBaseline(t, s, base, 30*time.Second)
	report(t, "tor kill -9 x%d under 4 workers: %d requests while down all failed, slowest in %.3fs; serving again at most %.2fs after tor was ready; baseline %v -> %v after %.2fs",
		kills, failed, worstFail.Seconds(), worstBack.Seconds(), base, after, rec.Seconds())
}

// TestReliabilityTorFrozen: the tor socksd controls is stopped (SIGSTOP).
// socksd declares the control connection hung within 10 s and fails
// closed: requests opened 1 s and 5 s into the freeze get 0x01 no later
// than 10 s after it (not 0x06 at socks_timeout); once tor is continued
// socksd serves again.
func TestReliabilityTorFrozen(t *testing.T) {
	n := needTornet(t)
	ct := startClientTor(t, "reliability-frozen")
	const socksTimeout = 40 * time.Second
	tmpl := strings.Replace(attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt, CircuitTimeout: socksTimeout.String()}), `level = "debug"`, `level = "info"`, 1)
	s := startSocksd(t, tmpl)
	fetchUntilOK(t, n, s, "frozen-warmup", 60*time.Second)
	base := mustSample(t, s)

	ct.Proc.Signal(syscall.SIGSTOP)
	tf := time.Now()
	continued := false
	defer func() {
		if !continued {
			ct.Proc.Signal(syscall.SIGCONT)
		}
	}()
	// Requests opened at +1 s and +5 s.
	type result struct {
		at   time.Duration
		code int
		took time.Duration
	}
	results := make(chan result, 2)
	// When socksd declares the control connection hung (its warning).
	detectedAt := make(chan time.Duration, 1)
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		for time.Since(tf) < socksTimeout+10*time.Second {
			if strings.Contains(s.Log(), "stopped answering") {
				detectedAt <- time.Since(tf)
				return
			}
			select {
			case <-watchDone:
				return
			case <-time.After(100 * time.Millisecond): // poll interval of a bounded loop
			}
		}
	}()
	for _, at := range []time.Duration{time.Second, 5 * time.Second} {
		go func() {
			time.Sleep(time.Until(tf.Add(at))) // the scenario's schedule
			t0 := time.Now()
			get := []byte("GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
			res, err := torSOCKS5Try(s.Addr, "frozen", "pw", torCmdConnect, "127.0.0.1", n.HTTPPort, get, socksTimeout+20*time.Second)
			r := result{at: at, code: int(res.Code), took: time.Since(t0)}
			if err != nil {
				r.code = -1
			}
			if res.Conn != nil {
				res.Conn.Close()
			}
			results <- r
		}()
	}
	const failBy = 10 * time.Second
	var lines []string
	for range 2 {
		r := <-results
		if r.code != 0x01 {
			t.Errorf("request at +%v: reply %#x, want 0x01 (fail closed)", r.at, r.code)
		}
		if end := r.at + r.took; end > failBy {
			t.Errorf("request at +%v ended %.1fs after SIGSTOP, want within %v", r.at, end.Seconds(), failBy)
		}
		lines = append(lines, fmt.Sprintf("+%v: %#x after %.1fs", r.at, r.code, r.took.Seconds()))
	}
	detected := "not declared"
	select {
	case d := <-detectedAt:
		detected = fmt.Sprintf("declared hung %.1fs after SIGSTOP", d.Seconds())
		if d > failBy {
			t.Errorf("control connection declared hung %v after SIGSTOP, want within %v", d, failBy)
		}
	case <-time.After(time.Until(tf.Add(failBy + 2*time.Second))):
		t.Errorf("socksd did not say the control connection stopped answering within %v", failBy+2*time.Second)
	}
	ct.Proc.Signal(syscall.SIGCONT)
	continued = true
	back := fetchUntilOK(t, n, s, "frozen-after", 90*time.Second)
	after, rec := waitBaseline(t, s, base, 30*time.Second)
	report(t, "tor frozen (SIGSTOP), socks_timeout %v: requests %s (control connection %s); serving %.2fs after SIGCONT; baseline %v -> %v after %.2fs",
		socksTimeout, strings.Join(lines, ", "), detected, back.Seconds(), base, after, rec.Seconds())
}
