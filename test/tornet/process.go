package tornet

import (
	"errors"

	"socksd/internal/daemontest"
)

// Process is a child process started with Network.Spawn.
type Process = daemontest.Process

// Spawn starts argv like the network's own tors: its own process group,
// SIGTERM when the test process dies (Pdeathsig, from the network's pinned
// thread), stdout+stderr appended to logPath. Close stops it too if the
// test has not (SIGTERM, then SIGKILL after 5 s). Tests start socksd with it.
func (n *Network) Spawn(name, logPath string, argv ...string) (*Process, error) {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return nil, errors.New("tornet: Spawn after Close")
	}
	p, err := n.spawn.startProc(name, logPath, argv...)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.extra = append(n.extra, p)
	n.mu.Unlock()
	return p.Process, nil
}
