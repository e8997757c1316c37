package tornet

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"

	"socksd/internal/daemontest"
)

// proc is one child process (a tor) the harness started and will stop.
// Stop sends SIGTERM (tor: immediate clean exit, ShutdownWaitLength is 0)
// and SIGKILL after the grace.
type proc struct {
	name string
	*daemontest.Process
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

// startProc starts argv with stdout+stderr appended to logPath, from the
// pinned thread, with SIGTERM as parent-death signal (daemontest puts it
// in its own process group).
func (s *spawner) startProc(name, logPath string, argv ...string) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	p, err := daemontest.Start(cmd, logPath, s.start)
	if err != nil {
		return nil, fmt.Errorf("tornet: %s: %w", name, err)
	}
	return &proc{name: name, Process: p}, nil
}
