package tornet

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// proc is one child process (a tor) the harness started and will stop.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
	err  error         // Wait's result, valid after done
}

// spawner starts every child from one goroutine locked to its OS thread for
// the network's lifetime. Children get Pdeathsig=SIGTERM, which Linux sends
// when the *thread* that forked them exits — normally that is when the test
// process dies (a `go test -timeout` panic, a SIGKILL of the test binary,
// Ctrl-C), but the Go runtime may retire an unlocked thread at any time, so
// the forking thread is pinned here and only released by Close.
type spawner struct {
	reqs chan spawnReq
	quit chan struct{}
}

type spawnReq struct {
	cmd *exec.Cmd
	res chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), quit: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		// Never UnlockOSThread: the thread exits with this goroutine, which
		// only happens after every child has been stopped (Close).
		for {
			select {
			case r := <-s.reqs:
				r.res <- r.cmd.Start()
			case <-s.quit:
				return
			}
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	res := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, res: res}
	return <-res
}

func (s *spawner) close() { close(s.quit) }

// startProc starts argv with stdout+stderr appended to logPath, in its own
// process group (so a terminal's Ctrl-C reaches only the harness, which then
// tears down in order), with SIGTERM as parent-death signal.
func (s *spawner) startProc(name, logPath string, argv ...string) (*proc, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := s.start(cmd); err != nil {
		return nil, fmt.Errorf("tornet: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		p.cmd.Process.Signal(sig)
	}
}

// stop sends SIGTERM (tor: immediate clean exit, ShutdownWaitLength is 0)
// and SIGKILL if the process is still there after grace. It only ever
// signals this one child: os.Process signals through a pidfd on Linux, so a
// reaped (and possibly reused) PID is never hit.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.done
	}
}
