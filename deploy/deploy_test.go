package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"socksd/config"
)

var units = []string{"socksd.service", "socksd.socket", "socksd-dns.socket"}

// maxExposure is the highest `systemd-analyze security` exposure score the
// units may have (0 is locked down, 10 unconfined): socksd needs little
// beyond its sockets and its state directory, so it is held to a low one.
const maxExposure = 2.0

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, b, mode)
}

func writeFile(t *testing.T, dst string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// unitRoot builds a file system root for systemd-analyze --root: the
// system's targets and slices (verify needs sysinit.target and friends),
// stand-ins for the executables the units name, and the given units.
func unitRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	var sysdir string
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "sysinit.target")); err == nil {
			sysdir = d
			break
		}
	}
	if sysdir == "" {
		t.Skip("no systemd unit directory with sysinit.target")
	}
	for _, pat := range []string{"*.target", "*.slice"} {
		m, _ := filepath.Glob(filepath.Join(sysdir, pat))
		for _, f := range m {
			if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
				copyFile(t, f, filepath.Join(root, "usr/lib/systemd/system", filepath.Base(f)), 0o644)
			}
		}
	}
	stub := []byte("#!/bin/sh\nexit 0\n")
	writeFile(t, filepath.Join(root, "usr/local/bin/socksd"), stub, 0o755)
	writeFile(t, filepath.Join(root, "bin/kill"), stub, 0o755)
	for dst, src := range files {
		copyFile(t, src, filepath.Join(root, "etc/systemd/system", dst), 0o644)
	}
	return root
}

func unitFiles() map[string]string {
	m := map[string]string{}
	for _, u := range units {
		m[u] = u
	}
	return m
}

func verify(t *testing.T, root string, names ...string) (string, error) {
	t.Helper()
	args := []string{"verify", "--root=" + root, "--man=no"}
	for _, n := range names {
		args = append(args, "/etc/systemd/system/"+n)
	}
	out, err := exec.Command(needTool(t, "systemd-analyze"), args...).CombinedOutput()
	return string(out), err
}

