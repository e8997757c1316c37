package e2e

import (
	"context"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"socksd/test/tornet"
)

var (
	tn         *tornet.Network // the package's network; nil when skipped
	socksdBin  string          // the socksd binary under test
	skipReason string          // why real-Tor tests skip
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if !tornet.Wanted() {
		skipReason = tornet.SkipReason
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

	n, err := tornet.StartForTestMain(ctx, "e2e", func(ctx context.Context) (err error) {
		socksdBin, err = tornet.BuildSocksd(ctx, "e2e", tmp, raceEnabled)
		return err
	})
	if err != nil {
		log.Print(err)
		return 1
	}
	tn = n

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

// needTornet skips the test unless the package's network is up.
func needTornet(t *testing.T) *tornet.Network {
	t.Helper()
	if tn == nil {
		t.Skip(skipReason)
	}
	return tn
}
