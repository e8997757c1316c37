package deploy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"socksd/internal/sockstest"
)

// socksdPkg is the daemon under test; SOCKSD_TEST_PKG overrides it (to
// try a patched copy of cmd/socksd).
func socksdPkg() string {
	if p := os.Getenv("SOCKSD_TEST_PKG"); p != "" {
		return p
	}
	return "../cmd/socksd"
}

// TestSocketActivatedSocksd proves the unit's two systemd
// protocols, run against the real socksd binary: it is started the way
// systemd starts it from socksd.socket (a listening socket as fd 3,
// LISTEN_FDS=1, LISTEN_FDNAMES=socks, LISTEN_PID = its own pid) with a
// NOTIFY_SOCKET the test owns. socksd must send READY=1, serve a SOCKS5
// CONNECT through the inherited socket (it cannot have bound the address
// itself: the test still holds it), and exit cleanly on SIGTERM.
//
// The upstream is the sockstest fake SocksPort, so no tor is needed.
func TestSocketActivatedSocksd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds socksd")
	}
	goBin := needTool(t, "go")
	deps, err := exec.Command(goBin, "list", "-deps", socksdPkg()).Output()
	if err != nil {
		t.Skipf("cmd/socksd does not build yet: %v", err)
	}
	if !bytes.Contains(deps, []byte("socksd/internal/systemd\n")) {
		t.Skip("cmd/socksd does not use internal/systemd yet (wiring pending)")
	}
	bin := filepath.Join(t.TempDir(), "socksd")
	if out, err := exec.Command(goBin, "build", "-o", bin, socksdPkg()).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	up := &sockstest.Server{
		Handle: func(r *sockstest.Request, c net.Conn, rd *bufio.Reader) {
			if sockstest.WriteReply(c, 0, nil) == nil {
				io.WriteString(c, "upstream saw "+r.Host+"\n")
			}
		},
	}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer up.Close()

	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // held open: socksd can only serve the inherited copy
	lf, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()

	dir := t.TempDir()
	notifyPath := filepath.Join(dir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()

	cfg := filepath.Join(dir, "socksd.toml")
	writeFile(t, cfg, []byte(`state_dir = "`+dir+`"
[socks]
listen = ["`+ln.Addr().String()+`"]
[tor]
control = "none"
socks = "`+up.Addr()+`"
launch = "never"
[metrics]
listen = ""
`), 0o644)

	var stderr strings.Builder
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin, "-config", cfg)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=socks",
		"NOTIFY_SOCKET="+notifyPath, "WATCHDOG_USEC=", "WATCHDOG_PID=")
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when socksd is gone; waitErr is then its status.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill() // the child we started, by pid
			<-exited
		}
	}()

	// Notifications until READY=1 (STATUS= lines may come first).
	deadline := time.Now().Add(60 * time.Second)
	var msgs []string
	buf := make([]byte, 4096)
	for !hasLine(msgs, "READY=1") {
		notify.SetReadDeadline(deadline)
		n, _, err := notify.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("no READY=1 (got %q): %v\nsocksd stderr:\n%s", msgs, err, stderr.String())
		}
		msgs = append(msgs, string(buf[:n]))
	}

	d, err := proxy.SOCKS5("tcp", ln.Addr().String(), nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Dial("tcp", "example.com:80")
	if err != nil {
		t.Fatalf("SOCKS5 through the inherited socket: %v\nsocksd stderr:\n%s", err, stderr.String())
	}
	c.SetDeadline(deadline)
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || line != "upstream saw example.com\n" {
		t.Fatalf("relay: %q, %v", line, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("socksd exit: %v\n%s", waitErr, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("socksd did not exit on SIGTERM")
	}
	// Whatever socksd said while stopping is queued now, so a short
	// deadline only ends the loop. (A deadline already in the past would
	// fail the read without looking at the queue.)
	notify.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	for {
		n, _, err := notify.ReadFromUnix(buf)
		if err != nil {
			break
		}
		msgs = append(msgs, string(buf[:n]))
	}
	t.Logf("notifications: %q", msgs)
	if !hasLine(msgs, "STOPPING=1") {
		t.Errorf("no STOPPING=1 on SIGTERM: %q", msgs)
	}
}

func hasLine(msgs []string, line string) bool {
	for _, m := range msgs {
		for _, l := range strings.Split(m, "\n") {
			if l == line {
				return true
			}
		}
	}
	return false
}
