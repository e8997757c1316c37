package systest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"socksd/test/tornet"
)

// repoRoot is the checkout under test (this package is test/systemd).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// copyTree copies the files install.sh reads (deploy/ and
// config.example.toml) into the shared directory: the box sees the host's
// root, but a checkout under /tmp would be hidden by the box's own /tmp.
func copyTree(t *testing.T, repo, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dst, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", `cp -a "$1"/deploy/. "$2"/deploy/ && cp "$1"/config.example.toml "$2"/`, "sh", repo, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("copy: %v\n%s", err, out)
	}
}

// setup boots the box with the private Tor network in its network
// namespace and Debian's tor@default joined to it.
type env struct {
	box    *Box
	net    *Tornet
	shared string
	target string // host:port of tornet's HTTP server, by a name the exits resolve
}

func setup(t *testing.T) *env {
	needBox(t)
	shared, err := os.MkdirTemp("", "socksd-systest-")
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("SOCKSD_SYSTEST_KEEP") == "" {
		t.Cleanup(func() { os.RemoveAll(shared) })
	}
	os.Chmod(shared, 0o755)
	t0 := time.Now()
	buildTools(t, shared, "0.0.0-systest1")
	copyTree(t, repoRoot(t), filepath.Join(shared, "repo"))
	t.Logf("built in %.1fs", time.Since(t0).Seconds())

	t0 = time.Now()
	box := Boot(t, shared)
	t.Logf("box booted in %.1fs (systemd PID %d)", time.Since(t0).Seconds(), box.PID)

	t0 = time.Now()
	n := startTornet(t, filepath.Join(shared, "tornet"), box.NetNS(), filepath.Join(shared, "tornet-data"))
	t.Logf("private Tor network up in %.1fs", time.Since(t0).Seconds())
	return &env{box: box, net: n, shared: shared, target: tornet.HostName + ":" + n.Env["HTTP_PORT"]}
}

// joinTor makes the box's tor@default a client of the private network and
// loads socksd's fragment (the %include line a user adds by hand).
func (e *env) joinTor(t *testing.T) {
	t.Helper()
	b := e.box
	torrc := "\n## systest: a client of the private Tor network\n" + e.net.ClientTorrc +
		"%include /etc/tor/torrc.d/*.conf\n"
	if err := os.WriteFile(filepath.Join(e.shared, "torrc.add"), []byte(torrc), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Sh("cat /srv/systest/torrc.add >> /etc/tor/torrc")
	b.Must("systemctl", "restart", "tor")
	if !waitFor(20*time.Second, func() bool { return b.Show("tor@default", "ActiveState") == "active" }) {
		t.Fatalf("tor@default not active:\n%s", b.Journal("tor@default"))
	}
}

// curl fetches url through socksd's SOCKS port inside the box, retrying
// until deadline (a fresh tor may still be building its first circuits).
func (e *env) curl(t *testing.T, socks, path string, d time.Duration) string {
	t.Helper()
	var out string
	var err error
	ok := waitFor(d, func() bool {
		out, err = e.box.Run("curl", "-sS", "--max-time", "30", "-x", "socks5h://"+socks, "http://"+e.target+path)
		return err == nil
	})
	if !ok {
		t.Fatalf("curl through %s: %v\n%s", socks, err, out)
	}
	return out
}

func TestSystemd(t *testing.T) {
	e := setup(t)
	b := e.box

	t.Run("tor started by its own unit", func(t *testing.T) {
		if st := b.Show("tor@default", "ActiveState"); st != "active" {
			t.Fatalf("tor@default after boot: %s\n%s", st, b.Journal("tor@default"))
		}
	})

	t.Run("install.sh and enable --now", func(t *testing.T) {
		out := b.Must("sh", "/srv/systest/repo/deploy/install.sh", "--binary", "/srv/systest/socksd")
		if !strings.Contains(out, "does not include /etc/tor/torrc.d") {
			t.Errorf("install.sh did not point at the missing %%include:\n%s", out)
		}
		e.joinTor(t)
		t0 := time.Now()
		b.Must("systemctl", "enable", "--now", "socksd")
		ready := time.Since(t0)
		t.Logf("systemctl enable --now socksd returned (READY=1) after %.2fs", ready.Seconds())
		if ready > 10*time.Second {
			t.Errorf("READY after %v, want a few seconds", ready)
		}
		if st := b.Show("socksd", "ActiveState"); st != "active" {
			t.Fatalf("socksd %s\n%s", st, b.Journal("socksd"))
		}
		status := b.Show("socksd", "StatusText")
		t.Logf("StatusText: %q", status)
		if !strings.Contains(status, "Tor bootstrap") {
			t.Errorf("StatusText %q does not show Tor's bootstrap", status)
		}
		var health string
		if !waitFor(90*time.Second, func() bool {
			health = b.Out("curl", "-sS", "http://127.0.0.1:9352/healthz")
			return strings.TrimSpace(health) == "ok"
		}) {
			t.Fatalf("/healthz: %q\n%s", health, b.Journal("socksd"))
		}
		if st := b.Show("socksd", "StatusText"); st != "Tor bootstrapped 100%; serving" {
			t.Errorf("StatusText after bootstrap: %q", st)
		}
	})

	t.Run("curl through socksd", func(t *testing.T) {
		if body := e.curl(t, "127.0.0.1:9350", "/", 90*time.Second); body != tornet.HelloBody {
			t.Fatalf("body %q, want %q", body, tornet.HelloBody)
		}
	})
}
