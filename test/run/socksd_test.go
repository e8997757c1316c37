package run

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"socksd/internal/daemontest"
	"socksd/test/tornet"
)

// socksd is the package's socksd: the controller of the network's client
// tor (socksd picks every stream's circuit), with a TCP listener for the
// comparisons and the Unix-socket listener socksd run talks to.
type socksd struct {
	proc    *tornet.Process
	addr    string // "127.0.0.1:P"
	metrics string // "127.0.0.1:P": the status page
	socket  string // the Unix-socket listener's path
	logPath string
}

const socksdConfig = `
state_dir = %q

[socks]
listen = [%q, "unix:%s"]

[tor]
control = %q
cookie_file = %q
launch = "never"
attach_streams = true

[log]
level = "debug"
format = "console"
safe_logging = false

[metrics]
listen = %q
`

func startSocksd(n *tornet.Network, dir string) (*socksd, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	metrics, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &socksd{addr: addr, metrics: metrics, socket: filepath.Join(dir, "socks.sock"), logPath: filepath.Join(dir, "socksd.log")}
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "socksd.toml")
	body := fmt.Sprintf(socksdConfig, state, addr, s.socket, n.ControlAddr(), n.CookiePath, metrics)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		return nil, err
	}
	s.proc, err = n.Spawn("socksd", s.logPath, socksdBin, "-config", cfg, "-shutdown-grace", "2s")
	if err != nil {
		return nil, err
	}
	// Ready means a stream by name makes it through socksd's own circuit.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		body, err := tornet.Get(ctx, addr, n.NameURL("/via"))
		if err == nil && strings.HasPrefix(body, "exit") {
			return s, nil
		}
		select {
		case <-ctx.Done():
			s.proc.Stop(5 * time.Second)
			return nil, fmt.Errorf("run: socksd not usable after 90 s (last error %v)\n%s", err, daemontest.Tail(s.proc.Log(), 4000))
		case <-s.proc.Done():
			return nil, fmt.Errorf("run: socksd exited: %v\n%s", s.proc.Err(), daemontest.Tail(s.proc.Log(), 4000))
		case <-tick.C:
		}
	}
}

func (s *socksd) stop() error {
	s.proc.Stop(10 * time.Second)
	if strings.Contains(s.proc.Log(), "WARNING: DATA RACE") {
		return fmt.Errorf("socksd log has a data race report")
	}
	if code := s.proc.ExitCode(); code != 0 {
		return fmt.Errorf("socksd exited with %d after SIGTERM", code)
	}
	return nil
}

// freePort returns "127.0.0.1:P" for a port free right now, from
// 10000-19999 (below the ephemeral range and below tornet's blocks).
func freePort() (string, error) {
	for range 100 {
		a := "127.0.0.1:" + strconv.Itoa(10000+rand.IntN(10000))
		ln, err := net.Listen("tcp", a)
		if err == nil {
			ln.Close()
			return a, nil
		}
	}
	return "", fmt.Errorf("run: no free port")
}
