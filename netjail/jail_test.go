package netjail

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"socksd/internal/sockstest"
	"socksd/internal/testutil"
	"socksd/socksproto"
)

func TestMain(m *testing.M) {
	if IsHelper() {
		// Run re-executed this test binary inside the namespaces.
		os.Exit(Helper())
	}
	os.Exit(m.Run())
}

// jailedEnv tells the test binary, run as the jailed program, what to do.
const jailedEnv = "SOCKSD_NETJAIL_JAILED"

// TestJailedProgram is the program inside the jail in TestRun, not a
// test of its own: it dials the name in $SOCKSD_NETJAIL_JAILED with Go's
// resolver, expects an echo, and checks that UDP out is refused at once.
func TestJailedProgram(t *testing.T) {
	target := os.Getenv(jailedEnv)
	if target == "" {
		t.Skip("run inside the jail by TestRun")
	}
	c, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q %v", buf, err)
	}
	u, err := net.Dial("udp", "192.0.2.1:53")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Write([]byte("x")); err == nil || !strings.Contains(err.Error(), "operation not permitted") {
		t.Fatalf("UDP out of the jail: %v, want EPERM", err)
	}
}

// TestRun: a program inside the jail reaches a name through the fake
// upstream on a Unix socket, which sees the name (not an address) with
// <torS0X>0 credentials: the same password for runs of one -identity, a
// different one for every other run. Needs root or unprivileged user
// namespaces.
func TestRun(t *testing.T) {
	echo := testutil.EchoServer(t, "", "")
	up := &sockstest.Server{Hosts: map[string]netip.Addr{"svc.test": netip.MustParseAddr("127.0.0.1")}}
	sock := filepath.Join(t.TempDir(), "s.sock")
	if err := up.StartUnix(sock); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	target := fmt.Sprintf("svc.test:%d", echo.Port())
	t.Setenv(jailedEnv, target)
	run := func(identity string) {
		t.Helper()
		code, err := Run(Options{Socket: sock, Identity: identity, Argv: []string{os.Args[0], "-test.run=^TestJailedProgram$", "-test.v"}})
		if err != nil {
			if strings.Contains(err.Error(), "does not allow unprivileged user namespaces") {
				t.Skip(err)
			}
			t.Fatal(err)
		}
		if code != 0 {
			t.Fatalf("the jailed program exited %d", code)
		}
	}
	run("")
	run("")
	run("work")
	run("work")
	reqs := up.Requests()
	if len(reqs) != 4 {
		t.Fatalf("upstream saw %d requests, want 4", len(reqs))
	}
	for _, r := range reqs {
		if r.Host != "svc.test" || r.Port != echo.Port() || string(r.Username) != socksproto.TorIsolationUsername {
			t.Fatalf("upstream request %+v: want svc.test:%d as a name with %s", r, echo.Port(), socksproto.TorIsolationUsername)
		}
	}
	pw := func(i int) string { return string(reqs[i].Password) }
	if pw(0) == pw(1) || pw(0) == pw(2) || pw(1) == pw(2) {
		t.Errorf("runs without -identity share credentials: %q %q %q", pw(0), pw(1), pw(2))
	}
	if pw(2) != pw(3) {
		t.Errorf("two runs of -identity work: %q and %q, want one", pw(2), pw(3))
	}
}
