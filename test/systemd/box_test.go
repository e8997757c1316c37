package systest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// innerScript runs as the first process of the box's new mount, PID, UTS
// and network namespaces. It builds the box's root: an overlay whose
// lower layer is the host's / (read-only to the box: every write goes to
// a tmpfs upper layer), fresh tmpfs on /tmp, /run and /var/tmp (with a real system's modes), the
// shared directory bound at /srv/systest, and it masks the units that
// would touch the host's devices (udev) or clock. Then it becomes
// systemd as PID 1.
//
// The overlay is the point: systemd's boot-time tmpfiles cleanup empties
// /tmp and /var/tmp, and units write all over /etc and /var. Booted on
// the host's root, that would wipe and change the host.
const innerScript = `#!/bin/sh
set -e
D=$1 SHARED=$2
mount --make-rprivate /
mkdir -p "$D/layer" "$D/root"
mount -t tmpfs -o mode=0755 tmpfs "$D/layer"
mkdir -p "$D/layer/u" "$D/layer/w"
mount -t overlay overlay -o "lowerdir=/,upperdir=$D/layer/u,workdir=$D/layer/w" "$D/root"
for d in proc sys dev; do mount --rbind "/$d" "$D/root/$d"; done
mount -t proc proc "$D/root/proc"
mount -t tmpfs -o mode=0755 tmpfs "$D/root/run"
for d in tmp var/tmp; do mount -t tmpfs -o mode=1777 tmpfs "$D/root/$d"; done
mkdir -p "$D/root/srv/systest"
mount --bind "$SHARED" "$D/root/srv/systest"
for u in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
	systemd-udev-trigger.service systemd-udev-settle.service systemd-timesyncd.service \
	getty@tty1.service console-getty.service; do
	ln -sf /dev/null "$D/root/etc/systemd/system/$u"
done
# A non-loopback address (TEST-NET-1, on lo: this kernel may lack the
# dummy driver), so the sandbox check can show that the service's IP
# firewall, not a missing route, stops it.
ip link set lo up
ip addr add 192.0.2.1/32 dev lo
cd "$D/root"
mkdir -p .oldroot
pivot_root . .oldroot
umount -l /.oldroot
rmdir /.oldroot || true
hostname socksd-box
exec env -i container=socksd-systest PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd --system --log-target=journal
`

// Box is a throwaway systemd (PID 1 of its own PID namespace) booted on an
// overlay of the host's root. Nothing it does reaches the host's files or
// network; when the test process dies, the kernel kills it (Pdeathsig on
// unshare, which kills its child).
type Box struct {
	t      *testing.T
	dir    string
	Shared string // host directory seen as /srv/systest inside
	PID    int    // systemd's PID on the host
	cmd    *exec.Cmd
}

// needRoot skips unless the box can be booted here.
func needBox(t *testing.T) {
	t.Helper()
	if os.Getenv("SOCKSD_SYSTEMD") != "1" {
		t.Skip("set SOCKSD_SYSTEMD=1 to boot a throwaway systemd (make test-systemd)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, overlay mounts)")
	}
	for _, p := range []string{"/lib/systemd/systemd", "/usr/bin/unshare", "/usr/bin/nsenter", "/usr/sbin/ip"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing", p)
		}
	}
}

// Boot starts the box and waits until systemd reports running or degraded.
func Boot(t *testing.T, shared string) *Box {
	t.Helper()
	dir, err := os.MkdirTemp("", "socksd-box-")
	if err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(dir, "inner.sh")
	if err := os.WriteFile(inner, []byte(innerScript), 0o755); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "boot.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("unshare", "--mount", "--pid", "--fork", "--uts", "--net", "--kill-child=SIGKILL",
		inner, dir, shared)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &Box{t: t, dir: dir, Shared: shared, cmd: cmd}
	t.Cleanup(b.stop)
	deadline := time.Now().Add(20 * time.Second)
	for b.PID == 0 {
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(dir, "boot.log"))
			t.Fatalf("systemd did not start in the box:\n%s", out)
		}
		b.PID = systemdChild(cmd.Process.Pid)
		if b.PID == 0 {
			time.Sleep(50 * time.Millisecond) // polling /proc for the child: nothing to wait on
		}
	}
	state := ""
	for time.Now().Before(deadline) {
		state = strings.TrimSpace(b.Out("systemctl", "is-system-running"))
		if state == "running" || state == "degraded" {
			return b
		}
		time.Sleep(100 * time.Millisecond) // polling systemd's state: it has no completion event we can wait on
	}
	t.Fatalf("box systemd state %q after 20 s\n%s", state, b.Out("systemctl", "--failed", "--no-pager"))
	return nil
}

// systemdChild finds unshare's child once it has exec'd systemd.
func systemdChild(unshare int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", unshare, unshare))
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "systemd" {
			return pid
		}
	}
	return 0
}

// stop powers the box off (SIGRTMIN+4: systemd's poweroff), or kills it
// after 20 s, and removes its mount points.
func (b *Box) stop() {
	if b.cmd.Process == nil {
		return
	}
	if b.PID != 0 {
		syscall.Kill(b.PID, syscall.Signal(34+4))
	}
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		b.t.Logf("box did not power off in 20 s; killing it")
		b.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(b.dir)
	// The box shares the host's cgroup hierarchies (no cgroup namespace):
	// its systemd leaves an empty init.scope at their root. rmdir removes
	// only an empty cgroup, so a box still running elsewhere keeps its own.
	for _, h := range []string{"unified", "systemd"} {
		os.Remove(filepath.Join("/sys/fs/cgroup", h, "init.scope"))
	}
}

// Command returns cmd run inside the box (all its namespaces), with a
// plain environment.
func (b *Box) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	a := append([]string{"-t", strconv.Itoa(b.PID), "-m", "-p", "-u", "-n", "--", name}, args...)
	c := exec.CommandContext(ctx, "nsenter", a...)
	c.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "DEBIAN_FRONTEND=noninteractive"}
	return c
}

// Run runs a command in the box (60 s at most) and returns its combined
// output and error.
func (b *Box) Run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	c := b.Command(ctx, name, args...)
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	return out.String(), err
}

// Out is Run's output, whatever the exit status.
func (b *Box) Out(name string, args ...string) string {
	out, _ := b.Run(name, args...)
	return out
}

// Must runs a command that must succeed; t is the (sub)test it belongs to.
func (b *Box) Must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := b.Run(name, args...)
	if err != nil {
		t.Fatalf("box: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// Sh runs a shell script in the box that must succeed. Scripts restart
// socksd with restart_socksd, which first clears systemd's start rate
// limit: this test restarts socksd more often than StartLimitBurst allows.
func (b *Box) Sh(t *testing.T, script string) string {
	t.Helper()
	return b.Must(t, "sh", "-ec", "restart_socksd() { systemctl reset-failed socksd; systemctl restart socksd; }\n"+script)
}

// NetNS is the box's network namespace, for processes that run on the
// host's file system but must share the box's loopback (the private Tor
// network).
func (b *Box) NetNS() string { return fmt.Sprintf("/proc/%d/ns/net", b.PID) }

// Show returns one property of a unit (systemctl show -P).
func (b *Box) Show(unit, prop string) string {
	return strings.TrimSpace(b.Out("systemctl", "show", "-P", prop, unit))
}

// Journal returns the unit's journal since the box booted.
func (b *Box) Journal(unit string) string {
	return b.Out("journalctl", "--no-pager", "-o", "cat", "-u", unit)
}
