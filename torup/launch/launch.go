// Package launch runs socksd's managed tor: a tor process
// with its own DataDirectory, a control port on a Unix socket with cookie
// authentication, one SocksPort with ExtendedErrors (a Unix socket next to
// the control socket, else 127.0.0.1:auto), and
// __OwningControllerProcess set to socksd's PID (control-spec §3.23), so
// the tor dies with socksd even after a kill -9. It restarts tor when it
// dies and stops it on Stop.
package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"socksd/internal/endpoint"
)

// Sentinel errors of this package.
var (
	// ErrNoBinary: tor_binary was not found.
	ErrNoBinary = errors.New("launch: tor binary not found")
	// ErrNotReady: tor did not open its control port in time.
	ErrNotReady = errors.New("launch: tor did not open its control port")
	// ErrExited: tor exited before opening its control port.
	ErrExited = errors.New("launch: tor exited during start-up")
)

// Config configures the managed tor.
type Config struct {
	Binary     string // tor_binary: name on PATH or path
	DataDir    string // created 0700 if missing
	TorrcExtra string // appended verbatim (tests point tor at a private network)
	OwnerPID   int    // __OwningControllerProcess; 0 = none
	// StartTimeout bounds waiting for the control port (default 30s).
	StartTimeout time.Duration
	// RestartMin/RestartMax bound the delay before restarting a tor that
	// died (defaults 500ms, 30s).
	RestartMin, RestartMax time.Duration
	Log                    *zap.Logger
}

// Tor is one managed tor, restarted while it is wanted.
type Tor struct {
	cfg     Config
	log     *zap.Logger
	ctlAddr string // guarded by mu when TCP (learnt from control.port)
	unix    bool   // control port on a Unix socket; fixed by New
	cookie  string

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	restarts int
	stopping bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// New returns a managed tor; nothing runs until Start.
func New(cfg Config) *Tor {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.RestartMin <= 0 {
		cfg.RestartMin = 500 * time.Millisecond
	}
	if cfg.RestartMax <= 0 {
		cfg.RestartMax = 30 * time.Second
	}
	t := &Tor{cfg: cfg, log: cfg.Log, stop: make(chan struct{})}
	t.cookie = filepath.Join(cfg.DataDir, "control_auth_cookie")
	sock := filepath.Join(cfg.DataDir, "control")
	// sockaddr_un holds 108 bytes; tor also refuses paths it would
	// have to quote. Otherwise: a TCP control port on loopback, its
	// address written to a file (ControlPortWriteToFile).
	if len(sock) < 100 && !strings.ContainsAny(sock, " \t\"\\") {
		t.ctlAddr = "unix:" + sock
		t.unix = true
	}
	return t
}

// ControlAddr is where tor's control port listens ("unix:/path", or
// "127.0.0.1:port" once Start has read it).
func (t *Tor) ControlAddr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ctlAddr
}

// CookieFile is tor's control authentication cookie.
func (t *Tor) CookieFile() string { return t.cookie }

// PID is the running tor's process ID, 0 if none.
func (t *Tor) PID() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cmd == nil || t.cmd.Process == nil || isClosed(t.exited) {
		return 0
	}
	return t.cmd.Process.Pid
}

// Restarts counts how often tor was restarted after dying.
func (t *Tor) Restarts() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.restarts
}

// Torrc returns the configuration file socksd writes for tor.
func (t *Tor) Torrc() string {
	var b strings.Builder
	dir := t.cfg.DataDir
	fmt.Fprintf(&b, "# written by socksd; changes are overwritten\n")
	fmt.Fprintf(&b, "DataDirectory %s\n", dir)
	if t.unix {
		fmt.Fprintf(&b, "ControlPort %s\n", t.ctlAddr)
	} else {
		fmt.Fprintf(&b, "ControlPort 127.0.0.1:auto\nControlPortWriteToFile %s\n", filepath.Join(dir, "control.port"))
	}
	fmt.Fprintf(&b, "CookieAuthentication 1\nCookieAuthFile %s\n", t.cookie)
	// ExtendedErrors: F0-F7 for onion services (proposal 304). A Unix
	// SocksPort spares every stream a loopback TCP hop (docs/performance.md);
	// it goes where the control socket fits, in the private data dir.
	if t.unix {
		fmt.Fprintf(&b, "SocksPort unix:%s ExtendedErrors\n", filepath.Join(dir, "socks"))
	} else {
		fmt.Fprintf(&b, "SocksPort 127.0.0.1:auto ExtendedErrors\n")
	}
	fmt.Fprintf(&b, "Log notice stdout\nRunAsDaemon 0\n")
	if t.cfg.OwnerPID > 0 {
		fmt.Fprintf(&b, "__OwningControllerProcess %d\n", t.cfg.OwnerPID)
	}
	if extra := strings.TrimSpace(t.cfg.TorrcExtra); extra != "" {
		fmt.Fprintf(&b, "# [tor] torrc_extra\n%s\n", extra)
	}
	return b.String()
}

