package systest

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"socksd/internal/daemontest"
	"socksd/internal/testutil"
	"socksd/test/tornet"
)

// buildDeb builds the package with the project's own script (make deb)
// from a prebuilt binary in shared, and returns its path inside the box.
func (e *env) buildDeb(t *testing.T, binary, version string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(repoRoot(t), "deploy/deb/build.sh"),
		"--binary", filepath.Join(e.shared, binary), "--version", version, "--out", e.shared, "--compress", "none").CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
	deb := strings.TrimSpace(string(out))
	return "/srv/systest/" + filepath.Base(deb)
}

// debPackage: install under a policy-rc.d that forbids starting services
// (enabled, not started), start, upgrade over an edited config (kept,
// service restarted on the new binary), purge (nothing left).
func (e *env) debPackage(t *testing.T) {
	b := e.box
	t0 := time.Now()
	step := func(what string) { t.Logf("%5.1fs %s", time.Since(t0).Seconds(), what) }
	deb1 := e.buildDeb(t, "socksd", "0.0.1~systest1")
	deb2 := e.buildDeb(t, "socksd2", "0.0.1~systest2")
	step("built two packages")

	b.Sh(t, `printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d`)
	out := b.Must(t, "dpkg", "-i", deb1)
	t.Logf("dpkg -i under policy-rc.d 101:\n%s", out)
	if st := b.Show("socksd", "UnitFileState"); st != "enabled" {
		t.Errorf("after install: UnitFileState %q, want enabled", st)
	}
	if st := b.Show("socksd", "ActiveState"); st != "inactive" {
		t.Errorf("policy-rc.d forbade starting, yet socksd is %s", st)
	}
	if p := b.Show("socksd", "FragmentPath"); p != "/lib/systemd/system/socksd.service" {
		t.Errorf("unit from %q, want the packaged /lib/systemd/system/socksd.service", p)
	}
	b.Must(t, "test", "-s", "/usr/share/man/man8/socksd.8.gz")
	b.Must(t, "rm", "/usr/sbin/policy-rc.d")

	// Configuring again without the policy: postinst reloads tor (the
	// fragment's SocksPort) and starts socksd.
	step("installed under policy-rc.d")
	b.Must(t, "dpkg-reconfigure", "socksd")
	step("dpkg-reconfigure")
	if st := b.Show("socksd", "ActiveState"); st != "active" {
		t.Fatalf("socksd %s after postinst without policy-rc.d", st)
	}
	e.healthy(t)
	step("healthy")
	if body := e.curl(t, "127.0.0.1:9350", "/", 90*time.Second); body != tornet.HelloBody {
		t.Fatalf("body %q", body)
	}
	step("curl")

	// The admin edits the conffile; the upgrade keeps it without asking
	// (the shipped version did not change) and restarts on the new binary.
	b.Sh(t, `sed -i 's/^level = "info"/level = "debug"/' /etc/socksd/socksd.toml
echo '# edited by the systemd test' >>/etc/socksd/socksd.toml`)
	pid := b.Show("socksd", "MainPID")
	cmd := b.Command(t.Context(), "dpkg", "-i", deb2) // no stdin: a conffile prompt would fail
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	step("upgraded")
	conf := b.Must(t, "cat", "/etc/socksd/socksd.toml")
	if !strings.Contains(conf, "# edited by the systemd test") || !strings.Contains(conf, `level = "debug"`) {
		t.Errorf("upgrade lost the edited config:\n%s", conf)
	}
	if v := b.Must(t, "/usr/bin/socksd", "-version"); !strings.Contains(v, "systest2") {
		t.Errorf("after upgrade: %s", v)
	}
	if !testutil.Poll(30*time.Second, 200*time.Millisecond, func() bool {
		p := b.Show("socksd", "MainPID")
		return p != pid && p != "0" && b.Show("socksd", "ActiveState") == "active"
	}) {
		t.Fatalf("not restarted on upgrade: MainPID %s -> %s, %s", pid, b.Show("socksd", "MainPID"), b.Show("socksd", "ActiveState"))
	}
	if !testutil.Poll(10*time.Second, 200*time.Millisecond, func() bool { return strings.Contains(b.Journal("socksd"), "socksd 0.0.0-systest2") }) {
		t.Errorf("the running socksd is not the upgraded binary")
	}
	e.healthy(t)

	step("healthy after upgrade")
	b.Must(t, "dpkg", "--purge", "socksd")
	step("purged")
	if st := strings.TrimSpace(b.Out("dpkg-query", "-W", "-f=${Status}", "socksd")); strings.Contains(st, "installed") && !strings.Contains(st, "not-installed") {
		t.Errorf("dpkg status after purge: %q", st)
	}
	if p := strings.TrimSpace(b.Out("pgrep", "-x", "socksd")); p != "" {
		t.Errorf("socksd still running after purge: %s", p)
	}
	testutil.Poll(10*time.Second, 200*time.Millisecond, func() bool { return !slices.Contains(socksdFiles(b), "/run/tor/socksd.socks") })
	if after := socksdFiles(b); !slices.Equal(after, e.before) {
		t.Errorf("after purge: %v\nbefore install: %v", after, e.before)
	}
}

// healthy waits for /healthz to answer ok (Tor connected, bootstrapped).
func (e *env) healthy(t *testing.T) {
	t.Helper()
	var h string
	if !testutil.Poll(90*time.Second, 200*time.Millisecond, func() bool {
		h = e.box.Out("curl", "-sS", "http://127.0.0.1:9352/healthz")
		return strings.TrimSpace(h) == "ok"
	}) {
		t.Fatalf("/healthz: %q\n%s", h, daemontest.Tail(e.box.Journal("socksd"), 3000))
	}
}
