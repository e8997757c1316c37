package systemd

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// childEnv selects the role of a re-executed test binary.
const childEnv = "SOCKSD_SYSTEMD_TEST_CHILD"

// TestSocketActivationChild is not a test on its own: it is the body of the
// child process that TestSocketActivation starts the way systemd would,
// with sockets at fds 3, 4 and 5 and LISTEN_PID set to the child's own pid.
func TestSocketActivationChild(t *testing.T) {
	switch os.Getenv(childEnv) {
	case "serve":
	case "notsocket":
		if s, err := Sockets(); err == nil {
			t.Fatalf("a regular file as fd 3 was accepted: %+v", s)
		}
		return
	default:
		t.Skip("child process body; run by TestSocketActivation")
	}
	socks, err := Sockets()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%q still set", k, v)
		}
	}
	if again, err := Sockets(); again != nil || err != nil {
		t.Errorf("second call: %v, %v", again, err)
	}
	if len(socks) != 3 {
		t.Fatalf("got %d sockets, want 3", len(socks))
	}
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	for i, want := range []string{"socks", "dns", "unix"} {
		if socks[i].Name != want {
			t.Errorf("socket %d name %q, want %q", i, socks[i].Name, want)
		}
	}
	if socks[0].Listener == nil || socks[1].PacketConn == nil || socks[2].Listener == nil {
		t.Fatalf("wrong kinds: %+v", socks)
	}
	// Serve one exchange on each socket: echo the line prefixed with the
	// socket's name, so the parent knows which fd answered.
	for _, i := range []int{0, 2} {
		c, err := socks[i].Listener.Accept()
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(socks[i].Name + ":" + line)); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	buf := make([]byte, 512)
	n, from, err := socks[1].PacketConn.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := socks[1].PacketConn.WriteTo(append([]byte("dns:"), buf[:n]...), from); err != nil {
		t.Fatal(err)
	}
}

// activate starts this test binary as a socket-activated child with files
// as fds 3.., the way systemd does: LISTEN_PID must be the child's own pid,
// which only exists after fork, so a shell sets it and execs.
func activate(t *testing.T, role, names string, files ...*os.File) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`,
		os.Args[0], "-test.run=^TestSocketActivationChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+role, "LISTEN_FDNAMES="+names,
		"LISTEN_FDS="+strconv.Itoa(len(files)), "NOTIFY_SOCKET=", "WATCHDOG_USEC=")
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = &strings.Builder{}, &strings.Builder{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func wait(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s%s", err, cmd.Stdout, cmd.Stderr)
	}
	if !strings.Contains(cmd.Stdout.(*strings.Builder).String(), "--- PASS: TestSocketActivationChild") {
		t.Fatalf("child did not run its body:\n%s", cmd.Stdout)
	}
}

// TestSocketActivation: a TCP listener, a UDP socket and a unix listener
// handed over as systemd would are served by the child through Sockets.
func TestSocketActivation(t *testing.T) {
	tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	path := filepath.Join(t.TempDir(), "socks.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	var files []*os.File
	for _, f := range []interface{ File() (*os.File, error) }{tl, uc, ul} {
		fl, err := f.File()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fl)
	}
	cmd := activate(t, "serve", "socks:dns:unix", files...)
	// The child holds the sockets now; the parent keeps its copies open
	// only so the addresses stay bound, and never accepts on them.
	for _, f := range files {
		f.Close()
	}
	deadline := time.Now().Add(30 * time.Second)

	for _, tc := range []struct{ network, addr, want string }{
		{"tcp", tl.Addr().String(), "socks:ping\n"},
		{"unix", path, "unix:ping\n"},
	} {
		c, err := net.Dial(tc.network, tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(deadline)
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		got, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || got != tc.want {
			t.Fatalf("%s: got %q, %v; want %q", tc.network, got, err, tc.want)
		}
	}

	dc, err := net.Dial("udp", uc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	dc.SetDeadline(deadline)
	if _, err := dc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := dc.Read(buf)
	if err != nil || string(buf[:n]) != "dns:ping" {
		t.Fatalf("udp: got %q, %v", buf[:n], err)
	}
	wait(t, cmd)
}

func TestSocketActivationNotASocket(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "plain"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wait(t, activate(t, "notsocket", "socks", f))
}

// TestSocketsNotForUs: variables meant for another pid are left alone, and
// no fd is touched.
func TestSocketsNotForUs(t *testing.T) {
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_FDNAMES", "socks")
	s, err := Sockets()
	if s != nil || err != nil {
		t.Fatalf("got %v, %v", s, err)
	}
	if os.Getenv("LISTEN_FDS") != "1" {
		t.Fatal("environment of another process was unset")
	}
	t.Setenv("LISTEN_PID", "")
	if s, err := Sockets(); s != nil || err != nil {
		t.Fatalf("unset: got %v, %v", s, err)
	}
}
