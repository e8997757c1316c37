package netjail

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// Options configure Run.
type Options struct {
	// Socket is socksd's Unix-socket listener (an absolute path).
	Socket string
	// Identity names an isolation identity shared by every run that
	// names it; "" gives the run an identity of its own.
	Identity string
	// Argv is the program and its arguments.
	Argv []string
}

// ErrNamespaces: the kernel refused the namespaces (unprivileged user
// namespaces off, a seccomp filter, a container without CAP_SYS_ADMIN).
var ErrNamespaces = errors.New("netjail: cannot create namespaces")

// Run runs o.Argv in the jail and returns its exit status (128+N when a
// signal N killed it). Signals socksd run receives go to the program. An
// error means the run could not start; the status is then ExitSetup.
func Run(o Options) (int, error) {
	if len(o.Argv) == 0 {
		return ExitSetup, errors.New("netjail: no program")
	}
	token := "identity:" + o.Identity
	if o.Identity == "" {
		var b [16]byte
		rand.Read(b[:])
		token = "run:" + hex.EncodeToString(b[:])
	}
	uid, gid := os.Getuid(), os.Getgid()
	cfg := helperConfig{Socket: o.Socket, Token: token, Argv: o.Argv, UserNS: uid != 0, UID: uid, GID: gid,
		Foreground: foregroundTerminal()}

	r, w, err := os.Pipe()
	if err != nil {
		return ExitSetup, err
	}
	defer r.Close()
	defer w.Close()
	cmd := exec.Command("/proc/self/exe", helperArg)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{r}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS | unix.CLONE_NEWPID,
		// The helper dies with us, and the PID namespace with it.
		Pdeathsig: syscall.SIGKILL,
		// Its own process group: a Ctrl-C on the terminal reaches the
		// program (or us) once, never twice through a forward.
		Setpgid: true,
	}
	if cfg.UserNS {
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		if cfg.UserNS && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EINVAL)) {
			return ExitSetup, fmt.Errorf("%w: this kernel does not allow unprivileged user namespaces (%v); run as root or enable them (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces)", ErrNamespaces, err)
		}
		return ExitSetup, fmt.Errorf("%w: %v", ErrNamespaces, err)
	}
	r.Close()
	err = json.NewEncoder(w).Encode(cfg)
	w.Close()
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return ExitSetup, err
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	if cfg.Foreground {
		takeForeground()
	}
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return exitSignalFloor + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return ExitSetup, err
}

// foregroundTerminal reports whether stdin is a terminal whose foreground
// process group is ours: then the program gets the foreground, as a
// shell gives it to a job, and the terminal's signals (Ctrl-C, window
// size) go to it directly.
func foregroundTerminal() bool {
	pg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && pg == unix.Getpgrp()
}

// takeForeground gives the terminal back to our process group after the
// program, which had it, exited.
func takeForeground() {
	signal.Ignore(syscall.SIGTTOU) // we are in the background until this succeeds
	unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp())
}
