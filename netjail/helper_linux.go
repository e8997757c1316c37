package netjail

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"socksd/chain"
)

// helperArg is argv[1] of the helper: the binary re-executed inside the
// namespaces recognises itself by it (IsHelper).
const helperArg = "socksd-netjail-helper"

// helperConfigFD is the descriptor on which the helper reads its
// helperConfig (the first of exec.Cmd.ExtraFiles).
const helperConfigFD = 3

// Exit statuses of a run that failed before the program ran, as env(1)
// and chroot(1) use them.
const (
	ExitSetup       = 125 // socksd run itself failed
	ExitCannotExec  = 126 // the program exists but cannot be run
	ExitNotFound    = 127 // the program was not found
	exitSignalFloor = 128 // 128+N: the program was killed by signal N
)

// helperConfig is what the outer process tells the helper.
type helperConfig struct {
	Socket     string   // socksd's Unix socket
	Token      string   // the run's isolation token
	Argv       []string // the program and its arguments
	UserNS     bool     // the helper is in a user namespace of its own
	UID, GID   int      // the caller's ids, mapped back for the program
	Foreground bool     // give the program the terminal's foreground
}

// forwardedSignals go from socksd run to the helper and from the helper to
// the program.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP,
	syscall.SIGWINCH, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// IsHelper reports whether this process is a run's helper, re-executed
// inside the namespaces. A main that calls Run must check it first and
// then call Helper.
func IsHelper() bool { return len(os.Args) > 1 && os.Args[1] == helperArg }

// Helper is the helper's main: it sets up the namespaces, serves DNS and
// the forwarder, runs the program and returns its exit status.
func Helper() int {
	warn := func(msg string) { fmt.Fprintf(os.Stderr, "socksd run: %s\n", msg) }
	f := os.NewFile(helperConfigFD, "netjail-config")
	var cfg helperConfig
	err := json.NewDecoder(f).Decode(&cfg)
	f.Close()
	if err != nil || len(cfg.Argv) == 0 {
		warn(fmt.Sprintf("helper: bad configuration (%v)", err))
		return ExitSetup
	}
	h := &helper{cfg: cfg, warn: warn}
	if err := h.setup(); err != nil {
		warn(err.Error())
		return ExitSetup
	}
	return h.runProgram()
}

type helper struct {
	cfg  helperConfig
	warn func(string)
	fwd  *forwarder
}

func (h *helper) setup() error {
	// Mounts made here must stay here, whatever the host's propagation.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := setupLoopback(); err != nil {
		return err
	}
	ln4, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	port := ln4.Addr().(*net.TCPAddr).Port
	lns := []*net.TCPListener{ln4}
	// IPv6 may be off (ipv6.disable=1); IPv6 sockets then fail by themselves.
	if ln6, err := net.ListenTCP("tcp6", &net.TCPAddr{IP: net.IPv6loopback, Port: port}); err == nil {
		lns = append(lns, ln6)
	}
	if err := installRules(uint16(port)); err != nil {
		return err
	}
	names := newTable()
	if err := serveDNS(names, len(lns) > 1); err != nil {
		return err
	}
	if err := replaceFiles(names, onionNames(h.cfg.Argv)); err != nil {
		return err
	}
	if err := hideResolverSockets(); err != nil {
		return err
	}
	// A /proc of the new PID namespace, so the program sees its own
	// processes. Not essential: without it /proc still works for the
	// program's own PIDs.
	unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")

	h.fwd = &forwarder{up: chain.New("unix:"+h.cfg.Socket, nil), names: names, key: runKey(h.cfg.Token), warn: h.warn}
	if c, err := net.Dial("unix", h.cfg.Socket); err != nil {
		h.fwd.down.Store(true)
		h.warn(fmt.Sprintf("cannot reach socksd (%v): the program's connections will fail", err))
	} else {
		c.Close()
	}
	for _, ln := range lns {
		go h.fwd.serve(ln)
	}
	return nil
}

// serveDNS starts the resolver on port 53 of 127.0.0.1 (and ::1), UDP and
// TCP.
func serveDNS(t *table, v6 bool) error {
	addrs := []string{"127.0.0.1:53"}
	if v6 {
		addrs = append(addrs, "[::1]:53")
	}
	h := resolver{t: t}
	for _, a := range addrs {
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			return fmt.Errorf("resolver: %w", err)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("resolver: %w", err)
		}
		go (&dns.Server{PacketConn: pc, Handler: h}).ActivateAndServe()
		go (&dns.Server{Listener: ln, Handler: h}).ActivateAndServe()
	}
	return nil
}

