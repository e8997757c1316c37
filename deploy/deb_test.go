package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDebPackage: make deb's build.sh lays out the package the way
// Debian expects (packaged units in /lib/systemd/system, conffiles
// declared, the man page compressed, docs with copyright and changelog)
// and its maintainer scripts are valid sh. The systemd test installs,
// upgrades and purges it for real.
func TestDebPackage(t *testing.T) {
	needTool(t, "dpkg-deb")
	needTool(t, "dpkg")
	bin := filepath.Join(t.TempDir(), "socksd")
	writeFile(t, bin, []byte("#!/bin/sh\necho stand-in\n"), 0o755)
	out := t.TempDir()
	b, err := exec.Command("sh", "deb/build.sh", "--binary", bin, "--version", "1.2.3~test", "--out", out, "--compress", "none").CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	deb := strings.TrimSpace(string(b))
	if filepath.Dir(deb) != out || !strings.HasPrefix(filepath.Base(deb), "socksd_1.2.3~test_") {
		t.Fatalf("package path %q", deb)
	}
	list, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, l := range strings.Split(string(list), "\n") {
		if f := strings.Fields(l); len(f) >= 6 && !strings.HasSuffix(f[5], "/") {
			files = append(files, strings.TrimPrefix(f[5], "."))
		}
	}
	want := []string{
		"/usr/bin/socksd",
		"/lib/systemd/system/socksd.service", "/lib/systemd/system/socksd.socket", "/lib/systemd/system/socksd-dns.socket",
		"/etc/socksd/socksd.toml", "/etc/tor/torrc.d/socksd.conf",
		"/usr/share/man/man8/socksd.8.gz",
		"/usr/share/doc/socksd/README.md", "/usr/share/doc/socksd/config.example.toml", "/usr/share/doc/socksd/torrc.socksd",
		"/usr/share/doc/socksd/copyright", "/usr/share/doc/socksd/changelog.Debian.gz",
	}
	slices.Sort(files)
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("package files:\n got %v\nwant %v", files, want)
	}
	for _, l := range strings.Split(string(list), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[1] != "root/root" {
			t.Errorf("not owned by root: %s", l)
		}
	}

	ctl := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-e", deb, ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, b)
	}
	conf, _ := os.ReadFile(filepath.Join(ctl, "conffiles"))
	if string(conf) != "/etc/socksd/socksd.toml\n/etc/tor/torrc.d/socksd.conf\n" {
		t.Errorf("conffiles %q", conf)
	}
	control, _ := os.ReadFile(filepath.Join(ctl, "control"))
	for _, f := range []string{"Package: socksd\n", "Version: 1.2.3~test\n", "Depends: tor\n", "Section: net\n"} {
		if !strings.Contains(string(control), f) {
			t.Errorf("control lacks %q:\n%s", f, control)
		}
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join(ctl, s)
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", s, err, fi)
			continue
		}
		if b, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", s, err, b)
		}
	}
	post, _ := os.ReadFile(filepath.Join(ctl, "postinst"))
	// Starting goes through deb-systemd-invoke, which asks policy-rc.d.
	if !regexp.MustCompile(`deb-systemd-invoke "\$action" socksd\.service`).Match(post) || strings.Contains(string(post), "systemctl start") {
		t.Error("postinst must start socksd through deb-systemd-invoke (policy-rc.d)")
	}

	// The units name the packaged binary and docs.
	root := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, b)
	}
	unit, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/socksd.service"))
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/socksd ") || strings.Contains(string(unit), "/usr/local/") {
		t.Errorf("packaged unit does not name /usr/bin/socksd:\n%s", unit)
	}
}

// TestManPage: socksd(8) documents every flag socksd has and every exit
// code cmd/socksd defines, and groff reads it without a warning.
func TestManPage(t *testing.T) {
	page, err := os.ReadFile("socksd.8")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(page), `\-`, "-")
	goBin := needTool(t, "go")
	help, _ := exec.Command(goBin, "run", socksdPkg(), "-h").CombinedOutput()
	flags := regexp.MustCompile(`(?m)^  -([a-z][a-z-]*)`).FindAllStringSubmatch(string(help), -1)
	if len(flags) < 3 {
		t.Fatalf("no flags in socksd -h:\n%s", help)
	}
	for _, f := range flags {
		if !strings.Contains(text, "-"+f[1]) {
			t.Errorf("socksd(8) does not document -%s", f[1])
		}
	}
	src, err := os.ReadFile("../cmd/socksd/main.go")
	if err != nil {
		t.Fatal(err)
	}
	codes := regexp.MustCompile(`(?m)^\s+exit[A-Z][a-zA-Z]*\s+= (\d+)`).FindAllStringSubmatch(string(src), -1)
	if len(codes) < 4 {
		t.Fatalf("exit codes not found in cmd/socksd/main.go")
	}
	exitSection := text[strings.Index(text, ".SH EXIT STATUS"):]
	exitSection = exitSection[:strings.Index(exitSection[1:], ".SH ")+1]
	for _, c := range codes {
		if !strings.Contains(exitSection, ".B "+c[1]+"\n") {
			t.Errorf("socksd(8) EXIT STATUS lacks %s", c[1])
		}
	}
	for _, s := range []string{"SIGHUP", "SIGUSR1", "SIGTERM", "/etc/socksd/socksd.toml", "/var/lib/socksd"} {
		if !strings.Contains(text, s) {
			t.Errorf("socksd(8) does not mention %s", s)
		}
	}
	if groff, err := exec.LookPath("groff"); err == nil {
		out, err := exec.Command(groff, "-man", "-ww", "-z", "socksd.8").CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff: %v\n%s", err, out)
		}
	}
}
