package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"socksd/internal/daemontest"
	"socksd/internal/sockstest"
)

// notifySocket is a NOTIFY_SOCKET the test owns: it collects what socksd
// tells systemd.
type notifySocket struct {
	path string
	c    *net.UnixConn
	msgs []string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifySocket{path: path, c: c}
}

// waitFor reads messages until one holds the line want (prefix match when
// want ends in '*'), up to a bounded deadline.
func (n *notifySocket) waitFor(t *testing.T, want string, d *daemontest.Process) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	buf := make([]byte, 4096)
	for !n.has(want) {
		n.c.SetReadDeadline(deadline)
		k, _, err := n.c.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("no %q from socksd (got %q): %v\n%s", want, n.msgs, err, d.Log())
		}
		n.msgs = append(n.msgs, string(buf[:k]))
	}
}

func (n *notifySocket) has(want string) bool {
	prefix, isPrefix := strings.CutSuffix(want, "*")
	for _, m := range n.msgs {
		for _, l := range strings.Split(m, "\n") {
			if l == want || isPrefix && strings.HasPrefix(l, prefix) {
				return true
			}
		}
	}
	return false
}

// TestDaemonSocketActivation starts socksd as systemd would from
// socksd.socket with WatchdogSec= set: the SOCKS listener is inherited as
// fd 3 (LISTEN_FDS/LISTEN_PID, the address is still held by the test so
// socksd cannot have bound it itself), and NOTIFY_SOCKET is a unixgram
// socket the test reads. socksd must say STATUS=, READY=1 and WATCHDOG=1,
// serve through the inherited socket, mark a SIGHUP reload with
// RELOADING=1 and READY=1, and say STOPPING=1 on SIGTERM.
func TestDaemonSocketActivation(t *testing.T) {
	up := &sockstest.Server{Handle: func(r *sockstest.Request, c net.Conn, _ *bufio.Reader) {
		if sockstest.WriteReply(c, 0, nil) == nil {
			io.WriteString(c, "upstream saw "+r.Host+"\n")
		}
	}}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	notify := newNotifySocket(t)

	cfg := filepath.Join(t.TempDir(), "socksd.toml")
	writeConfig(t, cfg, up.Addr(), "", ln.Addr().String())
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ WATCHDOG_PID=$$ exec "$0" "$@"`, os.Args[0], "-config", cfg)
	cmd.Env = []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=socks", "NOTIFY_SOCKET=" + notify.path, "WATCHDOG_USEC=1000000"}
	cmd.ExtraFiles = []*os.File{lf}
	d := startDaemonCmd(t, cmd)

	notify.waitFor(t, "READY=1", d)
	if !notify.has("STATUS=chaining to Tor's SocksPort " + up.Addr() + " (no control port)") {
		t.Errorf("no STATUS= line before READY=1: %q", notify.msgs)
	}
	notify.waitFor(t, "WATCHDOG=1", d)

	pd, _ := proxy.SOCKS5("tcp", ln.Addr().String(), nil, proxy.Direct)
	c, err := pd.Dial("tcp", "example.com:80")
	if err != nil {
		t.Fatalf("SOCKS5 through the inherited socket: %v\n%s", err, d.Log())
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || line != "upstream saw example.com\n" {
		t.Fatalf("relay: %q, %v", line, err)
	}

	notify.msgs = nil
	d.Signal(syscall.SIGHUP)
	notify.waitFor(t, "RELOADING=1", d)
	notify.waitFor(t, "READY=1", d)

	d.Signal(syscall.SIGTERM)
	notify.waitFor(t, "STOPPING=1", d)
	if code := d.Wait(t, exitWait); code != exitOK {
		t.Fatalf("exit %d\n%s", code, d.Log())
	}
	if strings.Contains(d.Log(), "no socks.listen or dns.listen entry") {
		t.Errorf("the inherited socket was not matched to its listener:\n%s", d.Log())
	}
}

// TestDaemonAdminEndpoints runs the metrics listener's admin endpoints in
// the real daemon without a control port: /healthz follows whether the
// SocksPort accepts connections, POST /newnym works (a new isolation
// epoch), the status page shows the mode.
func TestDaemonAdminEndpoints(t *testing.T) {
	up := &sockstest.Server{}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	cfg := filepath.Join(t.TempDir(), "socksd.toml")
	m := freePort(t)
	writeConfig(t, cfg, up.Addr(), m, freePort(t))
	d := startDaemon(t, cfg)
	d.WaitLog(t, 0, `"ready"`, logWait)

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + m + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 {
		t.Fatalf("/healthz with a live SocksPort: %d %q", code, body)
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, "SocksPort only (no control port)") || !strings.Contains(body, "Tor is usable") {
		t.Fatalf("status page: %d\n%s", code, body)
	}
	resp, err := http.Post("http://"+m+"/newnym", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "ok") {
		t.Fatalf("POST /newnym: %d %q", resp.StatusCode, body)
	}
	d.WaitLog(t, 0, "new isolation epoch", logWait)
	off := len(d.Log())
	d.Signal(syscall.SIGUSR1)
	d.WaitLog(t, off, "new isolation epoch", logWait) // SIGUSR1 renews the identity too

	up.Close() // the SocksPort goes away
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "does not accept connections") {
		t.Fatalf("/healthz with a dead SocksPort: %d %q", code, body)
	}
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(t, exitWait); code != exitOK {
		t.Fatalf("exit %d", code)
	}
}
