package run

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"socksd/test/tornet"
)

var (
	tn         *tornet.Network // the package's network; nil when skipped
	socksdBin  string          // the socksd binary under test
	fetcherBin string          // the static Go program (fetcher/)
	sd         *socksd         // the package's socksd
	cn         *canary         // the canary host; nil without root
	skipReason string
	binDir     string // world-readable directory holding the binaries
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(canaryEnv); addr != "" {
		// Re-executed inside the canary's network namespace.
		os.Exit(serveCanary(addr))
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if !tornet.Wanted() {
		skipReason = tornet.SkipReason
		return m.Run()
	}
	log.SetFlags(log.Lmicroseconds)
	tmp, err := os.MkdirTemp("", "socksd-run-")
	if err != nil {
		log.Print(err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// The unprivileged test runs the binaries as another user.
	if err := os.Chmod(tmp, 0o755); err != nil {
		log.Print(err)
		return 1
	}
	binDir = tmp
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	n, err := tornet.StartForTestMain(ctx, "run", func(ctx context.Context) error { return buildBinaries(ctx, tmp) })
	if err != nil {
		log.Print(err)
		return 1
	}
	defer n.Close()
	stop()

	// Where this user cannot create the namespaces (unprivileged user
	// namespaces off, a container without them) every test skips, saying
	// why, instead of failing.
	a := jailArgsSocket(filepath.Join(tmp, "probe.sock"), nil, "true")
	probe := exec.Command(a[0], a[1:]...)
	if out, err := probe.CombinedOutput(); err != nil && strings.Contains(string(out), "cannot create namespaces") {
		skipReason = "socksd run cannot create its namespaces here: " + strings.TrimSpace(string(out))
		log.Print("run: " + skipReason)
		return m.Run()
	}
	if os.Geteuid() == 0 {
		c, err := startCanary()
		if err != nil {
			log.Printf("run: canary: %v", err)
			return 1
		}
		defer c.close()
		cn = c
	}
	s, err := startSocksd(n, tmp)
	if err != nil {
		log.Print(err)
		return 1
	}
	sd = s
	tn = n // from here on the tests run
	code := m.Run()
	if err := s.stop(); err != nil {
		log.Printf("run: socksd: %v", err)
		code = 1
	}
	if cn != nil {
		// Every packet the canary ever received must have come from a
		// control run outside the jail.
		got, err := cn.rxPackets()
		if err != nil {
			log.Printf("run: canary: %v", err)
			code = 1
		} else if extra := got - cn.start - cn.control.Load(); extra != 0 {
			log.Printf("FAIL: the canary received %d packet(s) outside the control runs: something inside socksd run reached it", extra)
			code = 1
		} else {
			log.Printf("run: canary received %d packets, all from the control runs outside the jail", got-cn.start)
		}
	}
	if code != 0 {
		dst := filepath.Join("..", "artifacts", "run-tornet-logs")
		os.RemoveAll(dst)
		if err := n.CopyLogs(dst); err == nil {
			log.Printf("run: tests failed; tor logs in test/artifacts/run-tornet-logs, socksd log in %s", dst)
			copyFile(s.logPath, filepath.Join(dst, "socksd.log"))
		}
	}
	return code
}

// buildBinaries builds socksd (with -race under -race) and the static
// fetcher into dir.
func buildBinaries(ctx context.Context, dir string) error {
	var err error
	if socksdBin, err = tornet.BuildSocksd(ctx, "run", dir, raceEnabled); err != nil {
		return err
	}
	t0 := time.Now()
	fetcherBin = filepath.Join(dir, "fetcher")
	// CGO_ENABLED=0: a static binary with Go's own resolver, the kind of
	// program LD_PRELOAD tools cannot see.
	cmd := exec.CommandContext(ctx, "go", "build", "-o", fetcherBin, "socksd/test/run/fetcher")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("run: go build fetcher: %w\n%s", err, b)
	}
	log.Printf("run: built the fetcher in %.1fs", time.Since(t0).Seconds())
	return nil
}

func needTornet(t *testing.T) *tornet.Network {
	t.Helper()
	if tn == nil {
		t.Skip(skipReason)
	}
	return tn
}

func copyFile(src, dst string) {
	if b, err := os.ReadFile(src); err == nil {
		os.WriteFile(dst, b, 0o644)
	}
}