// replaceFiles puts the run's own resolv.conf, hosts and nsswitch.conf over
// the host's, in this mount namespace only. Each of onions gets its
// virtual addresses in hosts.
func replaceFiles(t *table, onions []string) error {
	hostname, _ := os.Hostname()
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if hostname != "" && hostname != "localhost" {
		// The machine's own name stays local: asked through the resolver
		// it would become a Tor stream to the name, and tell an exit.
		hosts += "127.0.1.1\t" + hostname + "\n"
	}
	for _, o := range onions {
		for _, v6 := range []bool{false, true} {
			a, err := t.addr(o, v6)
			if err != nil {
				return err
			}
			hosts += a.String() + "\t" + o + "\n"
		}
	}
	files := map[string]string{
		"/etc/resolv.conf": "# socksd run: names are resolved by the Tor exit\nnameserver 127.0.0.1\noptions edns0\n",
		"/etc/hosts":       hosts,
	}
	// nsswitch.conf keeps every database but hosts: passwd, group and the
	// rest must keep working, while hosts must not reach a local daemon
	// (nss-resolve, nss-mdns, nscd) that would resolve outside Tor.
	if b, err := os.ReadFile("/etc/nsswitch.conf"); err == nil {
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), "hosts:") {
				lines[i] = "hosts: files dns"
			}
		}
		files["/etc/nsswitch.conf"] = strings.Join(lines, "\n")
	}
	m, err := newFileMounts()
	if err != nil {
		return err
	}
	defer m.close()
	for path, content := range files {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			// Without resolv.conf glibc and Go ask 127.0.0.1:53, our
			// resolver; without hosts or nsswitch.conf there is nothing to
			// hide.
			continue
		}
		if err := m.put(path, content); err != nil {
			return fmt.Errorf("replacing %s: %w", path, err)
		}
	}
	return nil
}

// fileMounts creates the replacement files on a private tmpfs that is
// never attached anywhere (fsopen/fsmount, Linux 5.2): each file is then
// cloned as a mount of its own and moved over its target, so nothing is
// ever written to disk and nothing is left when the namespace goes.
type fileMounts struct{ fs int }

func newFileMounts() (*fileMounts, error) {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fsopen tmpfs: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "mode", "0755"); err != nil {
		return nil, err
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, err
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fsmount: %w", err)
	}
	return &fileMounts{fs: mfd}, nil
}

func (m *fileMounts) close() { unix.Close(m.fs) }

// put mounts a read-only file holding content over path (which must
// exist), in this mount namespace only.
func (m *fileMounts) put(path, content string) error {
	name := strings.ReplaceAll(strings.TrimPrefix(path, "/"), "/", "_")
	fd, err := unix.Openat(m.fs, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	_, err = f.WriteString(content)
	f.Close()
	if err != nil {
		return err
	}
	tree, err := unix.OpenTree(m.fs, name, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, path, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	// Read-only, so the program cannot point its resolver elsewhere.
	return unix.Mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
}

// resolverSockets are local daemons' sockets that resolve names for
// whoever asks, outside Tor: nscd (glibc consults it before nsswitch) and
// systemd-resolved's Varlink interface.
var resolverSockets = []string{
	"/var/run/nscd/socket",
	"/run/nscd/socket",
	"/run/systemd/resolve/io.systemd.Resolve",
}

// hideResolverSockets mounts /dev/null over each that exists: connecting
// to it then fails (ECONNREFUSED) and the caller falls back to nsswitch,
// which leads to our resolver.
func hideResolverSockets() error {
	for _, p := range resolverSockets {
		if fi, err := os.Stat(p); err != nil || fi.Mode()&os.ModeSocket == 0 {
			continue
		}
		if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("hiding %s: %w", p, err)
		}
	}
	return nil
}

// runProgram starts the program, forwards signals to it and reaps every
// process of the PID namespace until the program exits; then it returns
// the program's status. Returning ends the helper, the namespace's init:
// the kernel then kills whatever the program left running.
func (h *helper) runProgram() int {
	argv := h.cfg.Argv
	path, err := exec.LookPath(argv[0])
	if err != nil {
		h.warn(fmt.Sprintf("%s: %v", argv[0], err))
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return ExitNotFound
		}
		return ExitCannotExec
	}
	attr := &syscall.SysProcAttr{Setpgid: true, Foreground: h.cfg.Foreground, Ctty: 0}
	if h.cfg.UserNS {
		// A user namespace inside ours that maps the caller's ids back:
		// the program runs as the user it was started by, with no
		// capability over our network namespace, so it cannot change the
		// rules, the routes or the mounts.
		attr.Cloneflags = unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: h.cfg.UID, HostID: 0, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: h.cfg.GID, HostID: 0, Size: 1}}
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	p, err := os.StartProcess(path, argv, &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   attr,
	})
	if err != nil {
		h.warn(fmt.Sprintf("%s: %v", argv[0], err))
		return ExitCannotExec
	}
	go func() {
		for s := range sigs {
			p.Signal(s)
		}
	}()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WUNTRACED, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			h.warn(fmt.Sprintf("waiting for the program: %v", err))
			return ExitSetup
		}
		if pid != p.Pid {
			continue // an orphan the namespace's init inherited
		}
		switch {
		case ws.Stopped() && ws.StopSignal() == syscall.SIGTSTP:
			// Ctrl-Z stopped the program's process group, but the shell
			// that started socksd run waits for socksd run, which is
			// not stopped: the terminal would stay with a stopped
			// group. Job control is not forwarded, so the program goes
			// on, and the user is told why.
			h.warn("job control (Ctrl-Z) is not supported inside socksd run; the program continues")
			unix.Kill(-p.Pid, unix.SIGCONT)
			continue
		case ws.Exited():
			return ws.ExitStatus()
		case ws.Signaled():
			return exitSignalFloor + int(ws.Signal())
		}
	}
}
