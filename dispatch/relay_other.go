//go:build !linux

package dispatch

import (
	"io"
	"net"
)

// Without Linux's splice and SIOCINQ, io.Copy (which still splices where
// the standard library can) relays both directions.
func copyUp(up Stream, c net.Conn) (int64, error) { return io.Copy(up, c) }

func copyDown(c net.Conn, up Stream) (int64, error) { return io.Copy(c, up) }
