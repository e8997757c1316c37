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

// relayConn is a connection's two relay directions, each a goroutine.
type relayConn struct {
	c  net.Conn
	up Stream
}

func newRelayConn(c net.Conn, up Stream) *relayConn { return &relayConn{c: c, up: up} }

func (r *relayConn) startUp(done func(int64, error)) {
	go func() { done(copyUp(r.up, r.c)) }()
}

func (r *relayConn) startDown(done func(int64, error)) {
	go func() { done(copyDown(r.c, r.up)) }()
}

func (r *relayConn) kick() {}
