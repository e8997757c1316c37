package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"socksd/test/tornet"
)

// clientTor is a tor client of the package's network that one test owns:
// tests that make socksd the controller (__LeaveStreamsUnattached, which
// holds every stream of that tor for a controller) or kill tor must not do
// it to the network's shared client, which other tests use through
// FrontendConfig. It joins the network with Network.ClientTorrc() and has
// a plain SocksPort, an ExtendedErrors SocksPort and a cookie ControlPort.
type clientTor struct {
	n         *tornet.Network
	Name      string
	Dir       string // DataDirectory
	TorrcPath string
	LogPath   string
	SOCKS     string // plain SocksPort
	SOCKSExt  string // SocksPort with ExtendedErrors
	Control   string // ControlPort
	Cookie    string
	Proc      *tornet.Process
}

// startClientTor writes a torrc, starts tor and waits until it has
// bootstrapped and built a circuit. Cleanup stops it.
func startClientTor(t *testing.T, name string) *clientTor {
	t.Helper()
	c := newClientTor(t, name)
	c.start(t)
	return c
}

// newClientTor writes the torrc of a new client tor; nothing runs yet.
func newClientTor(t *testing.T, name string) *clientTor {
	t.Helper()
	n := needTornet(t)
	dir := filepath.Join(t.TempDir(), "tor-"+name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := &clientTor{n: n, Name: name, Dir: dir,
		TorrcPath: filepath.Join(dir, "torrc"), LogPath: filepath.Join(dir, "tor.log"),
		SOCKS: freeTCP(t), SOCKSExt: freeTCP(t), Control: freeTCP(t),
		Cookie: filepath.Join(dir, "control_auth_cookie")}
	torrc := fmt.Sprintf(`# socksd e2e private client (%s)
DataDirectory %s
RunAsDaemon 0
__OwningControllerProcess %d
Log notice file %s/notice.log
SafeLogging 0
LogTimeGranularity 1
AvoidDiskWrites 1
SocksPort %s
SocksPort %s ExtendedErrors
ControlPort %s
CookieAuthentication 1
%s`, name, dir, os.Getpid(), dir, c.SOCKS, c.SOCKSExt, c.Control, n.ClientTorrc())
	if err := os.WriteFile(c.TorrcPath, []byte(torrc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "defaults"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	return c
}

// spawnClientTor is startClientTor without the wait: tor is starting,
// its SocksPort may not listen yet and it has not bootstrapped.
func spawnClientTor(t *testing.T, name string) *clientTor {
	t.Helper()
	c := newClientTor(t, name)
	p, err := c.n.Spawn("tor-"+c.Name, c.LogPath, torClientBinary(), "-f", c.TorrcPath, "--defaults-torrc", filepath.Join(c.Dir, "defaults"))
	if err != nil {
		t.Fatal(err)
	}
	c.Proc = p
	return c
}

func torClientBinary() string {
	if p, err := exec.LookPath("tor"); err == nil {
		return p
	}
	return "/usr/sbin/tor"
}

// start (re)starts the tor process with the same torrc, data directory
// and ports, and waits for it to be usable.
func (c *clientTor) start(t *testing.T) {
	t.Helper()
	t0 := time.Now()
	p, err := c.n.Spawn("tor-"+c.Name, c.LogPath, torClientBinary(), "-f", c.TorrcPath, "--defaults-torrc", filepath.Join(c.Dir, "defaults"))
	if err != nil {
		t.Fatal(err)
	}
	c.Proc = p
	c.waitReady(t, 90*time.Second)
	t.Logf("client tor %s (pid %d) ready in %.1fs", c.Name, p.PID(), time.Since(t0).Seconds())
}

// waitReady polls the control port until tor reports Bootstrapped 100%
// and an established circuit (GETINFO status/circuit-established).
func (c *clientTor) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if c.Proc.Exited() {
			t.Fatalf("tor %s exited: %v\n%s", c.Name, c.Proc.Err(), torLogTail(c.LogPath))
		}
		if o, err := torTryObserver(c.Control, c.Cookie); err == nil {
			boot, e1 := o.info("status/bootstrap-phase")
			est, e2 := o.info("status/circuit-established")
			o.conn.Close()
			last = fmt.Sprintf("%s / circuit-established=%s (%v %v)", boot, est, e1, e2)
			if strings.Contains(boot, "PROGRESS=100") && est == "1" {
				return
			}
		} else {
			last = err.Error()
		}
		select {
		case <-c.Proc.Done():
		case <-time.After(100 * time.Millisecond): // poll interval of a bounded loop
		}
	}
	t.Fatalf("tor %s not ready after %v: %s\n%s", c.Name, timeout, last, torLogTail(c.LogPath))
}

// kill sends sig to tor and waits until it has exited.
func (c *clientTor) kill(t *testing.T, sig syscall.Signal) {
	t.Helper()
	c.Proc.Signal(sig)
	select {
	case <-c.Proc.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("tor %s did not exit after %v", c.Name, sig)
	}
}

func (c *clientTor) stop() {
	if c.Proc != nil {
		c.Proc.Stop(5 * time.Second)
	}
}

// observer opens the test's own control connection to this tor.
func (c *clientTor) observer(t *testing.T) *torObserver {
	t.Helper()
	return torDialObserver(t, c.Control, c.Cookie)
}

func torLogTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// torTryObserver is torDialObserver without a *testing.T (for polling loops);
// it does not subscribe to events.
func torTryObserver(addr, cookiePath string) (*torObserver, error) {
	cookie, err := os.ReadFile(cookiePath)
	if err != nil {
		return nil, err
	}
	o, err := torRawObserver(addr)
	if err != nil {
		return nil, err
	}
	if _, err := o.do("AUTHENTICATE " + fmt.Sprintf("%x", cookie)); err != nil {
		o.conn.Close()
		return nil, err
	}
	return o, nil
}

// info is getInfo returning an error instead of failing the test.
func (o *torObserver) info(key string) (string, error) {
	lines, err := o.do("GETINFO " + key)
	if err != nil {
		return "", err
	}
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return strings.TrimPrefix(v, "\n"), nil
		}
	}
	return "", fmt.Errorf("GETINFO %s: %q", key, lines)
}
