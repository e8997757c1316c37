package resolve

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// canReusePort: the kernel spreads datagrams over the sockets of one
// SO_REUSEPORT group by a hash of the client's address and port (Linux
// 3.9+), so each fast-path worker reads a socket of its own.
const canReusePort = true

func setReusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
