package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"socksd/internal/daemontest"
	"socksd/internal/leakcheck"
	"socksd/internal/sockstest"
	"socksd/internal/testutil"
	"socksd/netjail"
)

// TestMain lets a test re-execute this binary as socksd itself
// (SOCKSD_TEST_MAIN=1), so signals and exit codes are the real ones.
func TestMain(m *testing.M) {
	if os.Getenv("SOCKSD_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestFlags(t *testing.T) {
	leakcheck.Check(t) // -check-config builds (and must close) a DNS bridge
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"version", []string{"-version"}, exitOK, "socksd "},
		{"check example", []string{"-check-config", "-config", "../../config.example.toml"}, exitOK, "configuration OK"},
		{"unknown key", []string{"-check-config", "-config", write("a.toml", "[socks]\nlisten = [\"127.0.0.1:1\"]\nlisten_addr = 1\n")}, exitConfig, `unknown key "socks.listen_addr" (line 3)`},
		{"bad value", []string{"-check-config", "-config", write("b.toml", "[socks]\nmax_connections = -1\n")}, exitConfig, "socks.max_connections"},
		{"defaults", []string{"-check-config"}, exitOK, "configuration OK"},
		{"none without socks", []string{"-check-config", "-config", write("c.toml", "[tor]\ncontrol = \"none\"\n")}, exitConfig, "tor.socks: must be set"},
		{"dns without control", []string{"-check-config", "-config", write("d.toml", "[tor]\ncontrol = \"none\"\nsocks = \"127.0.0.1:1\"\n[dns]\nlisten = [\"127.0.0.1:0\"]\n")}, exitConfig, "DNS bridge needs a Tor control port"},
		{"dns bridge", []string{"-check-config", "-config", write("f.toml", "[dns]\nlisten = [\"127.0.0.1:5353\"]\n")}, exitOK, "configuration OK"},
		{"bad dns network", []string{"-check-config", "-config", write("g.toml", "[dns]\nlisten = [\"127.0.0.1:5353\"]\nvirtual_network_ipv4 = \"10.0.0.0/31\"\n")}, exitConfig, "virtual_network_ipv4"},
		{"bad launch", []string{"-check-config", "-config", write("e.toml", "[tor]\nlaunch = \"sometimes\"\n")}, exitConfig, "tor.launch"},
		{"missing file", []string{"-config", filepath.Join(dir, "nope.toml")}, exitConfig, "no such file"},
		{"bad flag", []string{"-frobnicate"}, exitUsage, "flag provided but not defined"},
		{"extra arg", []string{"serve"}, exitUsage, "unexpected argument"},
		{"run without a program", []string{"run"}, netjail.ExitSetup, "usage: socksd run"},
		{"run with a relative socket", []string{"run", "-socket", "s.sock", "--", "true"}, netjail.ExitSetup, "want an absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := run(tc.args, &out, &out); code != tc.code || !strings.Contains(out.String(), tc.out) {
				t.Fatalf("exit %d (want %d), output %q (want %q)", code, tc.code, out.String(), tc.out)
			}
		})
	}
}

// Bounds on waiting for a child socksd: for a line in its log, for its exit.
const (
	logWait  = 10 * time.Second
	exitWait = 20 * time.Second
)

// startDaemon runs this test binary as socksd with -config cfgPath.
func startDaemon(t *testing.T, cfgPath string, extra ...string) *daemontest.Process {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-config", cfgPath}, extra...)...)
	return startDaemonCmd(t, cmd)
}

