package systemd

import (
	"net"
	"net/netip"

	"socksd/internal/endpoint"
)

// Listener returns the inherited stream socket bound to listen, written as
// in socksd's config ("127.0.0.1:9350", "[::1]:9350", "unix:/path"), so
// the daemon can serve an activated socket in place of binding that address
// itself. Addresses compare as IP and port (an IPv4-mapped address equals
// its IPv4 form); a name such as "localhost:9350" never matches, since
// resolving it here could disagree with what systemd bound.
func Listener(socks []Socket, listen string) (net.Listener, bool) {
	for _, s := range socks {
		if s.Listener != nil && sameAddr(s.Listener.Addr(), listen) {
			return s.Listener, true
		}
	}
	return nil, false
}

// PacketConn is Listener for datagram sockets (the DNS bridge's UDP).
func PacketConn(socks []Socket, listen string) (net.PacketConn, bool) {
	for _, s := range socks {
		if s.PacketConn != nil && sameAddr(s.PacketConn.LocalAddr(), listen) {
			return s.PacketConn, true
		}
	}
	return nil, false
}

func sameAddr(a net.Addr, listen string) bool {
	if network, path := endpoint.Split(listen); network == "unix" {
		u, isUnix := a.(*net.UnixAddr)
		return isUnix && u.Name == path
	}
	want, err := netip.ParseAddrPort(listen)
	if err != nil {
		return false
	}
	var got netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		got = a.AddrPort()
	case *net.UDPAddr:
		got = a.AddrPort()
	default:
		return false
	}
	return got.Addr().Unmap() == want.Addr().Unmap() && got.Port() == want.Port()
}
