package systest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tornet is the private Tor network, run by cmd/tornet inside the box's
// network namespace (its files stay on the host), without a client tor:
// the box's own tor@default is the client.
type Tornet struct {
	Env         map[string]string // cmd/tornet's KEY=VALUE lines
	ClientTorrc string            // lines a client of the network needs
	cmd         *exec.Cmd
}

// startTornet runs bin (a built cmd/tornet) in netns and returns once the
// network has a consensus.
func startTornet(t *testing.T, bin, netns, dir string) *Tornet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.Command("nsenter", "--net="+netns, "--", bin, "up", "-no-client", "-no-onion", "-print-client-torrc", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir + ".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &Tornet{Env: map[string]string{}, cmd: cmd}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	// cmd/tornet prints its env, then the client torrc, on stdout once the
	// network is up. The torrc is complete with one DirAuthority line per
	// authority (AUTH_DIRPORTS).
	lines := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var torrc strings.Builder
	inTorrc, auths := false, 0
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				log, _ := os.ReadFile(dir + ".log")
				t.Fatalf("tornet exited before it was up:\n%s", log)
			}
			switch {
			case strings.HasPrefix(l, "# client torrc lines"):
				inTorrc = true
			case inTorrc:
				torrc.WriteString(l + "\n")
				if strings.HasPrefix(l, "DirAuthority ") {
					auths++
				}
			default:
				if k, v, ok := strings.Cut(l, "="); ok {
					n.Env[k] = v
				}
			}
			done = auths > 0 && auths == len(strings.Split(n.Env["AUTH_DIRPORTS"], ","))
		case <-ctx.Done():
			t.Fatalf("tornet not up in 150 s")
		}
	}
	n.ClientTorrc = torrc.String()
	if n.Env["HTTP_PORT"] == "" || !strings.Contains(n.ClientTorrc, "DirAuthority") {
		t.Fatalf("tornet printed no env or client torrc: %v\n%s", n.Env, n.ClientTorrc)
	}
	return n
}

// buildTools builds what the box runs from the host's checkout into
// shared: socksd (as a release build would), tornet and the probe.
func buildTools(t *testing.T, shared, version string) {
	t.Helper()
	for _, b := range []struct{ out, pkg, ldflags string }{
		{"socksd", "socksd/cmd/socksd", "-X main.version=" + version + "1"},
		{"socksd2", "socksd/cmd/socksd", "-X main.version=" + version + "2"},
		{"tornet", "socksd/cmd/tornet", ""},
		{"probe", "socksd/test/systemd/probe", ""},
	} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", b.ldflags, "-o", filepath.Join(shared, b.out), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
}
