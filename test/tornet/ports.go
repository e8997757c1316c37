package tornet

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Port layout inside one block. Blocks are below Linux's default ephemeral
// range (32768-60999) so the kernel never hands one of them to an outgoing
// connection while a network is being set up.
const (
	portBase     = 20000
	portBlock    = 72
	portBlocks   = 138 // 20000 .. 29935
	offAuthOR    = 0   // 3 authorities
	offAuthDir   = 3   // 3 authority DirPorts
	offExitOR    = 6   // up to maxExits exits
	offSocks     = 26
	offSocksExt  = 27
	offControl   = 28
	offHSControl = 29
	offHTTP      = 30
	offDNS       = 31 // UDP and TCP
	offSpare     = 32 // 32-38: free for tests (a managed tor's SocksPort...)
	offHTTPTun   = 39 // the client's HTTPTunnelPort
	// Behind Links (link.go) the nodes really listen here, and the ports
	// above (ORPorts, HTTP, DNS) are the Links. One inner ORPort per
	// relay: the authorities, then the exits.
	offInnerOR   = 40 // 40-62
	offInnerHTTP = offInnerOR + 3 + maxExits
	offInnerDNS  = offInnerHTTP + 1 // UDP and TCP
	maxExits     = offSocks - offExitOR
)

// portLease is a block of portBlock ports reserved for one network. The
// reservation is an flock on a file in the temp dir: the kernel drops it when
// the holder exits, however it exits, so a crashed test never leaks a block.
// Two processes (say two test packages run in parallel by `go test ./...`)
// therefore never pick the same block, and the ports are also checked free
// by binding them, in case something unrelated uses them.
type portLease struct {
	base int
	lock *os.File
}

func (l *portLease) port(off int) int { return l.base + off }

func (l *portLease) release() {
	if l.lock != nil {
		l.lock.Close() // releases the flock
		l.lock = nil
	}
}

// leasePorts returns the first block that is neither locked by another
// network nor has a port in use. Block order is fixed, so a lone network
// always gets block 0 (and the authority key cache, keyed by block, hits).
func leasePorts() (*portLease, error) {
	for b := 0; b < portBlocks; b++ {
		base := portBase + b*portBlock
		path := filepath.Join(os.TempDir(), "tornet-ports-"+strconv.Itoa(base)+".lock")
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue // another network holds it
		}
		if blockFree(base) {
			return &portLease{base: base, lock: f}, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("tornet: no free block of %d ports in %d-%d", portBlock, portBase, portBase+portBlocks*portBlock-1)
}

// blockFree reports whether every TCP port of the block (and the DNS UDP
// ports) can be bound on 127.0.0.1 right now.
func blockFree(base int) bool {
	for off := 0; off < portBlock; off++ {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+off)))
		if err != nil {
			return false
		}
		l.Close()
	}
	for _, off := range []int{offDNS, offInnerDNS} {
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+off)))
		if err != nil {
			return false
		}
		pc.Close()
	}
	return true
}
