package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"socksd/internal/daemontest"
	"socksd/test/tornet"
)

// reliabilityConfig is FrontendConfig with the limits a test sets, at info
// level (a flood at debug level measures the logger).
func reliabilityConfig(maxConns int, handshake string, extra string) string {
	return fmt.Sprintf(`
state_dir = "{{.StateDir}}"

[socks]
listen = ["{{.Listen}}"]
reject_internal = false
max_connections = %d
handshake_timeout = %q

[tor]
control = "none"
socks = "{{.TorSOCKS}}"
launch = "never"

[log]
level = "info"
format = "json"

[metrics]
listen = "{{.Metrics}}"
%s`, maxConns, handshake, extra)
}

// fetchThrough makes one GET / through socksd as user and checks the
// answer is the test server's 200.
func fetchThrough(n *tornet.Network, proxy, user string, timeout time.Duration) error {
	get := []byte("GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
	res, err := torSOCKS5Try(proxy, user, "pw", torCmdConnect, "127.0.0.1", n.HTTPPort, get, timeout)
	if err != nil {
		return err
	}
	if res.Code != 0 {
		return fmt.Errorf("reply %#x", res.Code)
	}
	defer res.Conn.Close()
	res.Conn.SetDeadline(time.Now().Add(timeout))
	body, err := io.ReadAll(res.Conn)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(body, []byte("HTTP/1.")) || !bytes.Contains(body[:min(len(body), 20)], []byte(" 200 ")) {
		return fmt.Errorf("answer %q", body[:min(len(body), 60)])
	}
	return nil
}

// fetchUntilOK retries fetchThrough (Tor may still be building circuits).
func fetchUntilOK(t *testing.T, n *tornet.Network, s *Socksd, user string, timeout time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		err := fetchThrough(n, s.Addr, user, 30*time.Second)
		if err == nil {
			return time.Since(t0)
		}
		if time.Since(t0) > timeout {
			t.Fatalf("no successful GET through socksd within %v: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond) // retry interval of a bounded loop
	}
}

// closedWithin reads from c until it is closed or d passes; it reports
// whether the peer closed it and when.
func closedWithin(c net.Conn, d time.Duration) (bool, time.Time) {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, time.Now()
	}
	return true, time.Now()
}

// TestReliabilityIdleFlood: more idle connections than max_connections.
// The excess is closed at once, the rest wait for their handshake
// deadline; afterwards socksd serves and is back to its baseline.
func TestReliabilityIdleFlood(t *testing.T) {
	n := needTornet(t)
	maxConns := pick(500, 4096)
	total := pick(700, 5000)
	s := startSocksd(t, reliabilityConfig(maxConns, "60s", ""))
	fetchUntilOK(t, n, s, "flood-warmup", 60*time.Second)
	base := mustSample(t, s)

	stop := make(chan struct{})
	peak := peakRSS(s, 200*time.Millisecond, stop)
	conns := make([]net.Conn, 0, total)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	t0 := time.Now()
	for range total {
		c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	dialed := time.Since(t0)
	var closed atomic.Int64
	var last atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, at := closedWithin(c, 3*time.Second); ok {
				closed.Add(1)
				for v := at.UnixNano(); ; {
					old := last.Load()
					if v <= old || last.CompareAndSwap(old, v) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	excessClosed := time.Duration(last.Load() - t0.UnixNano())
	held := mustSample(t, s)
	close(stop)
	if got, want := int(closed.Load()), total-maxConns; got != want {
		t.Errorf("%d of %d idle connections closed by socksd, want the excess over max_connections (%d)", got, total, want)
	}
	if held.FDs > base.FDs+maxConns+fdSlack {
		t.Errorf("%d fds with %d idle connections held, want at most %d", held.FDs, maxConns, base.FDs+maxConns+fdSlack)
	}
	for _, c := range conns {
		c.Close()
	}
	after, rec := waitBaseline(t, s, base, 30*time.Second)
	fetchUntilOK(t, n, s, "flood-after", 30*time.Second)
	pk := <-peak
	if pk > rssBound() {
		t.Errorf("peak RSS %.1f MiB, bound %.1f MiB", float64(pk)/(1<<20), float64(rssBound())/(1<<20))
	}
	report(t, "%d idle connections, max_connections %d: dialled in %.2fs, the %d over the limit closed within %.2fs of the first dial; held: %v; peak RSS %.1f MiB; baseline %v -> %v after %.2fs",
		total, maxConns, dialed.Seconds(), closed.Load(), excessClosed.Seconds(), held, float64(pk)/(1<<20), base, after, rec.Seconds())
}

// TestReliabilitySlowloris: clients that trickle a never-ending SOCKS5
// greeting are closed at handshake_timeout, however much they trickle.
func TestReliabilitySlowloris(t *testing.T) {
	n := needTornet(t)
	timeout := pick(3*time.Second, 30*time.Second)
	clients := pick(100, 500)
	s := startSocksd(t, reliabilityConfig(4096, timeout.String(), ""))
	fetchUntilOK(t, n, s, "slowloris-warmup", 60*time.Second)
	base := mustSample(t, s)

	var mu sync.Mutex
	var lifetimes []time.Duration
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer c.Close()
			t0 := time.Now()
			// 255 methods announced, one sent every 500 ms: the
			// greeting never completes before the deadline.
			if _, err := c.Write([]byte{5, 255}); err != nil {
				t.Errorf("write: %v", err)
				return
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				closedWithin(c, timeout+10*time.Second)
			}()
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for i := 0; i < 250; i++ {
				select {
				case <-done:
					mu.Lock()
					lifetimes = append(lifetimes, time.Since(t0))
					mu.Unlock()
					return
				case <-tick.C:
					c.Write([]byte{0})
				}
			}
		}()
	}
	wg.Wait()
	if len(lifetimes) != clients {
		t.Fatalf("%d of %d slowloris clients closed by socksd", len(lifetimes), clients)
	}
	lo, hi := lifetimes[0], lifetimes[0]
	for _, d := range lifetimes {
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < timeout-100*time.Millisecond || hi > timeout+2*time.Second {
		t.Errorf("slowloris clients closed after %.2fs-%.2fs, want handshake_timeout %v", lo.Seconds(), hi.Seconds(), timeout)
	}
	after, rec := waitBaseline(t, s, base, 30*time.Second)
	fetchUntilOK(t, n, s, "slowloris-after", 30*time.Second)
	report(t, "%d slowloris clients (one greeting byte every 0.5 s), handshake_timeout %v: closed after %.2fs-%.2fs; baseline %v -> %v after %.2fs",
		clients, timeout, lo.Seconds(), hi.Seconds(), base, after, rec.Seconds())
}

// garbage returns a hostile first flight that can never be a valid
// request (so nothing is ever dialled through Tor): random bytes behind
// each protocol's opening, broken at a point its parser must refuse.
func garbage(r *rand.Rand) []byte {
	junk := make([]byte, r.IntN(600))
	for i := range junk {
		junk[i] = byte(r.UintN(256))
	}
	switch r.IntN(7) {
	case 0: // neither SOCKS nor HTTP
		return append([]byte{byte(0x06 + r.UintN(0x3a))}, junk...)
	case 1: // SOCKS5 greeting offering no method
		return append([]byte{5, 0}, junk...)
	case 2: // SOCKS5 greeting, then a request of another version
		return append([]byte{5, 1, 0, byte(6 + r.UintN(250)), 1, 0}, junk...)
	case 3: // SOCKS5 request with an unknown command
		return append([]byte{5, 1, 0, 5, byte(0x04 + r.UintN(0xec)), 0, 1, 127, 0, 0, 1, 0, 80}, junk...)
	case 4: // SOCKS4 with an unknown command
		return append([]byte{4, byte(3 + r.UintN(200)), 0, 80, 127, 0, 0, 1}, junk...)
	case 5: // an HTTP method, then binary
		return append([]byte("CONNECT \x00"), junk...)
	default: // a broken HTTP head, terminated
		return append(append([]byte("GET / HTTP/1.1\r\nHost: "), bytes.ReplaceAll(junk, []byte("\r\n"), nil)...), "\r\n\r\n"...)
	}
}

// TestReliabilityGarbage: hostile first flights get an error reply or a
// clean close, each within the handshake deadline; none panics socksd,
// and it serves and returns to its baseline afterwards.
func TestReliabilityGarbage(t *testing.T) {
	n := needTornet(t)
	total := pick(1000, 10000)
	s := startSocksd(t, reliabilityConfig(4096, "3s", ""))
	fetchUntilOK(t, n, s, "garbage-warmup", 60*time.Second)
	base := mustSample(t, s)
	stop := make(chan struct{})
	peak := peakRSS(s, 200*time.Millisecond, stop)

	var hung, dialErr atomic.Int64
	var worst atomic.Int64
	work := make(chan int)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 0x5eed))
			for range work {
				c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
				if err != nil {
					dialErr.Add(1)
					continue
				}
				c1 := time.Now()
				c.Write(garbage(r))
				ok, at := closedWithin(c, 8*time.Second)
				c.Close()
				if !ok {
					hung.Add(1)
				}
				d := int64(at.Sub(c1))
				for old := worst.Load(); d > old && !worst.CompareAndSwap(old, d); old = worst.Load() {
				}
			}
		}()
	}
	for i := range total {
		work <- i
	}
	close(work)
	wg.Wait()
	took := time.Since(t0)
	close(stop)
	if hung.Load() != 0 || dialErr.Load() != 0 {
		t.Errorf("%d garbage connections left open after 8 s, %d dials failed", hung.Load(), dialErr.Load())
	}
	if log := s.Log(); strings.Contains(log, "panic") || s.Proc.Exited() {
		t.Fatalf("socksd panicked or exited:\n%s", daemontest.Tail(log, 3000))
	}
	after, rec := waitBaseline(t, s, base, 30*time.Second)
	fetchUntilOK(t, n, s, "garbage-after", 30*time.Second)
	pk := <-peak
	report(t, "%d garbage connections (7 kinds, 32 at a time) in %.1fs: 0 panics, %d left open, slowest close %.2fs; peak RSS %.1f MiB; baseline %v -> %v after %.2fs",
		total, took.Seconds(), hung.Load(), time.Duration(worst.Load()).Seconds(), float64(pk)/(1<<20), base, after, rec.Seconds())
}

