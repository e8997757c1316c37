package launch

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

func TestTorrc(t *testing.T) {
	dir := t.TempDir()
	tor := New(Config{DataDir: dir, OwnerPID: 4242, TorrcExtra: "TestingTorNetwork 1\nDirAuthority x"})
	rc := tor.Torrc()
	for _, want := range []string{
		"DataDirectory " + dir + "\n",
		"ControlPort unix:" + filepath.Join(dir, "control") + "\n",
		"CookieAuthentication 1\n",
		"SocksPort unix:" + filepath.Join(dir, "socks") + " ExtendedErrors\n",
		"__OwningControllerProcess 4242\n",
		"TestingTorNetwork 1\nDirAuthority x\n",
	} {
		if !strings.Contains(rc, want) {
			t.Errorf("torrc lacks %q:\n%s", want, rc)
		}
	}
	if tor.ControlAddr() != "unix:"+filepath.Join(dir, "control") || tor.CookieFile() != filepath.Join(dir, "control_auth_cookie") {
		t.Errorf("control %q cookie %q", tor.ControlAddr(), tor.CookieFile())
	}
}

// A data dir too long for sockaddr_un gets a TCP control port whose
// address tor writes to a file.
func TestTorrcLongPath(t *testing.T) {
	dir := "/tmp/" + strings.Repeat("d", 120)
	tor := New(Config{DataDir: dir})
	rc := tor.Torrc()
	if !strings.Contains(rc, "ControlPort 127.0.0.1:auto\nControlPortWriteToFile "+dir+"/control.port\n") ||
		!strings.Contains(rc, "SocksPort 127.0.0.1:auto ExtendedErrors\n") {
		t.Errorf("torrc:\n%s", rc)
	}
	if tor.ControlAddr() != "" {
		t.Errorf("control address %q before start", tor.ControlAddr())
	}
}

func TestStartErrors(t *testing.T) {
	tor := New(Config{Binary: "no-such-tor-binary", DataDir: t.TempDir()})
	if err := tor.Start(context.Background()); !errors.Is(err, ErrNoBinary) {
		t.Errorf("missing binary: %v", err)
	}
	exit := writeScript(t, "#!/bin/sh\nexit 1\n")
	tor = New(Config{Binary: exit, DataDir: t.TempDir()})
	if err := tor.Start(context.Background()); !errors.Is(err, ErrExited) {
		t.Errorf("exiting tor: %v", err)
	}
}

// fakeTor is a stand-in tor: it reads -f TORRC, finds the control socket
// path and listens on it until killed.
const fakeTor = `#!/bin/sh
rc="$2"
sock=$(sed -n 's/^ControlPort unix://p' "$rc")
exec python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
print("Nov 23 [notice] fake tor listening"); sys.stdout.flush()
while True:
    c, _ = s.accept(); c.close()
' "$sock"
`

func TestSuperviseRestartsAndStop(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found")
	}
	dir, err := os.MkdirTemp("", "ltest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tor := New(Config{Binary: writeScript(t, fakeTor), DataDir: filepath.Join(dir, "tor"),
		RestartMin: 10 * time.Millisecond, Log: zaptest.NewLogger(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tor.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := tor.PID()
	if pid == 0 {
		t.Fatal("no pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for tor.Restarts() == 0 || tor.PID() == 0 || tor.PID() == pid || !dialOK(tor.ControlAddr()) {
		if ctx.Err() != nil {
			t.Fatal("not restarted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	pid = tor.PID()
	tor.Stop()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("tor %d still running after Stop", pid)
	}
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tor")
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
