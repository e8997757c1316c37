package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"socksd/test/tornet"
)

// TestDNSLeakCanary: socksd runs with an /etc/resolv.conf (private mount
// namespace) that names a canary DNS server on loopback:53. Every socksd
// the DNS and ops tests start runs that way and fails its test if the
// canary got a query while it ran (Socksd.cleanup). This test proves
// the trap works — a glibc lookup in such a namespace does reach the
// canary, and socksd's namespace really has that resolv.conf — then
// drives every name-carrying path through socksd.
func TestDNSLeakCanary(t *testing.T) {
	n := needTornet(t)
	c := needCanary(t)

	// Positive control: the same namespace trick sends a libc lookup to
	// the canary.
	probe := fmt.Sprintf("canary-probe-%d.example.test", time.Now().UnixNano())
	argv := inResolvNS(c.ResolvConf, "getent", "ahosts", probe)
	runCmd(t, 30*time.Second, nil, argv[0], argv[1:]...) // fails (REFUSED); the query is what counts
	seen := false
	for _, q := range c.Queries() {
		if strings.HasPrefix(q, probe+". ") {
			seen = true
		}
	}
	if !seen {
		t.Fatalf("the canary never saw %s: the namespace trick does not work, so the leak checks would be vacuous (queries: %q)", probe, c.Queries())
	}

	ex := bridgeExtra(6)
	d := startDNSDaemon(t, BridgeConfig, "", ex)
	// socksd's own view of /etc/resolv.conf is the canary's.
	rc, err := os.ReadFile("/proc/" + strconv.Itoa(d.Proc.PID()) + "/root/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := strings.Cut(c.Addr, ":")
	if !strings.Contains(string(rc), "nameserver "+host+"\n") {
		t.Fatalf("socksd's /etc/resolv.conf does not name the canary %s:\n%s", host, rc)
	}
	before := len(c.Queries())

	hp := strconv.Itoa(n.HTTPPort)
	name := freshName("leak")
	// Names in every form socksd accepts: SOCKS5 hostname, SOCKS4a,
	// HTTP CONNECT, RESOLVE (F0), RESOLVE_PTR (F1), the DNS bridge in both
	// families and PTR, an onion name, a name that does not exist.
	steps := []struct {
		what string
		run  func()
	}{
		{"socks5-hostname", func() { curl(t, "--socks5-hostname", d.Listen, "http://"+name+":"+hp+"/via").wantOK(t) }},
		{"socks4a", func() { curl(t, "--socks4a", d.Listen, "http://"+freshName("leak4a")+":"+hp+"/via").wantOK(t) }},
		{"http-connect", func() {
			curl(t, "-p", "-x", "http://"+d.Listen, "http://"+freshName("leakconnect")+":"+hp+"/via").wantOK(t)
		}},
		{"onion", func() { curl(t, "--socks5-hostname", d.Listen, n.OnionURL("/via")).wantOK(t) }},
		// Fails at the exits; the outcome is TestOpsAttachNXName's business,
		// here only the name matters, so no long wait.
		{"nonexistent", func() { curl(t, "--max-time", "10", "--socks5-hostname", d.Listen, "http://"+tornet.NXName+"/") }},
		{"RESOLVE", func() {
			if r := runCmd(t, 60*time.Second, nil, "tor-resolve", "-5", freshName("leakresolve"), d.Listen); r.Code != 0 {
				t.Fatalf("tor-resolve:\n%s", r)
			}
		}},
		{"RESOLVE_PTR", func() {
			if r := runCmd(t, 60*time.Second, nil, "tor-resolve", "-x", tornet.RevAddr, d.Listen); r.Stdout != tornet.RevName+"\n" {
				t.Fatalf("tor-resolve -x:\n%s", r)
			}
		}},
		{"bridge", func() {
			va := digOne(t, d.DNS, freshName("leakdig"), "A")
			digOne(t, d.DNS, freshName("leakdig6"), "AAAA")
			digOne(t, d.DNS, "-x", va)
			digOne(t, d.DNS, n.OnionHost, "A")
			curl(t, "--socks4", d.Listen, "http://"+va+":"+hp+"/via").wantOK(t)
		}},
	}
	for _, st := range steps {
		t0 := time.Now()
		st.run()
		if took := time.Since(t0); took > 5*time.Second {
			t.Logf("slow step %s: %v", st.what, took.Round(time.Millisecond))
		}
	}

	if q := c.Queries()[before:]; len(q) != 0 {
		t.Fatalf("LEAK: the canary got %d queries: %q", len(q), q)
	}
	t.Logf("canary: 0 queries from socksd across %d kinds of name-carrying requests (the probe reached it: the trap works)", len(steps))
	// Socksd.cleanup checks the canary once more after socksd stopped.
}