// TestReliabilityFDLimit: under a small RLIMIT_NOFILE socksd fits its
// limits below it (and says so at start), and a flood of SOCKS and
// DNS-over-TCP connections neither exhausts descriptors nor spins a core;
// DNS and SOCKS keep answering and everything comes back afterwards.
func TestReliabilityFDLimit(t *testing.T) {
	n := needTornet(t)
	if _, err := os.Stat("/usr/bin/prlimit"); err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	const nofile = 256
	ct := startClientTor(t, "fdlimit")
	tmpl := attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt}) + `
[dns]
listen = ["{{.DNS}}"]
`
	tmpl = strings.Replace(tmpl, `level = "debug"`, `level = "info"`, 1)
	s := launchSocksdUnder(t, tmpl, func(s *Socksd) { s.stop(t) }, "prlimit", fmt.Sprintf("--nofile=%d", nofile), "--")
	fetchUntilOK(t, n, s, "fd-warmup", 90*time.Second)
	log := s.Log()
	if !strings.Contains(log, "connection limits lowered to fit the open-file limit") || !strings.Contains(log, fmt.Sprintf(`"nofile": %d`, nofile)) {
		t.Fatalf("no start-up line about the open-file limit:\n%s", daemontest.Tail(log, 4000))
	}
	base := mustSample(t, s)

	socksFlood := pick(400, 1000)
	dnsFlood := pick(100, 400)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range socksFlood {
		c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for range dnsFlood {
		c, err := net.DialTimeout("tcp", s.DNS, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	share := cpuShare(t, s.Proc.PID(), 2*time.Second)
	held, err := sampleProc(s)
	if err != nil {
		t.Fatalf("metrics listener failed under the flood: %v", err)
	}
	if held.FDs > nofile {
		t.Errorf("%d fds open under a limit of %d", held.FDs, nofile)
	}
	if share > 0.25 {
		t.Errorf("socksd used %.0f%% of a core while flooded and idle, want < 25%% (no accept spin)", share*100)
	}
	answer := digOne(t, s.DNS, "flood-check.example") // fails the test unless NOERROR
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	after, rec := waitBaseline(t, s, base, 30*time.Second)
	fetchUntilOK(t, n, s, "fd-after", 60*time.Second)
	report(t, "RLIMIT_NOFILE %d: %d idle SOCKS + %d idle DNS/TCP connections: %d fds open, CPU %.1f%% of a core over 2 s, DNS over UDP answered (%s); baseline %v -> %v after %.2fs",
		nofile, socksFlood, dnsFlood, held.FDs, share*100, answer, base, after, rec.Seconds())
}
