//go:build !linux

package isolation

import (
	"errors"
	"net"
	"net/netip"
)

// PeerCred needs SO_PEERCRED, which only Linux has in this form.
func PeerCred(c *net.UnixConn) (App, error) { return Proc{}.PeerCred(c) }

// PeerCred is the package function with p's procfs for the executable.
func (p Proc) PeerCred(c *net.UnixConn) (App, error) { return App{}, ErrUnsupported }

// sockDiagLookup is Linux's sock_diag; elsewhere the /proc search (which
// then finds no procfs) is all there is.
func sockDiagLookup(local, remote netip.AddrPort) (tcpEntry, error) {
	return tcpEntry{}, errSockDiagUnavailable
}

var errSockDiagUnavailable = errors.New("isolation: sock_diag unavailable")
