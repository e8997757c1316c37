package e2e

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestTorFrozen: a client tor stopped with SIGSTOP keeps its sockets open
// and answers nothing. socksd must notice within well under 10 s (its
// liveness probe), answer every stream it was still placing with 0x01 at
// once when it does (fail closed), refuse new ones at once, and serve
// again after SIGCONT. Before that, a burst of parallel streams (a busy,
// not frozen, tor) must not be taken for a hang.
func TestTorFrozen(t *testing.T) {
	t.Parallel()
	n := needTornet(t)
	ct := startClientTor(t, "frozen")
	obs := ct.observer(t)
	s := startSocksd(t, attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt}))
	torWaitController(t, obs, s)
	get := func(user string, timeout time.Duration) (byte, error) {
		res, err := torSOCKS5Try(s.Addr, user, "pw", torCmdConnect, "127.0.0.1", n.HTTPPort, []byte("GET / HTTP/1.0\r\nHost: x\r\n\r\n"), timeout)
		if res.Conn != nil {
			res.Conn.Close()
		}
		return res.Code, err
	}
	if code, err := get("warmup", 60*time.Second); err != nil || code != 0 {
		t.Fatalf("before: reply %#x, %v", code, err)
	}

	// Busy: 40 streams of 20 identities at once. Tor stays responsive.
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, err := get(fmt.Sprintf("busy%d", i%20), 60*time.Second); err != nil || code != 0 {
				t.Errorf("busy stream %d: reply %#x, %v", i, code, err)
			}
		}()
	}
	wg.Wait()
	if v := metricSum(scrape(t, s.Metrics), "socksd_tor_control_hung_total"); v != 0 {
		t.Fatalf("a busy tor was declared hung (%v times)", v)
	}

	pid := ct.Proc.PID()
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			ct.Proc.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(resume) // before the tor's own cleanup stops it
	ct.Proc.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	t.Logf("SIGSTOP to client tor pid %d", pid)

	// A new identity's stream 1 s into the freeze: socksd accepts it and
	// waits for a tor that will not answer.
	time.Sleep(time.Second) // the scenario: a request arriving 1 s after the freeze, not a synchronisation
	type result struct {
		code byte
		err  error
		at   time.Duration
	}
	waiting := make(chan result, 1)
	go func() {
		code, err := get("during-freeze", 30*time.Second)
		waiting <- result{code, err, time.Since(stopped)}
	}()
	var r result
	select {
	case r = <-waiting:
	case <-time.After(20 * time.Second):
		t.Fatal("the stream waiting on a frozen tor got no reply within 20s")
	}
	t.Logf("stream opened 1s into the freeze answered %#x after %v from SIGSTOP (%v)", r.code, r.at.Round(time.Millisecond), r.err)
	if r.err != nil || r.code != 0x01 {
		t.Errorf("waiting stream: reply %#x, %v; want 0x01", r.code, r.err)
	}
	if r.at > 8*time.Second {
		t.Errorf("the frozen tor was noticed after %v, want well within 10s", r.at.Round(time.Millisecond))
	}
	if v := metricSum(scrape(t, s.Metrics), "socksd_tor_control_hung_total"); v < 1 {
		t.Errorf("control_hung_total = %v after the freeze, want >= 1", v)
	}
	// While tor is frozen every new stream is refused at once.
	t0 := time.Now()
	code, err := get("while-frozen", 30*time.Second)
	if d := time.Since(t0); err != nil || code != 0x01 || d > time.Second {
		t.Errorf("a stream while tor is frozen: reply %#x, %v after %v; want 0x01 at once", code, err, d)
	}

	resume()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, err := get("after", 30*time.Second)
		if err == nil && code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after SIGCONT: reply %#x, %v", code, err)
		}
		time.Sleep(200 * time.Millisecond) // poll interval of a bounded loop
	}
	t.Logf("served again %v after SIGCONT", time.Since(deadline.Add(-60*time.Second)).Round(time.Millisecond))
}
