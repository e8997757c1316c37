// Package daemontest runs a daemon under test as a child process: its
// output goes to a log file the test can read and wait on, it can be
// signalled, stopped and waited for, and only that one child is ever
// signalled (os.Process uses a pidfd on Linux, so a reaped and reused PID
// is never hit). cmd/socksd's tests run their own re-executed test binary
// with it; test/tornet runs its tors and the e2e tests' socksd with it.
// Only tests and test tools import it.
package daemontest

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// TB is the part of testing.TB the waits use to fail a test; taking it
// rather than testing.TB keeps the testing package out of test/tornet,
// which tools other than tests import.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Process is one child process a test started and will stop.
type Process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has been waited for
	err     error         // Wait's result, valid after done
}

// Start starts cmd with stdout and stderr appended to logPath, in its own
// process group (a terminal's Ctrl-C reaches only the test, which then
// stops its children in order). start does the fork: nil means
// cmd.Start; test/tornet passes its pinned-thread starter so a parent-death
// signal is tied to a thread that lives as long as the network.
func Start(cmd *exec.Cmd, logPath string, start func(*exec.Cmd) error) (*Process, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if start == nil {
		start = (*exec.Cmd).Start
	}
	if err := start(cmd); err != nil {
		return nil, err // exec's error names the binary
	}
	p := &Process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the exit status (-1 if killed by a signal); valid after Done.
func (p *Process) ExitCode() int { return p.cmd.ProcessState.ExitCode() }

// Err is exec's Wait error (nil for exit status 0); valid after Done.
func (p *Process) Err() error { return p.err }

// Signal sends sig if the process is still running.
func (p *Process) Signal(sig syscall.Signal) {
	if !p.Exited() {
		p.cmd.Process.Signal(sig)
	}
}

// Stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.Kill()
	}
}

// Kill sends SIGKILL if the process is still running and waits for the exit.
func (p *Process) Kill() {
	if !p.Exited() {
		p.cmd.Process.Kill()
	}
	<-p.done
}

// Log returns everything the process wrote so far (every run that
// appended to the same log file).
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Tail is the last n bytes of s, for failure messages.
func Tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// WaitLog polls the log, from byte offset from, until it contains substr;
// it fails the test if the process exits first or timeout passes.
func (p *Process) WaitLog(t TB, from int, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		l := p.Log()
		if from <= len(l) && strings.Contains(l[from:], substr) {
			return
		}
		select {
		case <-p.done:
			if l := p.Log(); from <= len(l) && strings.Contains(l[from:], substr) {
				return // written just before the exit
			}
			t.Fatalf("%s exited while waiting for %q: %v\n%s", p.cmd.Path, substr, p.err, Tail(p.Log(), 4000))
		case <-deadline.C:
			t.Fatalf("%s log has no %q after %v:\n%s", p.cmd.Path, substr, timeout, Tail(p.Log(), 4000))
		case <-tick.C:
		}
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code; it fails the test if the process is still running.
func (p *Process) Wait(t TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v:\n%s", p.cmd.Path, timeout, Tail(p.Log(), 4000))
	}
	return -1
}
