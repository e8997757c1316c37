package e2e

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proofs about tor's and socksd's lives: managed tor, a tor that
// dies and comes back, a socksd that is kill -9ed.

// torManagedConfig: no control port, no SocksPort: socksd launches tor
// (launch = "auto"; nothing listens on /run/tor/control or 127.0.0.1:9051
// here) and joins it to the private network through torrc_extra.
const torManagedConfig = `
state_dir = "{{.StateDir}}"

[socks]
listen = ["{{.Listen}}"]
reject_internal = false

[tor]
control = ""
socks = ""
launch = "auto"
torrc_extra = "{{.ClientTorrc}}"

[log]
level = "debug"
format = "console"
safe_logging = false

[metrics]
listen = "{{.Metrics}}"
`

// torCurlUntilOK retries curl until it succeeds or timeout passes (tor
// bootstrapping) and returns the successful result.
func torCurlUntilOK(t *testing.T, timeout time.Duration, args ...string) cmdResult {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := runCmd(t, 30*time.Second, nil, "curl", append([]string{"-sS", "--max-time", "20"}, args...)...)
		if r.Code == 0 {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no success within %v; last:\n%s", timeout, r)
		}
		time.Sleep(200 * time.Millisecond) // retry interval of a bounded loop
	}
}

// torManagedPID waits until socksd has exactly one live tor child and
// returns its PID.
func torManagedPID(t *testing.T, s *Socksd, not int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if kids := torChildren(s.Proc.PID(), "tor"); len(kids) == 1 && kids[0] != not {
			return kids[0]
		}
		if s.Proc.Exited() {
			t.Fatalf("socksd exited: %v\n%s", s.Proc.Err(), s.Log())
		}
		time.Sleep(20 * time.Millisecond) // poll interval of a bounded loop
	}
	t.Fatalf("socksd (pid %d) has no tor child (other than %d) after %v: %v\n%s", s.Proc.PID(), not, timeout, torChildren(s.Proc.PID(), "tor"), s.Log())
	return 0
}

// TestTorManaged: socksd launches tor itself, serves through it, restarts
// it when it is killed, and stops it when socksd stops.
func TestTorManaged(t *testing.T) {
	t.Parallel()
	n := needTornet(t)
	t0 := time.Now()
	s := startSocksd(t, torManagedConfig)
	pid := torManagedPID(t, s, 0, 30*time.Second)
	r := torCurlUntilOK(t, 90*time.Second, "--socks5-hostname", s.Addr, n.NameURL("/via"))
	wantExit(t, n, r.Stdout)
	t.Logf("managed tor pid %d served through exit %s %.1fs after socksd start", pid, r.Stdout, time.Since(t0).Seconds())

	// The managed tor is socksd's controller-owned tor on a Unix control
	// socket in its DataDirectory: check the stream went over a circuit
	// socksd built there too.
	dataDir := filepath.Join(s.StateDir, "tor")
	obs := torDialObserver(t, "unix:"+filepath.Join(dataDir, "control"), filepath.Join(dataDir, "control_auth_cookie"))
	mark := obs.mark()
	r = curl(t, "--socks5-hostname", s.Addr, n.NameURL("/via"))
	r.wantOK(t)
	c := obs.wantSocksdCircuit(t, obs.streamsSince(t, mark, 1)[0])
	torWantCircuitExit(t, n, c, r.Stdout)
	if got := obs.getInfo(t, "process/pid"); got != fmt.Sprint(pid) {
		t.Fatalf("the control socket in %s belongs to tor %s, want socksd's child %d", dataDir, got, pid)
	}
	// Its only SocksPort is a Unix socket (no TCP hop): the stream above
	// reached the exit through it, on socksd's circuit, so the attacher
	// told socksd's streams apart without a source address.
	if got, want := obs.getInfo(t, "net/listeners/socks"), `"unix:`+filepath.Join(dataDir, "socks")+`"`; got != want {
		t.Fatalf("managed tor's SocksPorts %s, want %s", got, want)
	}

	// kill -9 the managed tor: socksd starts a new one and serves again.
	t1 := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pid2 := torManagedPID(t, s, pid, 30*time.Second)
	r = torCurlUntilOK(t, 90*time.Second, "--socks5-hostname", s.Addr, n.NameURL("/via"))
	wantExit(t, n, r.Stdout)
	t.Logf("after kill -9 of tor %d: new tor %d, serving again after %.1fs", pid, pid2, time.Since(t1).Seconds())

	// Stopping socksd stops its tor.
	s.Proc.Stop(10 * time.Second)
	if code := s.Proc.ExitCode(); code != 0 {
		t.Fatalf("socksd exited %d after SIGTERM\n%s", code, s.Log())
	}
	if torPIDAlive(pid2) {
		t.Fatalf("managed tor %d still running after socksd exited", pid2)
	}
}

