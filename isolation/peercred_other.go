//go:build !linux

package isolation

import "net"

// PeerCred needs SO_PEERCRED, which only Linux has in this form.
func PeerCred(c *net.UnixConn) (App, error) { return Proc{}.PeerCred(c) }

// PeerCred is the package function with p's procfs for the executable.
func (p Proc) PeerCred(c *net.UnixConn) (App, error) { return App{}, ErrUnsupported }
