package isolation

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func selfExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// acceptOne listens on loopback and returns the listener and a channel
// delivering the first accepted connection.
func acceptOne(t *testing.T, network, addr string) (net.Listener, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ln, ch
}

func accepted(t *testing.T, ch <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("accept failed")
		}
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
	}
	return nil
}

func addrPorts(t *testing.T, c net.Conn) (local, remote netip.AddrPort) {
	t.Helper()
	return c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
}

// TestLookupTCPOwnerSelf: a loopback connection from this very process is
// traced back to this process's executable and uid, over IPv4 and IPv6.
func TestLookupTCPOwnerSelf(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		t.Run(tc.network, func(t *testing.T) {
			ln, ch := acceptOne(t, tc.network, tc.addr)
			client, err := net.Dial(tc.network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			srv := accepted(t, ch)
			local, remote := addrPorts(t, srv)
			app, err := LookupTCPOwner(local, remote)
			if err != nil {
				t.Fatalf("LookupTCPOwner(%v, %v): %v", local, remote, err)
			}
			want := App{Known: true, UID: uint32(os.Getuid()), Exe: selfExe(t)}
			if app != want {
				t.Fatalf("app = %+v, want %+v", app, want)
			}
		})
	}
}

// TestLookupTCPOwnerChild: a connection from another program (bash's
// /dev/tcp) is attributed to that program, not to us.
func TestLookupTCPOwnerChild(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	wantExe, err := filepath.EvalSymlinks(bash)
	if err != nil {
		t.Fatal(err)
	}
	ln, ch := acceptOne(t, "tcp4", "127.0.0.1:0")
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	// The child connects, then blocks reading until we close the
	// connection, so it stays alive while we look it up.
	cmd := exec.Command(bash, "-c", `exec 3<>/dev/tcp/127.0.0.1/`+port+`; read -r _ <&3 || true`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	srv := accepted(t, ch)
	local, remote := addrPorts(t, srv)
	app, lookupErr := LookupTCPOwner(local, remote)
	srv.Close() // lets the child's read return
	if err := cmd.Wait(); err != nil {
		t.Errorf("child: %v", err)
	}
	if lookupErr != nil {
		t.Fatalf("LookupTCPOwner: %v", lookupErr)
	}
	if app.Exe != wantExe || !app.Known || app.UID != uint32(os.Getuid()) {
		t.Fatalf("app = %+v, want Known, uid %d, exe %s", app, os.Getuid(), wantExe)
	}
	if app.Exe == selfExe(t) {
		t.Fatal("child attributed to the test binary")
	}
	// The two programs must end up with different keys under client_app.
	p := Policy{Fields: ClientApp}
	self := App{Known: true, UID: uint32(os.Getuid()), Exe: selfExe(t)}
	if p.Key(Input{App: app}) == p.Key(Input{App: self}) {
		t.Fatal("bash and the test binary share a key")
	}
}

func TestLookupTCPOwnerGone(t *testing.T) {
	ln, ch := acceptOne(t, "tcp4", "127.0.0.1:0")
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := accepted(t, ch)
	local, _ := addrPorts(t, srv)
	client.Close()
	// A remote port nobody uses: the row cannot exist.
	_, err = LookupTCPOwner(local, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 1))
	if !errors.Is(err, ErrSocketNotFound) {
		t.Fatalf("err = %v, want ErrSocketNotFound", err)
	}
}

func unixPair(t *testing.T) (*net.UnixListener, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, path
}

func TestPeerCredSelf(t *testing.T) {
	ln, path := unixPair(t)
	client, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	srv, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	app, err := PeerCred(srv)
	if err != nil {
		t.Fatal(err)
	}
	want := App{Known: true, UID: uint32(os.Getuid()), Exe: selfExe(t)}
	if app != want {
		t.Fatalf("app = %+v, want %+v", app, want)
	}
	// With the executable hidden (a procfs without our pid) the uid is
	// still reported but the app is unknown.
	app, err = Proc{Root: t.TempDir()}.PeerCred(srv)
	if !errors.Is(err, ErrOwnerNotFound) || app.Known || app.UID != uint32(os.Getuid()) {
		t.Fatalf("hidden exe: app = %+v, err = %v", app, err)
	}
}

// TestPeerCredChild: another program connecting over a unix socket is
// reported with its own executable.
func TestPeerCredChild(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	ln, path := unixPair(t)
	cmd := exec.Command(py, "-c", "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.recv(1)", path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill() // only if the test failed before closing
		_ = cmd.Wait()
	}()
	if err := ln.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	srv, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	app, err := PeerCred(srv)
	srv.Close()
	_, _ = bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !app.Known || app.Exe == selfExe(t) || !strings.Contains(filepath.Base(app.Exe), "python") {
		t.Fatalf("app = %+v, want a python executable", app)
	}
}

func TestLookupConn(t *testing.T) {
	want := App{Known: true, UID: uint32(os.Getuid()), Exe: selfExe(t)}

	ln, ch := acceptOne(t, "tcp4", "127.0.0.1:0")
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if app, err := LookupConn(accepted(t, ch)); err != nil || app != want {
		t.Errorf("tcp: app = %+v, err = %v; want %+v", app, err, want)
	}

	uln, path := unixPair(t)
	uc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	srv, err := uln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if app, err := LookupConn(srv); err != nil || app != want {
		t.Errorf("unix: app = %+v, err = %v; want %+v", app, err, want)
	}

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := LookupConn(a); !errors.Is(err, ErrUnsupported) {
		t.Errorf("pipe: err = %v, want ErrUnsupported", err)
	}
}

// BenchmarkLookupTCPOwner measures the /proc search per accepted
// connection on this machine (it grows with the number of open fds).
func BenchmarkLookupTCPOwner(b *testing.B) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	srv, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	local := srv.LocalAddr().(*net.TCPAddr).AddrPort()
	remote := srv.RemoteAddr().(*net.TCPAddr).AddrPort()
	for b.Loop() {
		if _, err := LookupTCPOwner(local, remote); err != nil {
			b.Fatal(err)
		}
	}
}
