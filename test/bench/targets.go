package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"socksd/internal/endpoint"
)

// spec describes one way of reaching the sink.
type spec struct {
	name  string
	proto Proto
	// front is true for socksd: it is measured as a front end chained to
	// the upstream peer named by upstream.
	upstream string
	// idleMax caps N for the idle test (0 = the run's N); see run.
	idleMax int
	start   func(b *bench) (*running, error)
}

// running is a started target. pid is the process whose tree is measured
// (0 for direct TCP); procs are stopped in reverse order.
type running struct {
	addr  string
	pid   int
	procs []*exec.Cmd
	dirs  []string
}

func (r *running) cpu() float64 {
	if r.pid == 0 {
		return 0
	}
	return cpuOf(r.pid)
}

// cpuAll is the CPU time of every process taking part: this load
// generator and its descendants — the sink and every proxy process
// started for the target (for socksd>U both socksd and U).
func cpuAll() float64 { return cpuOf(os.Getpid()) }

func (r *running) usage() (procUsage, error) {
	if r.pid == 0 {
		return procUsage{}, nil
	}
	return usageOf(r.pid)
}

// stop sends SIGTERM to each process group we started, then SIGKILL after
// a bounded wait.
func (r *running) stop() {
	for i := len(r.procs) - 1; i >= 0; i-- {
		stopCmd(r.procs[i])
	}
	for _, d := range r.dirs {
		os.RemoveAll(d)
	}
}

func stopCmd(c *exec.Cmd) {
	if c.Process == nil {
		return
	}
	pgid := c.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
}