// TestTorRestart: the tor socksd controls dies; while it is down every
// CONNECT gets 0x01 at once (never a direct dial); when tor is back the
// same socksd process serves again.
func TestTorRestart(t *testing.T) {
	t.Parallel()
	n := needTornet(t)
	ct := startClientTor(t, "restart")
	obs := ct.observer(t)
	s := startSocksd(t, attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt}))
	torWaitController(t, obs, s)
	r := curl(t, "--socks5-hostname", s.Addr, n.NameURL("/via"))
	r.wantOK(t)
	wantExit(t, n, r.Stdout)

	ct.kill(t, syscall.SIGKILL)
	// Every attempt while tor is down: 0x01, fast. The early data names a
	// unique Host: had socksd dialled the destination itself, the test
	// server would log it.
	host := fmt.Sprintf("down-%d.example.test", time.Now().UnixNano())
	get := []byte("GET /via HTTP/1.0\r\nHost: " + host + "\r\n\r\n")
	var worst time.Duration
	for i := range 10 {
		target := "127.0.0.1"
		if i%2 == 1 {
			target = host
		}
		res, err := torSOCKS5Try(s.Addr, "", "", torCmdConnect, target, n.HTTPPort, get, 10*time.Second)
		if err != nil {
			t.Fatalf("attempt %d while tor is down: %v", i, err)
		}
		if res.Code != 0x01 {
			t.Fatalf("attempt %d while tor is down: reply %#x, want 0x01", i, res.Code)
		}
		worst = max(worst, res.RTT)
	}
	for _, h := range n.HTTPLog() {
		if h.Host == host {
			t.Fatalf("the test server got a request while tor was down: %+v", h)
		}
	}
	if worst >= time.Second {
		t.Errorf("slowest 0x01 while tor was down: %v, want < 1s", worst)
	}
	t.Logf("tor down: 10 CONNECTs answered 0x01, slowest %v", worst)

	pid := s.Proc.PID()
	ct.start(t) // same torrc, ports and DataDirectory
	t1 := time.Now()
	r = torCurlUntilOK(t, 60*time.Second, "--socks5-hostname", s.Addr, n.NameURL("/via"))
	wantExit(t, n, r.Stdout)
	if s.Proc.Exited() || s.Proc.PID() != pid {
		t.Fatalf("socksd was restarted")
	}
	t.Logf("tor back: socksd (same pid %d) served again %.2fs after tor was ready", pid, time.Since(t1).Seconds())
	// And it is socksd's controller again: the stream is on its circuit.
	obs = ct.observer(t)
	torWaitController(t, obs, s)
	mark := obs.mark()
	r = curl(t, "--socks5-hostname", s.Addr, n.NameURL("/via"))
	r.wantOK(t)
	c := obs.wantSocksdCircuit(t, obs.streamsSince(t, mark, 1)[0])
	torWantCircuitExit(t, n, c, r.Stdout)
}

