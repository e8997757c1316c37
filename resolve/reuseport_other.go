//go:build !linux

package resolve

import "syscall"

// canReusePort: elsewhere SO_REUSEPORT does not spread datagrams (or does
// not exist): one socket, one fast-path worker.
const canReusePort = false

func setReusePort(_, _ string, _ syscall.RawConn) error { return nil }
