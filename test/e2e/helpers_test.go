package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"socksd/internal/daemontest"
	"socksd/test/tornet"
)

// FrontendConfig chains every stream to the client tor's ExtendedErrors
// SocksPort without the control port (socksd's plain chaining mode).
// reject_internal is off: the test HTTP server is on 127.0.0.1.
const FrontendConfig = `
state_dir = "{{.StateDir}}"

[socks]
listen = ["{{.Listen}}"]
reject_internal = false

[tor]
control = "none"
socks = "{{.TorSOCKS}}"
launch = "never"

[log]
level = "debug"
format = "console"
safe_logging = false

[metrics]
listen = "{{.Metrics}}"
`

// SocksdVars are the fields a socksd config template can use.
type SocksdVars struct {
	Listen        string            // "127.0.0.1:P", a free port: the SOCKS/HTTP listener
	Metrics       string            // "127.0.0.1:P", a free port
	DNS           string            // "127.0.0.1:P", free for both UDP and TCP
	StateDir      string            // an empty per-test directory
	TorSOCKS      string            // client tor SocksPort with ExtendedErrors (the own tor's, for the DNS tests)
	TorSOCKSPlain string            // client tor plain SocksPort
	TorControl    string            // client tor ControlPort "127.0.0.1:P" (the own tor's, for the DNS tests)
	Cookie        string            // its control_auth_cookie
	ClientTorrc   string            // torrc lines for a managed tor joining the network (TOML-escaped)
	HTTPPort      int               // the network's HTTP server port
	Extra         map[string]string // test-specific values: {{index .Extra "k"}}
}

// Socksd is a socksd process of a test: its rendered config, its log, and
// the process, which may be stopped and started again (same config, same
// log). Every e2e test's daemon is one of these.
type Socksd struct {
	SocksdVars
	Addr       string // = Listen
	Dir        string
	ConfigPath string
	LogPath    string
	Proc       *tornet.Process

	wrapper    []string   // argv before socksd's (prlimit, the canary's namespace): it must exec socksd
	canary     *canaryDNS // nil: no local-DNS leak check
	canarySeen int        // canary queries before this daemon first started
	runs       int
}

// startSocksd renders tmpl (text/template over SocksdVars), starts socksd
// with it and waits until the listener accepts. Cleanup stops it and
// checks that it exited cleanly (exit 0, no race report).
func startSocksd(t *testing.T, tmpl string) *Socksd {
	t.Helper()
	return launchSocksd(t, tmpl, func(s *Socksd) { s.cleanup(t) })
}

// launchSocksd renders tmpl, starts socksd, registers cleanup(s) and waits
// until the listener accepts; startSocksd and torStartSocksdKillable differ
// only in their cleanup.
func launchSocksd(t *testing.T, tmpl string, cleanup func(*Socksd)) *Socksd {
	t.Helper()
	return launchSocksdUnder(t, tmpl, cleanup)
}