// TestTorKill9 : a kill -9 of socksd leaves tor holding new streams for a
// controller (__LeaveStreamsUnattached stays 1); a new socksd attaches or
// hands back what waits, and nothing stays stuck.
func TestTorKill9(t *testing.T) {
	t.Parallel()
	n := needTornet(t)
	ct := startClientTor(t, "kill9")
	obs := ct.observer(t)
	a := torStartSocksdKillable(t, attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt}))
	torWaitController(t, obs, a)
	r := curl(t, "--socks5-hostname", a.Addr, n.NameURL("/via"))
	r.wantOK(t)

	a.Proc.Signal(syscall.SIGKILL)
	<-a.Proc.Done()
	if v := torLeaveUnattached(t, obs); v != "1" {
		t.Fatalf("after kill -9 __LeaveStreamsUnattached=%s, want 1 (nobody reset it)", v)
	}

	// Another application of this tor opens streams now: a CONNECT and a
	// RESOLVE straight to the SocksPort. With no controller they wait.
	mark := obs.mark()
	type result struct {
		res torSOCKS5Reply
		err error
	}
	get := []byte("GET /via HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
	conn := make(chan result, 1)
	go func() {
		res, err := torSOCKS5Try(ct.SOCKS, "", "", torCmdConnect, "127.0.0.1", n.HTTPPort, get, 90*time.Second)
		conn <- result{res, err}
	}()
	resolve := make(chan result, 1)
	name := freshName("kill9")
	go func() {
		res, err := torSOCKS5Try(ct.SOCKS, "", "", torCmdResolve, name, 0, nil, 90*time.Second)
		resolve <- result{res, err}
	}()
	if !obs.waitFor(30*time.Second, func() bool {
		var newConn, newRes bool
		for _, e := range obs.streams[mark:] {
			if e.Status == "CONTROLLER_WAIT" || e.Status == "NEW" {
				newConn = newConn || strings.HasPrefix(e.Target, "127.0.0.1:")
			}
			newRes = newRes || (e.Status == "NEWRESOLVE" && strings.EqualFold(strings.TrimSuffix(e.Target, ":0"), name))
		}
		return newConn && newRes
	}) {
		t.Fatalf("the direct streams never showed up:\n%s", obs.dump(mark))
	}
	waiting := obs.getInfo(t, "stream-status")
	if len(strings.Fields(waiting)) < 8 {
		t.Fatalf("stream-status with no controller: %q, want the two streams waiting", waiting)
	}
	for _, l := range strings.Split(strings.TrimSpace(waiting), "\n") {
		if f := strings.Fields(l); len(f) < 3 || f[2] != "0" {
			t.Fatalf("stream-status line %q: want a stream on no circuit", l)
		}
	}
	select {
	case r := <-conn:
		t.Fatalf("the CONNECT was answered with no controller: %+v", r)
	default:
	}
	t.Logf("with socksd dead, tor holds:\n%s", waiting)

	// A new socksd picks them up at start-up.
	b := startSocksd(t, attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt}))
	t1 := time.Now()
	select {
	case r := <-conn:
		if r.err != nil || r.res.Code != 0 {
			t.Fatalf("waiting CONNECT after the new socksd started: %+v", r)
		}
		body, _ := io.ReadAll(r.res.Conn)
		r.res.Conn.Close()
		if _, via, _ := strings.Cut(string(body), "\r\n\r\n"); via == "" {
			t.Fatalf("waiting CONNECT got no page: %q", body)
		} else {
			wantExit(t, n, via)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the waiting CONNECT got no answer 60s after a new socksd started\n%s", b.Log())
	}
	select {
	case r := <-resolve:
		if r.err != nil || r.res.Code != 0 || string(r.res.Addr) != "\x7f\x00\x00\x01" {
			t.Fatalf("waiting RESOLVE after the new socksd started: %+v", r)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the waiting RESOLVE got no answer")
	}
	t.Logf("both waiting streams answered %.2fs after the new socksd started", time.Since(t1).Seconds())
	// Nothing stuck: no stream left waiting for a controller.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ss := obs.getInfo(t, "stream-status")
		stuck := false
		for _, l := range strings.Split(ss, "\n") {
			if f := strings.Fields(l); len(f) > 1 && (f[1] == "NEW" || f[1] == "NEWRESOLVE" || f[1] == "CONTROLLER_WAIT") {
				stuck = true
			}
		}
		if !stuck {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("streams still waiting 10s after the new socksd took over:\n%s", ss)
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a bounded loop
	}
}

// TestTorManagedFirstRequest: a client that connects while the managed
// tor is still bootstrapping waits for it, as with tor's own SocksPort
// (which holds the stream until a circuit exists, up to SocksTimeout),
// instead of failing.
func TestTorManagedFirstRequest(t *testing.T) {
	t.Parallel()
	n := needTornet(t)
	t.Run("tor-itself", func(t *testing.T) {
		// The reference: a tor just started, asked as soon as its
		// SocksPort accepts.
		ct := spawnClientTor(t, "bootstrap-ref")
		t0 := time.Now()
		if err := waitAccepting(ct.Proc, ct.SOCKS, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		r := curl(t, "--socks5-hostname", ct.SOCKS, n.NameURL("/via"))
		if r.Code != 0 {
			t.Fatalf("tor's own first request during bootstrap failed:\n%s", r)
		}
		wantExit(t, n, r.Stdout)
		t.Logf("tor's SocksPort served its first request %.1fs after start", time.Since(t0).Seconds())
	})
	t0 := time.Now()
	s := startSocksd(t, torManagedConfig)
	r := curl(t, "--socks5-hostname", s.Addr, n.NameURL("/via"))
	if r.Code != 0 {
		t.Fatalf("first request %.1fs after socksd started (tor bootstrapping) failed:\n%s", time.Since(t0).Seconds(), r)
	}
	wantExit(t, n, r.Stdout)
	t.Logf("first request served %.1fs after socksd started", time.Since(t0).Seconds())
}