// Start writes the torrc, starts tor and waits until its control port
// accepts connections; tor is then supervised until Stop.
func (t *Tor) Start(ctx context.Context) error {
	bin, err := exec.LookPath(t.cfg.Binary)
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrNoBinary, t.cfg.Binary, err)
	}
	t.cfg.Binary = bin
	if err := os.MkdirAll(t.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("launch: data dir: %w", err)
	}
	// Tor refuses a DataDirectory others can read.
	if err := os.Chmod(t.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("launch: data dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(t.cfg.DataDir, "torrc"), []byte(t.Torrc()), 0o600); err != nil {
		return fmt.Errorf("launch: torrc: %w", err)
	}
	// An empty defaults file: never /etc/tor/torrc's settings (tornet
	// README gotcha 2; tor refuses /dev/null).
	if err := os.WriteFile(filepath.Join(t.cfg.DataDir, "torrc-defaults"), nil, 0o600); err != nil {
		return fmt.Errorf("launch: torrc-defaults: %w", err)
	}
	if err := t.spawn(); err != nil {
		return err
	}
	if err := t.waitReady(ctx); err != nil {
		t.kill()
		return err
	}
	t.wg.Add(1)
	go t.supervise()
	return nil
}

// spawn starts one tor process.
func (t *Tor) spawn() error {
	dir := t.cfg.DataDir
	if t.unix {
		_, sock := endpoint.Split(t.ctlAddr)
		// A stale socket of a tor that crashed; tor holds DataDirectory's
		// lock, so a live one would make our tor exit anyway.
		os.Remove(sock)
	} else {
		os.Remove(filepath.Join(dir, "control.port"))
	}
	cmd := exec.Command(t.cfg.Binary, "-f", filepath.Join(dir, "torrc"),
		"--defaults-torrc", filepath.Join(dir, "torrc-defaults"))
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	// Own process group: a terminal's ^C goes to socksd, which stops tor
	// in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("launch: start %s: %w", t.cfg.Binary, err)
	}
	exited := make(chan struct{})
	t.mu.Lock()
	t.cmd, t.exited = cmd, exited
	t.mu.Unlock()
	t.log.Info("started tor", zap.Int("pid", cmd.Process.Pid), zap.String("data_dir", dir))
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		t.copyLog(out)
	}()
	go func() {
		<-logDone // Wait closes the pipe: read it to the end first
		err := cmd.Wait()
		t.log.Debug("tor exited", zap.Int("pid", cmd.Process.Pid), zap.Error(err))
		close(exited)
	}()
	return nil
}

// copyLog forwards tor's log lines: warnings and errors at warn, the rest
// at debug (bootstrap progress is logged from the control port).
func (t *Tor) copyLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "[warn]"), strings.Contains(line, "[err]"):
			t.log.Warn("tor: " + line)
		default:
			t.log.Debug("tor: " + line)
		}
	}
}

// waitReady polls (bounded by StartTimeout) until the control port accepts
// a connection, or tor exits.
func (t *Tor) waitReady(ctx context.Context) error {
	t.mu.Lock()
	exited := t.exited
	t.mu.Unlock()
	deadline := time.NewTimer(t.cfg.StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if !t.unix {
			t.readPortFile()
		}
		if addr := t.ControlAddr(); addr != "" && dialOK(addr) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return ErrExited
		case <-deadline.C:
			return fmt.Errorf("%w within %v", ErrNotReady, t.cfg.StartTimeout)
		case <-tick.C:
		}
	}
}

// readPortFile reads ControlPortWriteToFile's "PORT=127.0.0.1:N".
func (t *Tor) readPortFile() {
	b, err := os.ReadFile(filepath.Join(t.cfg.DataDir, "control.port"))
	if err != nil {
		return
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PORT="); ok {
			t.mu.Lock()
			t.ctlAddr = v
			t.mu.Unlock()
			return
		}
	}
}

func dialOK(addr string) bool {
	network, address := endpoint.Split(addr)
	c, err := net.DialTimeout(network, address, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// supervise restarts tor when it dies, with exponential backoff reset
// after a run of a minute.
func (t *Tor) supervise() {
	defer t.wg.Done()
	backoff := t.cfg.RestartMin
	for {
		t.mu.Lock()
		exited := t.exited
		started := time.Now()
		t.mu.Unlock()
		select {
		case <-t.stop:
			return
		case <-exited:
		}
		if time.Since(started) > time.Minute {
			backoff = t.cfg.RestartMin
		}
		t.log.Warn("managed tor died; restarting", zap.Duration("after", backoff))
		timer := time.NewTimer(backoff)
		select {
		case <-t.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		backoff = min(backoff*2, t.cfg.RestartMax)
		if !t.unix {
			t.mu.Lock()
			t.ctlAddr = ""
			t.mu.Unlock()
		}
		if err := t.spawn(); err != nil {
			t.log.Error("restarting tor failed", zap.Error(err))
			continue
		}
		t.mu.Lock()
		t.restarts++
		t.mu.Unlock()
	}
}

// Stop stops supervising, terminates tor (SIGTERM, then SIGKILL after 5s)
// and waits for it.
func (t *Tor) Stop() {
	t.mu.Lock()
	if t.stopping {
		t.mu.Unlock()
		return
	}
	t.stopping = true
	t.mu.Unlock()
	close(t.stop)
	t.wg.Wait()
	t.kill()
}

func (t *Tor) kill() {
	t.mu.Lock()
	cmd, exited := t.cmd, t.exited
	t.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	// SIGINT twice is tor's immediate clean exit; SIGTERM exits at once
	// for a client as well.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-exited
	}
	t.log.Info("stopped tor", zap.String("pid", strconv.Itoa(cmd.Process.Pid)))
}

func isClosed(ch chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
