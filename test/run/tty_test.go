package run

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a new pseudo-terminal's controller side and the path of
// its device (posix_openpt, grantpt, unlockpt).
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// TestTerminal: started from a terminal, as a shell starts a job, the
// program gets the terminal's foreground, so a Ctrl-C typed there reaches
// it (once: socksd run does not forward what the terminal already
// delivered), and socksd run exits with its status.
func TestTerminal(t *testing.T) {
	needTornet(t)
	m, tty := openPTY(t)
	s, err := os.OpenFile(tty, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A session of its own with the terminal as its controlling
	// terminal, in the terminal's foreground: what a login shell is.
	// The trap ends the sleep itself: sh starts background commands with
	// SIGINT ignored, and the Ctrl-C may come before sh is in wait. sh's
	// job notices ("Terminated") go to stderr, away from the lines read.
	a := jailArgs(nil, "sh", "-c",
		`exec 2>/dev/null; trap 'n=$((n+1)); echo got INT $n; kill $pid' INT; sleep 1000 & pid=$!; `+
			`read -r _ _ _ _ pgrp _ _ tpgid _ < /proc/self/stat; echo "pgrp=$pgrp tpgid=$tpgid"; `+
			`wait $pid; sleep 0.5 & wait $!; exit 40`)
	cmd := exec.Command(a[0], a[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(m)
		for sc.Scan() {
			lines <- strings.TrimSpace(sc.Text())
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("terminal closed")
			}
			return l
		case <-time.After(30 * time.Second):
			t.Fatal("no output from the program within 30 s")
		}
		return ""
	}
	var pgrp, tpgid string
	if _, err := fmt.Sscanf(next(), "pgrp=%s tpgid=%s", &pgrp, &tpgid); err != nil || pgrp != tpgid {
		t.Fatalf("program's process group %q, terminal's foreground %q (%v): want the program in the foreground", pgrp, tpgid, err)
	}
	// Ctrl-Z: no job control inside; the program is continued at once
	// and socksd run says why.
	if _, err := m.Write([]byte{26}); err != nil {
		t.Fatal(err)
	}
	for l := next(); !strings.Contains(l, "job control (Ctrl-Z) is not supported"); l = next() {
	}
	if _, err := m.Write([]byte{3}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	if l := next(); !strings.HasSuffix(l, "got INT 1") {
		t.Fatalf("after Ctrl-C the program printed %q, want got INT 1", l)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 40 {
			t.Fatalf("socksd run: %v, want exit 40", err)
		}
	case l := <-lines:
		t.Fatalf("program printed %q: Ctrl-C delivered twice?", l)
	case <-time.After(30 * time.Second):
		t.Fatal("socksd run did not exit")
	}
}
