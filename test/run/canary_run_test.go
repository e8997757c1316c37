package run

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needCanary skips unless the canary host is up (it needs root).
func needCanary(t *testing.T) *canary {
	t.Helper()
	needTornet(t)
	if cn == nil {
		t.Skip("the canary host needs root (ip netns, veth): run the tests as root")
	}
	return cn
}

// TestCanaryControl: outside the jail the static program does reach the
// canary, by name through the canary's resolver and by address, and so
// does it under torsocks: LD_PRELOAD never sees a static binary's
// syscalls. This is why socksd run exists, and proves the canary would
// notice a leak.
func TestCanaryControl(t *testing.T) {
	c := needCanary(t)
	var plain, hooked result
	n, err := c.controlRun(func() {
		plain = command(t, fetcherBin, "-timeout", "10s", "-dns", c.Addr+":53", "http://canary.test/")
	})
	if err != nil {
		t.Fatal(err)
	}
	if plain.code != 0 || strings.TrimSpace(plain.stdout) != "OK "+canaryBody {
		t.Fatalf("fetcher outside socksd run did not reach the canary: %v", plain)
	}
	if n == 0 {
		t.Fatalf("the canary counted no packet from a run that reached it")
	}
	t.Logf("outside the jail: fetcher reached the canary by name (%d packets)", n)

	var echo result
	n, err = c.controlRun(func() { echo = command(t, fetcherBin, "-icmp", c.Addr) })
	if err != nil {
		t.Fatal(err)
	}
	if echo.code != 0 || n == 0 {
		t.Fatalf("ICMP echo outside socksd run: %v, %d packets at the canary", echo, n)
	}

	if _, err := exec.LookPath("torsocks"); err != nil {
		t.Skip("torsocks not installed")
	}
	conf := filepath.Join(t.TempDir(), "torsocks.conf")
	host, port, _ := strings.Cut(sd.addr, ":")
	if err := os.WriteFile(conf, []byte("TorAddress "+host+"\nTorPort "+port+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err = c.controlRun(func() {
		hooked = command(t, "env", "TORSOCKS_CONF_FILE="+conf, "torsocks", fetcherBin, "-timeout", "10s", "http://"+c.Addr+"/")
	})
	if err != nil {
		t.Fatal(err)
	}
	if hooked.code != 0 || strings.TrimSpace(hooked.stdout) != "OK "+canaryBody {
		t.Fatalf("torsocks with the static fetcher: %v (expected it to leak to the canary)", hooked)
	}
	t.Logf("under torsocks: the static fetcher connected to the canary directly (%d packets): LD_PRELOAD does not see it", n)
}

// TestCanaryUnreached: inside the jail neither the canary's resolver nor
// its listener get a packet, whether the program asks the resolver
// itself (UDP: refused at once with EPERM), dials the address (socksd
// refuses the internal address), is curl, or pings (ICMP: EPERM). Each attempt fails at once
// rather than hanging. The package's TestMain checks the canary's
// counter over every test.
func TestCanaryUnreached(t *testing.T) {
	c := needCanary(t)
	before, err := c.rxPackets()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		argv []string
		want string // in the output
	}{
		{"own-resolver", []string{fetcherBin, "-timeout", "20s", "-dns", c.Addr + ":53", "http://canary.test/"}, "operation not permitted"},
		{"address", []string{fetcherBin, "-timeout", "20s", "http://" + c.Addr + "/"}, "ERR"},
		{"curl-address", []string{"curl", "-sS", "--max-time", "20", "http://" + c.Addr + "/"}, "curl:"},
		{"icmp", []string{fetcherBin, "-icmp", c.Addr}, "operation not permitted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := jail(t, nil, tc.argv...)
			if r.code == 0 || !strings.Contains(r.stdout+r.stderr, tc.want) {
				t.Fatalf("want a failure mentioning %q: %v", tc.want, r)
			}
			if r.took > 10*time.Second {
				t.Errorf("took %v: a refusal must be immediate, not a timeout", r.took)
			}
		})
	}
	after, err := c.rxPackets()
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("the canary received %d packet(s) from inside socksd run", after-before)
	}
}