// startCmd starts a process in its own process group (so dante's children
// are stopped with it), stdout/stderr to a log file in dir. It dies with
// the load tool (Pdeathsig): run.sh's time limit kills the tool, and no
// peer may outlive it.
func startCmd(dir, logName string, name string, args ...string) (*exec.Cmd, error) {
	c := exec.Command(name, args...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	f, err := os.Create(filepath.Join(dir, logName+".log"))
	if err != nil {
		return nil, err
	}
	c.Stdout, c.Stderr = f, f
	if err := c.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	f.Close()
	return c, nil
}

// waitListening polls until addr ("host:port" or "unix:/path") accepts a
// connection (bounded), failing early when the process died (gone or a
// zombie).
func waitListening(addr string, c *exec.Cmd) error {
	network, address := endpoint.Split(addr)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		nc, err := net.DialTimeout(network, address, time.Second)
		if err == nil {
			nc.Close()
			return nil
		}
		if f, err := statFields(c.Process.Pid); err != nil || f[0] == "Z" {
			return fmt.Errorf("%s exited before listening on %s", c.Path, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening on %s after 15s", c.Path, addr)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startProc starts one proxy process listening on a fresh loopback port.
func (b *bench) startProc(name string, argv func(addr, dir string) ([]string, error)) (*running, error) {
	return b.startProcOn(name, false, argv)
}

// startProcOn is startProc; with unix the process listens on a Unix
// socket in its directory instead (addr "unix:/path").
func (b *bench) startProcOn(name string, unix bool, argv func(addr, dir string) ([]string, error)) (*running, error) {
	dir, err := os.MkdirTemp("", "socksbench-"+name+"-")
	if err != nil {
		return nil, err
	}
	addr := "unix:" + filepath.Join(dir, name+".sock")
	if !unix {
		addr, err = freeAddr()
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args, err := argv(addr, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c, err := startCmd(dir, name, args[0], args[1:]...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r := &running{addr: addr, pid: c.Process.Pid, procs: []*exec.Cmd{c}, dirs: []string{dir}}
	if err := waitListening(addr, c); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, name+".log"))
		r.stop()
		return nil, fmt.Errorf("%w; log: %.400s", err, log)
	}
	return r, nil
}

func splitHostPort(addr string) (string, int) {
	h, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return h, n
}

// danteConf is a minimal loopback-only dante-server 1.4 configuration:
// no authentication, root for the privileged bits, nobody otherwise.
func danteConf(addr string) string {
	h, p := splitHostPort(addr)
	return fmt.Sprintf(`logoutput: stderr
internal: %s port = %d
external: 127.0.0.1
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 command: connect }
`, h, p)
}

// socksdConf chains socksd to upstream with everything else off. The
// bench sink lives on 127.0.0.1, so reject_internal must be off.
func socksdConf(addr, upstream, dir string) string {
	return fmt.Sprintf(`state_dir = %q
[socks]
listen = [%q]
max_connections = 19000
reject_internal = false
[tor]
socks = %q
control = "none"
launch = "never"
[log]
level = "error"
[metrics]
listen = ""
`, filepath.Join(dir, "state"), addr, upstream)
}

func (b *bench) specs() []spec {
	goPeerOn := func(name string, unix bool) func(*bench) (*running, error) {
		return func(b *bench) (*running, error) {
			return b.startProcOn(name, unix, func(addr, _ string) ([]string, error) {
				return []string{filepath.Join(b.peersBin, name), "-listen", addr}, nil
			})
		}
	}
	goPeer := func(name string) func(*bench) (*running, error) { return goPeerOn(name, false) }
	specs := []spec{
		{name: "direct", proto: ProtoDirect, start: func(*bench) (*running, error) { return &running{}, nil }},
		{name: "microsocks", proto: ProtoSOCKS5, start: func(b *bench) (*running, error) {
			return b.startProc("microsocks", func(addr, _ string) ([]string, error) {
				h, p := splitHostPort(addr)
				return []string{b.microsocks, "-i", h, "-p", strconv.Itoa(p)}, nil
			})
		}},
		{name: "dante", proto: ProtoSOCKS5, idleMax: b.danteIdleMax, start: func(b *bench) (*running, error) {
			return b.startProc("dante", func(addr, dir string) ([]string, error) {
				conf := filepath.Join(dir, "sockd.conf")
				if err := os.WriteFile(conf, []byte(danteConf(addr)), 0o644); err != nil {
					return nil, err
				}
				return []string{b.danted, "-f", conf, "-p", filepath.Join(dir, "sockd.pid")}, nil
			})
		}},
		{name: "armon", proto: ProtoSOCKS5, start: goPeer("armon")},
		{name: "thingsgo", proto: ProtoSOCKS5, start: goPeer("thingsgo")},
	}
	if b.socksd != "" {
		for _, u := range b.upstreams {
			specs = append(specs, spec{name: "socksd>" + u, proto: ProtoSOCKS5, upstream: u, start: b.startSocksd(b.socksd, u, goPeer(u))})
		}
	}
	if b.socksdB != "" {
		// A candidate build measured in the same run, for A/B tests of a change.
		for _, u := range b.upstreams {
			specs = append(specs, spec{name: "socksdB>" + u, proto: ProtoSOCKS5, upstream: u, start: b.startSocksd(b.socksdB, u, goPeer(u))})
		}
	}
	if b.unixUpstream {
		// socksd reaching U over a Unix socket, as it can reach a Tor
		// SocksPort configured "unix:/path": the hop skips the TCP stack.
		for _, bin := range []struct{ prefix, path string }{{"socksd", b.socksd}, {"socksdB", b.socksdB}} {
			if bin.path == "" {
				continue
			}
			for _, u := range b.upstreams {
				specs = append(specs, spec{name: bin.prefix + ">" + u + "/unix", proto: ProtoSOCKS5, upstream: u, start: b.startSocksd(bin.path, u, goPeerOn(u, true))})
			}
		}
	}
	return specs
}

// startSocksd starts upstream U, then socksd chained to it; socksd alone
// is measured.
func (b *bench) startSocksd(binary, uname string, startU func(*bench) (*running, error)) func(*bench) (*running, error) {
	return func(b *bench) (*running, error) {
		u, err := startU(b)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", uname, err)
		}
		r, err := b.startProc("socksd", func(addr, dir string) ([]string, error) {
			conf := filepath.Join(dir, "socksd.toml")
			if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
				return nil, err
			}
			if err := os.WriteFile(conf, []byte(socksdConf(addr, u.addr, dir)), 0o644); err != nil {
				return nil, err
			}
			args := []string{binary, "-config", conf}
			return args, nil
		})
		if err != nil {
			u.stop()
			return nil, err
		}
		// Stop socksd first, then U.
		r.procs = append(u.procs, r.procs...)
		r.dirs = append(r.dirs, u.dirs...)
		return r, nil
	}
}