// startDaemonCmd starts cmd, which must end up exec'ing this test binary
// as socksd, with its log in the test's directory; cleanup kills it if the
// test has not waited for its exit.
func startDaemonCmd(t *testing.T, cmd *exec.Cmd) *daemontest.Process {
	t.Helper()
	cmd.Env = append(os.Environ(), append(cmd.Env, "SOCKSD_TEST_MAIN=1", "JOURNAL_STREAM=")...)
	d, err := daemontest.Start(cmd, filepath.Join(t.TempDir(), "socksd.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Kill)
	return d
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeConfig(t *testing.T, path, upstream, metrics string, listen ...string) {
	t.Helper()
	q := make([]string, len(listen))
	for i, l := range listen {
		q[i] = fmt.Sprintf("%q", l)
	}
	s := fmt.Sprintf(`state_dir = "/tmp"
[socks]
listen = [%s]
reject_internal = false
[tor]
control = "none"
socks = %q
[log]
level = "debug"
format = "json"
safe_logging = true
[metrics]
listen = %q
`, strings.Join(q, ", "), upstream, metrics)
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dialThrough opens a SOCKS5 stream through socksd (retrying while socksd
// starts, bounded) and checks it echoes.
func dialThrough(t *testing.T, socksAddr, dest, user string) net.Conn {
	t.Helper()
	var lastErr error
	for i := 0; i < 400; i++ {
		d, _ := proxy.SOCKS5("tcp", socksAddr, &proxy.Auth{User: user, Password: "pw"}, proxy.Direct)
		c, err := d.Dial("tcp", dest)
		if err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 4)
			if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
				t.Fatalf("echo %q, %v", b, err)
			}
			return c
		}
		lastErr = err
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("cannot reach socksd at %s: %v", socksAddr, lastErr)
	return nil
}

func TestDaemonReloadAndShutdown(t *testing.T) {
	fake := &sockstest.Server{}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	echo := testutil.EchoServer(t, "", "").String()
	echoHost := "localhost:" + echo[strings.LastIndexByte(echo, ':')+1:]
	dir := t.TempDir()
	cfg := filepath.Join(dir, "socksd.toml")
	a, b, m := freePort(t), freePort(t), freePort(t)
	writeConfig(t, cfg, fake.Addr(), m, a)
	d := startDaemon(t, cfg, "-shutdown-grace", "30s")

	live := dialThrough(t, a, echoHost, "alice-user")
	defer live.Close()

	// Reload: add listener b.
	writeConfig(t, cfg, fake.Addr(), m, a, b)
	d.Signal(syscall.SIGHUP)
	d.WaitLog(t, 0, `"reloaded"`, logWait)
	dialThrough(t, b, echoHost, "bob").Close()

	// A broken file is refused; both listeners keep serving.
	os.WriteFile(cfg, []byte("[socks]\nlisten = 5\n"), 0o600)
	d.Signal(syscall.SIGHUP)
	d.WaitLog(t, 0, "configuration refused", logWait)
	dialThrough(t, a, echoHost, "carol").Close()
	dialThrough(t, b, echoHost, "carol").Close()

	// The live stream survived both reloads.
	live.Write([]byte("pong"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(live, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("live stream after reload: %q, %v", buf, err)
	}

	// Metrics moved, and no destination or username is in them.
	resp, err := http.Get("http://" + m + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`socksd_connections_total{outcome="ok",protocol="socks5"} 4`)) {
		t.Errorf("metrics: connections not counted:\n%s", grep(body, "socksd_"))
	}
	for _, secret := range []string{"localhost", "alice", "bob", "carol", echo} {
		if bytes.Contains(body, []byte(secret)) {
			t.Errorf("metrics contain %q", secret)
		}
	}
	// safe_logging: even at debug level no destination or username.
	for _, secret := range []string{"localhost", "alice", "carol"} {
		if strings.Contains(d.Log(), secret) {
			t.Errorf("log contains %q:\n%s", secret, d.Log())
		}
	}

	// SIGTERM: stop accepting, drain; a second signal forces exit.
	d.Signal(syscall.SIGTERM)
	d.WaitLog(t, 0, "shutting down", logWait)
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", a)
		if err != nil {
			break
		}
		c.Close()
		if i > 500 {
			t.Fatal("listener still accepting after SIGTERM")
		}
		time.Sleep(5 * time.Millisecond)
	}
	live.Write([]byte("more")) // still draining: the stream works
	if _, err := io.ReadFull(live, buf); err != nil || string(buf) != "more" {
		t.Fatalf("live stream while draining: %q, %v", buf, err)
	}
	d.Signal(syscall.SIGINT)
	if code := d.Wait(t, exitWait); code != exitForced {
		t.Fatalf("exit code %d, want %d (forced)\n%s", code, exitForced, d.Log())
	}
}

func TestDaemonDrainsAndExitsZero(t *testing.T) {
	fake := &sockstest.Server{}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	echo := testutil.EchoServer(t, "", "").String()
	cfg := filepath.Join(t.TempDir(), "socksd.toml")
	a := freePort(t)
	writeConfig(t, cfg, fake.Addr(), "", a)
	d := startDaemon(t, cfg)
	live := dialThrough(t, a, echo, "u")
	d.Signal(syscall.SIGTERM)
	d.WaitLog(t, 0, "shutting down", logWait)
	live.Close() // the last stream ends: socksd exits before the grace period
	if code := d.Wait(t, exitWait); code != exitOK {
		t.Fatalf("exit code %d\n%s", code, d.Log())
	}
	if !strings.Contains(d.Log(), `"stopped"`) {
		t.Fatalf("no clean stop in log:\n%s", d.Log())
	}
}

func TestDaemonFailsClosedWithoutUpstream(t *testing.T) {
	dead := freePort(t) // nothing listens there
	cfg := filepath.Join(t.TempDir(), "socksd.toml")
	a := freePort(t)
	writeConfig(t, cfg, dead, "", a)
	d := startDaemon(t, cfg)
	d.WaitLog(t, 0, `"ready"`, logWait)
	c, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte{5, 1, 0, 5, 1, 0, 3, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0, 80})
	got, _ := io.ReadAll(c)
	if !bytes.Equal(got, []byte{5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("got %x, want general failure", got)
	}
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(t, exitWait); code != exitOK {
		t.Fatalf("exit %d", code)
	}
}

func TestDaemonListenFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := filepath.Join(t.TempDir(), "socksd.toml")
	writeConfig(t, cfg, "127.0.0.1:9", "", ln.Addr().String())
	d := startDaemon(t, cfg)
	if code := d.Wait(t, exitWait); code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s", code, exitFailure, d.Log())
	}
}

func grep(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