// launchSocksdUnder is launchSocksd with socksd run under a wrapper that
// execs it (prlimit --nofile=N --), so the process is still socksd.
func launchSocksdUnder(t *testing.T, tmpl string, cleanup func(*Socksd), wrapper ...string) *Socksd {
	t.Helper()
	n := needTornet(t)
	s := newSocksd(t, SocksdVars{
		Listen:        freeTCP(t),
		Metrics:       freeTCP(t),
		DNS:           freeTCPUDP(t),
		TorSOCKS:      n.SOCKSAddrExt(),
		TorSOCKSPlain: n.SOCKSAddr(),
		TorControl:    n.ControlAddr(),
		Cookie:        n.CookiePath,
		ClientTorrc:   strings.ReplaceAll(strings.ReplaceAll(n.ClientTorrc(), `\`, `\\`), "\n", `\n`),
		HTTPPort:      n.HTTPPort,
	}, tmpl)
	s.wrapper = wrapper
	t.Cleanup(func() { cleanup(s) })
	s.start(t)
	return s
}

// newSocksd makes the daemon's directory, state directory and config
// (tmpl over v); nothing is started.
func newSocksd(t *testing.T, v SocksdVars, tmpl string) *Socksd {
	t.Helper()
	dir := t.TempDir()
	v.StateDir = filepath.Join(dir, "state")
	if err := os.MkdirAll(v.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &Socksd{SocksdVars: v, Addr: v.Listen, Dir: dir,
		ConfigPath: filepath.Join(dir, "socksd.toml"), LogPath: filepath.Join(dir, "socksd.log")}
	s.writeConfig(t, tmpl)
	return s
}

// writeConfig renders tmpl over the daemon's vars into its config file
// (a restart or SIGHUP then reads it).
func (s *Socksd) writeConfig(t *testing.T, tmpl string) {
	t.Helper()
	var cfg bytes.Buffer
	if err := template.Must(template.New("socksd.toml").Option("missingkey=error").Parse(tmpl)).Execute(&cfg, s.SocksdVars); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.ConfigPath, cfg.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs socksd (again) and waits until its listener accepts.
func (s *Socksd) start(t *testing.T) {
	t.Helper()
	s.runs++
	argv := append(append([]string(nil), s.wrapper...), socksdBin, "-config", s.ConfigPath, "-shutdown-grace", "2s")
	p, err := tn.Spawn("socksd", s.LogPath, argv...)
	if err != nil {
		t.Fatal(err)
	}
	s.Proc = p
	if err := waitAccepting(p, s.Addr, 30*time.Second); err != nil {
		t.Fatalf("socksd did not come up: %v\n%s", err, daemontest.Tail(s.Log(), 4000))
	}
}

// stop sends SIGTERM and checks the exit: 0 (a clean drain).
func (s *Socksd) stop(t *testing.T) {
	t.Helper()
	if s.Proc == nil || s.Proc.Exited() && s.Proc.ExitCode() == 0 {
		return
	}
	s.Proc.Stop(10 * time.Second)
	if code := s.Proc.ExitCode(); code != 0 {
		t.Errorf("socksd (run %d) exited with %d (%v), want 0 after SIGTERM\n%s", s.runs, code, s.Proc.Err(), daemontest.Tail(s.Log(), 4000))
	}
}

func (s *Socksd) restart(t *testing.T) {
	t.Helper()
	s.stop(t)
	s.start(t)
}

// cleanup stops socksd and checks what every test checks: a clean exit,
// no data race report, no query at the canary resolver (when the daemon
// runs in its namespace); on failure it keeps the log and config.
func (s *Socksd) cleanup(t *testing.T) {
	s.stop(t)
	if strings.Contains(s.Log(), "WARNING: DATA RACE") {
		t.Errorf("socksd log has a data race report")
	}
	if s.canary != nil {
		if q := s.canary.Queries()[s.canarySeen:]; len(q) > 0 {
			t.Errorf("LEAK: the canary resolver (socksd's /etc/resolv.conf) got %d queries while socksd ran: %q", len(q), q)
		}
	}
	if t.Failed() {
		d := artifactDir(t, "")
		copyFile(s.LogPath, filepath.Join(d, "socksd.log"))
		copyFile(s.ConfigPath, filepath.Join(d, "socksd.toml"))
		t.Logf("socksd log and config kept in %s", d)
	}
}

// Log returns socksd's log so far (all runs).
func (s *Socksd) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// waitLog waits for substr in socksd's log after byte offset from; the
// test fails if socksd exits first.
func (s *Socksd) waitLog(t *testing.T, from int, substr string, timeout time.Duration) {
	t.Helper()
	s.Proc.WaitLog(t, from, substr, timeout)
}

// waitAccepting polls addr until a TCP connect succeeds, the process
// exits or the timeout passes.
func waitAccepting(p *tornet.Process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-p.Done():
			return fmt.Errorf("socksd exited: %v", p.Err())
		case <-tick.C:
		}
	}
}

// Ports for socksd come from 10000-19999: below Linux's ephemeral range
// (32768-60999), so no outgoing connection can take one between the check
// here and socksd's bind (that happened with ":0" ports on a busy box), and
// below tornet's blocks (20000-29999).
const (
	testPortMin = 10000
	testPortMax = 19999
)

// freeTCP returns "127.0.0.1:P" for a port that is free right now.
func freeTCP(t *testing.T) string {
	t.Helper()
	return pickPort(t, false)
}

// freeTCPUDP returns "127.0.0.1:P" free for both TCP and UDP.
func freeTCPUDP(t *testing.T) string {
	t.Helper()
	return pickPort(t, true)
}

func pickPort(t *testing.T, udp bool) string {
	t.Helper()
	a, err := reservePort(udp)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// handedOut holds every port reservePort returned in this process: a port
// is free only until its user binds it, so two picks made before either
// binds (a socksd's SOCKS and metrics listeners, parallel tests) must never
// get the same one (seen: both listeners on one port, socksd exit 1).
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// reservePort returns "127.0.0.1:P", P in testPortMin-testPortMax, free for
// TCP (and UDP) a moment ago and never returned before in this process.
func reservePort(udp bool) (string, error) {
	for range 200 {
		p := testPortMin + rand.IntN(testPortMax-testPortMin+1)
		handedOut.Lock()
		taken := handedOut.ports[p]
		handedOut.Unlock()
		if taken {
			continue
		}
		a := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		l, err := net.Listen("tcp4", a)
		if err != nil {
			continue
		}
		l.Close()
		if udp {
			pc, err := net.ListenPacket("udp4", a)
			if err != nil {
				continue
			}
			pc.Close()
		}
		handedOut.Lock()
		if handedOut.ports[p] {
			handedOut.Unlock()
			continue
		}
		if handedOut.ports == nil {
			handedOut.ports = make(map[int]bool)
		}
		handedOut.ports[p] = true
		handedOut.Unlock()
		return a, nil
	}
	return "", fmt.Errorf("no free port in %d-%d", testPortMin, testPortMax)
}

// cmdResult is a finished client command.
type cmdResult struct {
	Cmd            string
	Stdout, Stderr string
	Code           int // exit status; -1 if killed (timeout)
}

func (r cmdResult) String() string {
	return fmt.Sprintf("%s\nexit %d\nstdout: %q\nstderr: %q", r.Cmd, r.Code, r.Stdout, r.Stderr)
}

// wantOK fails the test unless the command exited 0.
func (r cmdResult) wantOK(t *testing.T) {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("command failed:\n%s", r)
	}
}

// runCmd runs name with args (extra env "K=V" entries added), bounded by
// timeout, and returns what it printed and its exit status.
func runCmd(t *testing.T, timeout time.Duration, env []string, name string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cmdResult{Cmd: name + " " + strings.Join(args, " "), Stdout: stdout.String(), Stderr: stderr.String()}
	if cmd.ProcessState != nil {
		r.Code = cmd.ProcessState.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", r.Cmd, err)
	}
	return r
}

// curl runs curl -sS with a 60 s cap and args.
func curl(t *testing.T, args ...string) cmdResult {
	t.Helper()
	return runCmd(t, 90*time.Second, nil, "curl", append([]string{"-sS", "--max-time", "60"}, args...)...)
}

// artifactDir returns test/artifacts/<TestName>[/sub], created; files
// there outlive the run (the directory is gitignored).
func artifactDir(t *testing.T, sub string) string {
	t.Helper()
	root := os.Getenv("SOCKSD_ARTIFACTS")
	if root == "" {
		root = filepath.Join("..", "artifacts") // go test runs in test/e2e
	}
	d := filepath.Join(root, safeName(t.Name()), sub)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(d)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string { return unsafeChars.ReplaceAllString(s, "_") }

func copyFile(from, to string) {
	if b, err := os.ReadFile(from); err == nil {
		os.WriteFile(to, b, 0o644)
	}
}

// port returns the port of "host:port" as a string.
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// badOnion returns the network's onion address with its checksum broken
// (rend-spec-v3 §6: the version byte and checksum are the last 3 bytes).
func badOnion(n *tornet.Network) string {
	b := []byte(n.OnionHost)
	if b[52] == 'a' {
		b[52] = 'b'
	} else {
		b[52] = 'a'
	}
	return string(b)
}

// freshName returns a name under example.test nobody has asked for yet
// (the zone's wildcard maps it to 127.0.0.1), so its resolution is not
// answered from a tor DNS cache and shows up in Network.DNSLog.
func freshName(prefix string) string {
	return fmt.Sprintf("%s-%d.%s", prefix, time.Now().UnixNano(), tornet.ZoneName)
}
