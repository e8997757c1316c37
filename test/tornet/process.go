package tornet

import (
	"errors"
	"syscall"
	"time"
)

// Process is a child process started with Network.Spawn.
type Process struct{ p *proc }

// Spawn starts argv like the network's own tors: its own process group,
// SIGTERM when the test process dies (Pdeathsig, from the network's pinned
// thread), stdout+stderr appended to logPath. Close stops it too if the
// test has not (SIGTERM, then SIGKILL after 5 s). Tests start socksd with it.
func (n *Network) Spawn(name, logPath string, argv ...string) (*Process, error) {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return nil, errors.New("tornet: Spawn after Close")
	}
	p, err := n.spawn.startProc(name, logPath, argv...)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.extra = append(n.extra, p)
	n.mu.Unlock()
	return &Process{p: p}, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.p.pid() }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool { return p.p.exited() }

// ExitCode is the exit status (-1 if killed by a signal); valid after Done.
func (p *Process) ExitCode() int { return p.p.cmd.ProcessState.ExitCode() }

// Err is exec's Wait error (nil for exit status 0); valid after Done.
func (p *Process) Err() error { return p.p.err }

// Signal sends sig if the process is still running.
func (p *Process) Signal(sig syscall.Signal) { p.p.signal(sig) }

// Stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *Process) Stop(grace time.Duration) { p.p.stop(grace) }
