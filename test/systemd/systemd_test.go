package systest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"socksd/internal/daemontest"
	"socksd/internal/testutil"
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
	target string   // host:port of tornet's HTTP server, by a name the exits resolve
	before []string // socksd-named paths in the box before anything was installed
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
	buildTools(t, shared, "0.0.0-systest")
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
	b.Sh(t, "cat /srv/systest/torrc.add >> /etc/tor/torrc")
	b.Must(t, "systemctl", "restart", "tor")
	if !testutil.Poll(20*time.Second, 200*time.Millisecond, func() bool { return b.Show("tor@default", "ActiveState") == "active" }) {
		t.Fatalf("tor@default not active:\n%s", b.Journal("tor@default"))
	}
}

// curl fetches url through socksd's SOCKS port inside the box, retrying
// until deadline (a fresh tor may still be building its first circuits).
func (e *env) curl(t *testing.T, socks, path string, d time.Duration) string {
	t.Helper()
	var out string
	var err error
	ok := testutil.Poll(d, 200*time.Millisecond, func() bool {
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

	e.before = socksdFiles(b)
	t.Run("install.sh and enable --now", func(t *testing.T) {
		out := b.Must(t, "sh", "/srv/systest/repo/deploy/install.sh", "--binary", "/srv/systest/socksd")
		if !strings.Contains(out, "does not include /etc/tor/torrc.d") {
			t.Errorf("install.sh did not point at the missing %%include:\n%s", out)
		}
		e.joinTor(t)
		t0 := time.Now()
		b.Must(t, "systemctl", "enable", "--now", "socksd")
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
		if !testutil.Poll(90*time.Second, 200*time.Millisecond, func() bool {
			health = b.Out("curl", "-sS", "http://127.0.0.1:9352/healthz")
			return strings.TrimSpace(health) == "ok"
		}) {
			t.Fatalf("/healthz: %q\n%s", health, b.Journal("socksd"))
		}
		// socksd sends STATUS= within a second of a change.
		if !testutil.Poll(5*time.Second, 200*time.Millisecond, func() bool { return b.Show("socksd", "StatusText") == "Tor bootstrapped 100%; serving" }) {
			t.Errorf("StatusText after bootstrap: %q", b.Show("socksd", "StatusText"))
		}
	})

	t.Run("curl through socksd", func(t *testing.T) {
		if body := e.curl(t, "127.0.0.1:9350", "/", 90*time.Second); body != tornet.HelloBody {
			t.Fatalf("body %q, want %q", body, tornet.HelloBody)
		}
	})

	t.Run("reload keeps a live tunnel", func(t *testing.T) {
		pid := b.Show("socksd", "MainPID")
		s := e.session(t, "127.0.0.1:9350")
		s.do("open a alice")
		b.Must(t, "systemctl", "reload", "socksd")
		if !testutil.Poll(10*time.Second, 200*time.Millisecond, func() bool { return strings.Contains(b.Journal("socksd"), `"msg":"reloaded"`) }) {
			t.Fatalf("no reloaded line:\n%s", b.Journal("socksd"))
		}
		s.do("get a") // the same TCP connection through socksd, after the reload
		if p := b.Show("socksd", "MainPID"); p != pid {
			t.Errorf("MainPID %s -> %s: reload restarted socksd", pid, p)
		}
	})

	t.Run("USR1 gives a new identity", func(t *testing.T) {
		s := e.session(t, "127.0.0.1:9350")
		s.do("open before bob")
		before := identities(t, b)
		marks := strings.Count(b.Journal("socksd"), "new identity: Tor NEWNYM sent")
		b.Must(t, "systemctl", "kill", "-s", "USR1", "socksd")
		if !testutil.Poll(10*time.Second, 200*time.Millisecond, func() bool {
			return strings.Count(b.Journal("socksd"), "new identity: Tor NEWNYM sent") > marks
		}) {
			t.Fatalf("no NEWNYM line after USR1:\n%s", b.Journal("socksd"))
		}
		s.do("open after bob") // same SOCKS username as before
		after := identities(t, b)
		var old, fresh []identity
		for _, id := range after {
			if _, ok := before[id.Key]; ok {
				old = append(old, id)
			} else {
				fresh = append(fresh, id)
			}
		}
		if len(old) != 1 || len(fresh) != 1 {
			t.Fatalf("identities before %v, after %v: want the old one and one new", before, after)
		}
		for _, c := range fresh[0].Circuits {
			for _, o := range old[0].Circuits {
				if c == o {
					t.Errorf("the new identity shares circuit %s with the old one", c)
				}
			}
		}
		if len(fresh[0].Circuits) == 0 {
			t.Errorf("the new identity has no circuit of socksd's: %+v", fresh[0])
		}
	})

	t.Run("tor restart: socksd recovers by itself", func(t *testing.T) {
		pid, restarts := b.Show("socksd", "MainPID"), b.Show("socksd", "NRestarts")
		b.Must(t, "systemctl", "restart", "tor")
		if !testutil.Poll(20*time.Second, 200*time.Millisecond, func() bool {
			return strings.Contains(b.Journal("socksd"), "lost Tor's control connection")
		}) {
			t.Errorf("socksd did not notice tor's restart:\n%s", b.Journal("socksd"))
		}
		if !testutil.Poll(90*time.Second, 200*time.Millisecond, func() bool { return strings.TrimSpace(b.Out("curl", "-sS", "http://127.0.0.1:9352/healthz")) == "ok" }) {
			t.Fatalf("/healthz not ok after tor restart:\n%s", b.Journal("socksd"))
		}
		if body := e.curl(t, "127.0.0.1:9350", "/", 90*time.Second); body != tornet.HelloBody {
			t.Fatalf("body %q", body)
		}
		if p, r := b.Show("socksd", "MainPID"), b.Show("socksd", "NRestarts"); p != pid || r != restarts {
			t.Errorf("socksd was restarted (PID %s -> %s, NRestarts %s -> %s)", pid, p, restarts, r)
		}
	})

	t.Run("watchdog restarts a socksd that stops answering", func(t *testing.T) {
		// The shipped WatchdogSec=30s would cost half a minute; a drop-in
		// shortens it (the unit's own value is checked offline).
		b.Sh(t, `mkdir -p /run/systemd/system/socksd.service.d
printf '[Service]\nWatchdogSec=4s\nTimeoutAbortSec=3s\n' >/run/systemd/system/socksd.service.d/watchdog.conf
systemctl daemon-reload
restart_socksd`)
		defer b.Sh(t, `rm -rf /run/systemd/system/socksd.service.d; systemctl daemon-reload; restart_socksd`)
		pid, restarts := b.Show("socksd", "MainPID"), b.Show("socksd", "NRestarts")
		t0 := time.Now()
		b.Must(t, "kill", "-STOP", pid)
		if !testutil.Poll(40*time.Second, 200*time.Millisecond, func() bool {
			p := b.Show("socksd", "MainPID")
			return b.Show("socksd", "NRestarts") != restarts && p != pid && p != "0" && b.Show("socksd", "ActiveState") == "active"
		}) {
			t.Fatalf("not restarted: NRestarts %s, MainPID %s, %s\n%s", b.Show("socksd", "NRestarts"), b.Show("socksd", "MainPID"),
				b.Show("socksd", "ActiveState"), daemontest.Tail(b.Journal("socksd"), 3000))
		}
		t.Logf("restarted %.1fs after SIGSTOP", time.Since(t0).Seconds())
		var j string
		if !testutil.Poll(10*time.Second, 200*time.Millisecond, func() bool {
			j = b.Out("journalctl", "--no-pager", "-u", "socksd")
			return strings.Contains(j, "Watchdog timeout")
		}) {
			t.Errorf("journal does not say the watchdog fired:\n%s", daemontest.Tail(j, 3000))
		}
	})

	t.Run("hardening holds inside the service", func(t *testing.T) {
		e.sandbox(t)
	})

	t.Run("systemd-analyze security online", func(t *testing.T) {
		out := b.Out("systemd-analyze", "security", "--no-pager", "socksd")
		m := exposureRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no exposure level:\n%s", out)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("systemd-analyze security socksd (online): %.1f", v)
		if v > 2.0 {
			t.Errorf("exposure %.1f > 2.0:\n%s", v, out)
		}
	})

	t.Run("socket activation", func(t *testing.T) {
		e.socketActivation(t)
	})

	t.Run("an upstream that is not Tor is explained at warning level", func(t *testing.T) {
		e.notTor(t)
	})

	t.Run("install.sh --uninstall and --purge leave nothing behind", func(t *testing.T) {
		e.uninstall(t)
	})

	t.Run("Debian package: install, policy-rc.d, upgrade, purge", func(t *testing.T) {
		e.debPackage(t)
	})
}

var exposureRE = regexp.MustCompile(`Overall exposure level for socksd\.service: ([0-9]+\.[0-9]+)`)

type identity struct {
	Key      string   `json:"key"`
	Streams  int      `json:"streams"`
	Circuits []string `json:"circuits"`
}

// identities reads socksd's /status inside the box.
func identities(t *testing.T, b *Box) map[string]identity {
	t.Helper()
	var st struct {
		Identities []identity `json:"identities"`
	}
	out := b.Must(t, "curl", "-sS", "http://127.0.0.1:9352/status")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, out)
	}
	m := map[string]identity{}
	for _, id := range st.Identities {
		m[id.Key] = id
	}
	return m
}
