package tornet

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// SkipReason is why a test package's real-Tor tests skip when
// SOCKSD_TORNET is not 1.
const SkipReason = "real-Tor e2e test: set SOCKSD_TORNET=1 (make test does) to run it against a private Tor network"

// Wanted reports whether SOCKSD_TORNET=1 asks for the real-Tor tests.
func Wanted() bool { return os.Getenv("SOCKSD_TORNET") == "1" }

// StartForTestMain is the bring-up the TestMain of a test package shares:
// it starts the private network (kept on disk with SOCKSD_KEEP=1) while
// build runs alongside, since each takes seconds, and waits for both. If
// either fails, what started is closed and the error returned; name
// prefixes the progress lines.
func StartForTestMain(ctx context.Context, name string, build func(ctx context.Context) error) (*Network, error) {
	built := make(chan error, 1)
	go func() { built <- build(ctx) }()
	t0 := time.Now()
	n, err := Start(ctx, Options{Logf: log.Printf, Keep: os.Getenv("SOCKSD_KEEP") == "1"})
	if err != nil {
		<-built
		return nil, err
	}
	log.Printf("%s: network up in %.1fs (%+v)", name, time.Since(t0).Seconds(), n.Timings)
	if err := <-built; err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// BuildSocksd builds socksd/cmd/socksd into dir (with the race detector
// when race, as the calling tests have it) and returns its path, unless
// SOCKSD_BIN names a binary to use instead.
func BuildSocksd(ctx context.Context, name, dir string, race bool) (string, error) {
	if b := os.Getenv("SOCKSD_BIN"); b != "" {
		return b, nil
	}
	t0 := time.Now()
	out := filepath.Join(dir, "socksd")
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "socksd/cmd/socksd")
	if b, err := exec.CommandContext(ctx, "go", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: go %v: %w\n%s", name, args, err, b)
	}
	log.Printf("%s: built socksd (race=%v) in %.1fs", name, race, time.Since(t0).Seconds())
	return out, nil
}
