package daemontest

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLogAndExitCode(t *testing.T) {
	log := t.TempDir() + "/out.log"
	p, err := Start(exec.Command("/bin/sh", "-c", "echo ready; echo oops >&2; exit 3"), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, 0, "ready", 10*time.Second)
	if code := p.Wait(t, 10*time.Second); code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	if l := p.Log(); !strings.Contains(l, "ready\n") || !strings.Contains(l, "oops\n") {
		t.Fatalf("log %q lacks stdout or stderr", l)
	}
	if p.Err() == nil {
		t.Fatal("Err is nil for exit status 3")
	}
}

func TestSignalAndStop(t *testing.T) {
	log := t.TempDir() + "/out.log"
	// The shell writes a line for each SIGHUP and dies of SIGTERM.
	script := `trap 'echo hup' HUP; echo up; while :; do sleep 0.05; done`
	p, err := Start(exec.Command("/bin/sh", "-c", script), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	p.WaitLog(t, 0, "up", 10*time.Second)
	off := len(p.Log())
	p.Signal(syscall.SIGHUP)
	p.WaitLog(t, off, "hup", 10*time.Second)
	if p.Exited() {
		t.Fatal("exited on a trapped SIGHUP")
	}
	p.Stop(10 * time.Second)
	if !p.Exited() || p.ExitCode() != -1 {
		t.Fatalf("after Stop: exited %v, code %d (want -1, killed by SIGTERM)", p.Exited(), p.ExitCode())
	}
	p.Signal(syscall.SIGTERM) // a no-op once reaped
}

func TestStopKillsAfterGrace(t *testing.T) {
	log := t.TempDir() + "/out.log"
	p, err := Start(exec.Command("/bin/sh", "-c", `trap '' TERM; echo up; while :; do sleep 0.05; done`), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, 0, "up", 10*time.Second)
	p.Stop(200 * time.Millisecond)
	if st := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !st.Signaled() || st.Signal() != syscall.SIGKILL {
		t.Fatalf("wait status %v, want killed by SIGKILL", st)
	}
}

func TestStartErrorNamesBinary(t *testing.T) {
	_, err := Start(exec.Command("/nonexistent/socksd"), t.TempDir()+"/out.log", nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/socksd") {
		t.Fatalf("err %v, want one naming the binary", err)
	}
}