// TestUnitsVerify: `systemd-analyze verify` accepts the units (and the
// client-app drop-in) without a single warning. The binary path is satisfied by a stand-in in a private
// root, so the test does not depend on an installed socksd.
func TestUnitsVerify(t *testing.T) {
	needTool(t, "systemd-analyze")
	files := unitFiles()
	files["socksd.service.d/client-app.conf"] = "client-app.conf"
	root := unitRoot(t, files)
	out, err := verify(t, root, units...)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// Control: the same check notices a broken unit, so a pass means
	// something.
	bad, err := os.ReadFile("socksd.service")
	if err != nil {
		t.Fatal(err)
	}
	bad = bytes.Replace(bad, []byte("ProtectHome=yes"), []byte("ProtectHome=yes\nProtectHomez=yes"), 1)
	badFile := filepath.Join(t.TempDir(), "socksd.service")
	writeFile(t, badFile, bad, 0o644)
	root = unitRoot(t, map[string]string{"socksd.service": badFile})
	if out, err := verify(t, root, "socksd.service"); err == nil && strings.TrimSpace(out) == "" {
		t.Fatal("verify accepted a unit with an unknown key")
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for socksd\.service: ([0-9]+\.[0-9]+)`)

func exposure(t *testing.T, root string) float64 {
	t.Helper()
	out, err := exec.Command(needTool(t, "systemd-analyze"), "security", "--offline=yes",
		"--root="+root, "--no-pager", "socksd.service").CombinedOutput()
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		if strings.Contains(string(out), "--offline") {
			t.Skipf("systemd-analyze has no --offline (systemd < 250): %s", out)
		}
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSecurityExposure: the unit scores at most 2.0 in `systemd-analyze
// security --offline=yes`, alone and with the per-application drop-in.
func TestSecurityExposure(t *testing.T) {
	needTool(t, "systemd-analyze")
	base := exposure(t, unitRoot(t, unitFiles()))
	t.Logf("socksd.service exposure: %.1f", base)
	if base > maxExposure {
		t.Errorf("socksd.service exposure %.1f > %.1f", base, maxExposure)
	}
	files := unitFiles()
	files["socksd.service.d/client-app.conf"] = "client-app.conf"
	withApp := exposure(t, unitRoot(t, files))
	t.Logf("socksd.service + client-app.conf exposure: %.1f", withApp)
	if withApp > maxExposure {
		t.Errorf("with client-app.conf: exposure %.1f > %.1f", withApp, maxExposure)
	}
	if withApp <= base {
		t.Errorf("drop-in did not change the score (%.1f vs %.1f): was it read?", withApp, base)
	}
}

// TestShippedConfig: the config install.sh puts in /etc/socksd passes
// socksd's own strict loader, and points at the system tor.
func TestShippedConfig(t *testing.T) {
	c, err := config.Load("socksd.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Tor.Launch != "never" || c.Tor.Control != "unix:/run/tor/control" || c.Tor.SOCKS != "unix:/run/tor/socksd.socks" {
		t.Errorf("tor section: %+v", c.Tor)
	}
	if c.StateDir != "/var/lib/socksd" {
		t.Errorf("state_dir %q is not the unit's StateDirectory", c.StateDir)
	}
}

// TestTorrcFragment: tor accepts the fragment, and the SocksPort socksd
// uses is the one the shipped config names.
func TestTorrcFragment(t *testing.T) {
	frag, err := os.ReadFile("torrc.socksd")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(frag, []byte("SocksPort unix:/run/tor/socksd.socks ")) ||
		!bytes.Contains(frag, []byte("ExtendedErrors")) {
		t.Error("fragment lacks socksd's ExtendedErrors SocksPort")
	}
	tor := needTool(t, "tor")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("torrc.socksd")
	if err != nil {
		t.Fatal(err)
	}
	torrc := filepath.Join(dir, "torrc")
	writeFile(t, torrc, []byte("%include "+abs+"\nDataDirectory "+data+"\n"), 0o644)
	empty := filepath.Join(dir, "defaults")
	writeFile(t, empty, nil, 0o644)
	out, err := exec.Command(tor, "--verify-config", "-f", torrc, "--defaults-torrc", empty).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Configuration was valid") {
		t.Fatalf("tor --verify-config: %v\n%s", err, out)
	}
}

// TestInstallScript: install.sh into a staging tree is idempotent, keeps
// a user's config, and uninstalls cleanly.
func TestInstallScript(t *testing.T) {
	for _, tool := range []string{"sh", "install", "cmp", "stat"} {
		needTool(t, tool)
	}
	dest := t.TempDir()
	bin := filepath.Join(t.TempDir(), "socksd")
	writeFile(t, bin, []byte("#!/bin/sh\necho stand-in\n"), 0o755)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("sh", append([]string{"./install.sh", "--destdir", dest}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("install.sh %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	p := func(rel string) string { return filepath.Join(dest, rel) }

	run("--binary", bin)
	want := map[string]os.FileMode{
		"usr/local/bin/socksd":                           0o755,
		"etc/systemd/system/socksd.service":              0o644,
		"etc/systemd/system/socksd.socket":               0o644,
		"etc/systemd/system/socksd-dns.socket":           0o644,
		"etc/socksd/socksd.toml":                         0o644,
		"etc/tor/torrc.d/socksd.conf":                    0o644,
		"usr/local/share/doc/socksd/README.md":           0o644,
		"usr/local/share/doc/socksd/config.example.toml": 0o644,
		"usr/local/share/doc/socksd/torrc.socksd":        0o644,
		"usr/local/share/man/man8/socksd.8":              0o644,
	}
	for rel, mode := range want {
		fi, err := os.Stat(p(rel))
		if err != nil {
			t.Errorf("missing %s", rel)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", rel, fi.Mode().Perm(), mode)
		}
	}

	if out := run("--binary", bin); !strings.Contains(out, "already up to date") || strings.Contains(out, "installed") {
		t.Errorf("second run changed something:\n%s", out)
	}

	// A user's edited config survives; the shipped one lands beside it.
	edited := []byte("# mine\n")
	writeFile(t, p("etc/socksd/socksd.toml"), edited, 0o644)
	run("--binary", bin)
	if b, _ := os.ReadFile(p("etc/socksd/socksd.toml")); !bytes.Equal(b, edited) {
		t.Error("install.sh overwrote the user's socksd.toml")
	}
	if _, err := os.Stat(p("etc/socksd/socksd.toml.dist")); err != nil {
		t.Error("no socksd.toml.dist beside the edited config")
	}

	// --prefix rewrites the unit's ExecStart.
	dest2 := t.TempDir()
	cmd := exec.Command("sh", "./install.sh", "--destdir", dest2, "--prefix", "/opt/socksd", "--binary", bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("--prefix: %v\n%s", err, out)
	}
	unit, _ := os.ReadFile(filepath.Join(dest2, "etc/systemd/system/socksd.service"))
	if !bytes.Contains(unit, []byte("ExecStart=/opt/socksd/bin/socksd ")) {
		t.Error("--prefix did not reach ExecStart")
	}

	run("--uninstall")
	for rel := range want {
		_, err := os.Stat(p(rel))
		keep := rel == "etc/socksd/socksd.toml"
		if keep && err != nil {
			t.Errorf("--uninstall removed %s", rel)
		}
		if !keep && err == nil {
			t.Errorf("--uninstall left %s", rel)
		}
	}
	run("--purge")
	if _, err := os.Stat(p("etc/socksd")); err == nil {
		t.Error("--purge left etc/socksd")
	}
}
