package run

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"socksd/internal/testutil"
)

// TestExitStatus: socksd run exits with the program's status, 128+N when
// signal N killed it, and 127 when there is no such program.
func TestExitStatus(t *testing.T) {
	needTornet(t)
	for _, tc := range []struct {
		argv []string
		want int
	}{
		{[]string{"true"}, 0},
		{[]string{"sh", "-c", "exit 7"}, 7},
		{[]string{"sh", "-c", "kill -KILL $$"}, 128 + 9},
		{[]string{"/nonexistent/program"}, 127},
	} {
		if r := jail(t, nil, tc.argv...); r.code != tc.want {
			t.Errorf("%q: %v; want exit %d", tc.argv, r, tc.want)
		}
	}
}

// started is a socksd run in progress whose program printed lines.
type started struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
	err   bytes.Buffer
}

// startJail starts argv under socksd run and returns once the program has
// printed its first line (it must print one when ready).
func startJail(t *testing.T, argv ...string) *started {
	t.Helper()
	needTornet(t)
	a := jailArgs(nil, argv...)
	s := &started{cmd: exec.Command(a[0], a[1:]...)}
	s.cmd.Stderr = &s.err
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	s.lines = bufio.NewScanner(out)
	return s
}

func (s *started) line(t *testing.T) string {
	t.Helper()
	if !s.lines.Scan() {
		t.Fatalf("program ended without the expected line: %v; stderr: %s", s.lines.Err(), s.err.String())
	}
	return s.lines.Text()
}

// wait returns the exit status, within 30 s.
func (s *started) wait(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		t.Fatalf("socksd run did not exit within 30 s")
		return -1
	}
}

// TestSignals: INT, TERM, HUP and WINCH sent to socksd run reach the
// program, which says so and exits with a status of its choosing.
func TestSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGWINCH} {
		name := strings.TrimPrefix(unixSignalName(sig), "SIG")
		t.Run(name, func(t *testing.T) {
			// wait returns when a trapped signal arrives; sleep (a
			// child) is left behind and dies with the jail.
			s := startJail(t, "sh", "-c", "trap 'echo got "+name+"; exit 42' "+name+"; echo ready; sleep 1000 & wait $!")
			if l := s.line(t); l != "ready" {
				t.Fatalf("first line %q", l)
			}
			s.cmd.Process.Signal(sig)
			if l := s.line(t); l != "got "+name {
				t.Fatalf("program printed %q, want %q", l, "got "+name)
			}
			if code := s.wait(t); code != 42 {
				t.Fatalf("exit %d, want the program's 42; stderr: %s", code, s.err.String())
			}
		})
	}
}

func unixSignalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGWINCH:
		return "SIGWINCH"
	}
	return s.String()
}

// TestCleanup: after the program exits, and after socksd run is killed
// with SIGKILL, no process is left in the run's network or mount
// namespace (so the namespaces, their mounts and rules are gone), even
// one the program left running in the background, and the host's mount
// table is as before.
func TestCleanup(t *testing.T) {
	needTornet(t)
	mountsBefore := mountTable(t)
	const script = "readlink /proc/self/ns/net; readlink /proc/self/ns/mnt; sleep 1000 & "
	t.Run("exit", func(t *testing.T) {
		s := startJail(t, "sh", "-c", script+"exit 3")
		netns, mntns := s.line(t), s.line(t)
		if code := s.wait(t); code != 3 {
			t.Fatalf("exit %d, want 3", code)
		}
		wantGone(t, netns, mntns)
	})
	t.Run("sigkill", func(t *testing.T) {
		s := startJail(t, "sh", "-c", script+"echo ready; wait")
		netns, mntns := s.line(t), s.line(t)
		if l := s.line(t); l != "ready" {
			t.Fatalf("line %q", l)
		}
		s.cmd.Process.Kill()
		s.wait(t)
		wantGone(t, netns, mntns)
	})
	if after := mountTable(t); after != mountsBefore {
		t.Errorf("the host's mount table changed:\nbefore:\n%s\nafter:\n%s", mountsBefore, after)
	}
}

// wantGone waits (up to 10 s: the kernel reaps a killed namespace
// asynchronously) until no process is in the namespaces, and fails if one
// stays.
func wantGone(t *testing.T, netns, mntns string) {
	t.Helper()
	if !strings.HasPrefix(netns, "net:[") || !strings.HasPrefix(mntns, "mnt:[") {
		t.Fatalf("namespace ids %q %q", netns, mntns)
	}
	var left []string
	if !testutil.Poll(10*time.Second, 20*time.Millisecond, func() bool {
		left = inNamespace(netns, mntns)
		return len(left) == 0
	}) {
		t.Fatalf("processes left in the run's namespaces: %v", left)
	}
}

// inNamespace lists the PIDs whose network or mount namespace is one of
// the given ("net:[N]" as readlink shows it).
func inNamespace(ids ...string) []string {
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		for _, kind := range []string{"net", "mnt"} {
			l, err := os.Readlink(p + "/ns/" + kind)
			if err != nil {
				continue
			}
			for _, id := range ids {
				if l == id {
					left = append(left, filepath.Base(p))
				}
			}
		}
	}
	return left
}

func mountTable(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFailClosed: with socksd unreachable every connection fails at once
// and socksd run says so once on stderr, however many connections fail.
func TestFailClosed(t *testing.T) {
	n := needTornet(t)
	missing := filepath.Join(t.TempDir(), "no.sock")
	r := command(t, jailArgsSocket(missing, nil, fetcherBin, "-timeout", "20s", n.NameURL("/via"), n.NameURL("/"), "http://192.0.2.1/")...)
	if r.code != 1 || strings.Count(r.stdout, "ERR") != 3 {
		t.Fatalf("want 3 failed requests and exit 1: %v", r)
	}
	if c := strings.Count(r.stderr, "cannot reach socksd"); c != 1 {
		t.Errorf("stderr has %d 'cannot reach socksd' lines, want 1:\n%s", c, r.stderr)
	}
	if r.took > 10*time.Second {
		t.Errorf("took %v: failing closed must be immediate", r.took)
	}
}

// TestResolver: inside the jail A and AAAA get run-local virtual
// addresses (nothing is looked up), other types a clear refusal, and the
// replaced resolv.conf cannot be changed.
func TestResolver(t *testing.T) {
	needTornet(t)
	r := jail(t, nil, "sh", "-c", "dig +short A www.example.com; dig +short AAAA www.example.com; dig MX example.com | grep -E 'status|EDE'; if echo x 2>/dev/null >> /etc/resolv.conf; then echo writable; else echo read-only; fi")
	out := r.stdout
	for _, want := range []string{"100.64.", "fd00:5ec5:7275:", "status: REFUSED", "only A and AAAA", "read-only"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q: %v", want, r)
		}
	}
}
