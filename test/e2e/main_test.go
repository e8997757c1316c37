package e2e

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"socksd/test/tornet"
)

var (
	tn         *tornet.Network // the package's network; nil when skipped
	socksdBin  string          // the socksd binary under test
	skipReason string          // why real-Tor tests skip
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if os.Getenv("SOCKSD_TORNET") != "1" {
		skipReason = "real-Tor e2e test: set SOCKSD_TORNET=1 (make test does) to run it against a private Tor network"
		return m.Run()
	}
	log.SetFlags(log.Lmicroseconds)
	tmp, err := os.MkdirTemp("", "socksd-e2e-")
	if err != nil {
		log.Print(err)
		return 1
	}
	defer os.RemoveAll(tmp)

	// Ctrl-C / SIGTERM: cancel bring-up, or tear down during the tests.
	// (A `go test -timeout` panic skips all of this: the tors and socksd
	// then get SIGTERM from Pdeathsig, and tor's __OwningControllerProcess
	// check stops any left within 15 s.)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	build := make(chan error, 1)
	go func() { build <- buildSocksd(ctx, tmp) }()

	t0 := time.Now()
	n, err := tornet.Start(ctx, tornet.Options{Logf: log.Printf, Keep: os.Getenv("SOCKSD_KEEP") == "1"})
	if err != nil {
		log.Print(err)
		<-build
		return 1
	}
	tn = n
	log.Printf("e2e: network up in %.1fs (%+v)", time.Since(t0).Seconds(), n.Timings)
	if err := <-build; err != nil {
		log.Print(err)
		n.Close()
		return 1
	}

	stop() // from here on a signal tears down and exits
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		s := <-sig
		log.Printf("e2e: %v: tearing the network down", s)
		n.Close()
		os.Exit(2)
	}()
	code := m.Run()
	if code != 0 {
		dst := filepath.Join("..", "artifacts", "tornet-logs")
		os.RemoveAll(dst)
		if err := n.CopyLogs(dst); err == nil {
			log.Printf("e2e: tests failed; tor logs copied to test/artifacts/tornet-logs")
		}
	}
	var total int64
	for _, b := range n.RSS() {
		total += b
	}
	log.Printf("e2e: tor processes' RSS at the end: %.1f MiB", float64(total)/(1<<20))
	if err := n.Close(); err != nil {
		log.Print(err)
	}
	return code
}

// buildSocksd builds ./cmd/socksd into dir once per package run (with the
// race detector when the tests have it), unless SOCKSD_BIN names a binary.
func buildSocksd(ctx context.Context, dir string) error {
	if b := os.Getenv("SOCKSD_BIN"); b != "" {
		socksdBin = b
		return nil
	}
	t0 := time.Now()
	out := filepath.Join(dir, "socksd")
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "socksd/cmd/socksd")
	cmd := exec.CommandContext(ctx, "go", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("e2e: go %v: %w\n%s", args, err, b)
	}
	socksdBin = out
	log.Printf("e2e: built socksd (race=%v) in %.1fs", raceEnabled, time.Since(t0).Seconds())
	return nil
}

// needTornet skips the test unless the package's network is up.
func needTornet(t *testing.T) *tornet.Network {
	t.Helper()
	if tn == nil {
		t.Skip(skipReason)
	}
	return tn
}
