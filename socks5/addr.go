package socks5

import (
	"encoding/binary"
	"net/netip"
)

// The address block "ATYP ADDR PORT" (RFC 1928 §4, §6) has one codec, used
// by the server's request parser, the client's reply parser and every
// encoder, in the manner of tailscale's socksAddr and Arti's SocksAddr.

// addrLen returns the length of the address block at the start of in,
// or 0 when in is too short to say (only ATYP 3 needs its length byte),
// or -1 for an address type that has no defined length. ATYP 0, C Tor's
// failed-RESOLVE form, has the length of an IPv4 block; callers that do
// not accept it refuse it before asking.
func addrLen(in []byte) int {
	if len(in) < 1 {
		return 0
	}
	switch in[0] {
	case ATYPIPv4, ATYPNone:
		return 1 + 4 + 2
	case ATYPIPv6:
		return 1 + 16 + 2
	case ATYPDomain:
		if len(in) < 2 {
			return 0
		}
		return 2 + int(in[1]) + 2
	}
	return -1
}

// decodeAddr reads a whole address block b (len(b) == addrLen(b)): an
// address for ATYP 1 and 4 (IPv4-mapped IPv6 unmapped, so policy checks
// see the IPv4 address), the raw DOMAINNAME for ATYP 3, nothing for ATYP 0.
// name aliases b.
func decodeAddr(b []byte) (ip netip.Addr, name []byte, port uint16) {
	port = binary.BigEndian.Uint16(b[len(b)-2:])
	switch b[0] {
	case ATYPIPv4:
		ip = netip.AddrFrom4([4]byte(b[1:5]))
	case ATYPIPv6:
		ip = netip.AddrFrom16([16]byte(b[1:17])).Unmap()
	case ATYPDomain:
		name = b[2 : len(b)-2]
	}
	return ip, name, port
}

// appendAddr appends the address block for host (ATYP 3) when host is not
// empty, else for ip: ATYP 1 for an IPv4 or IPv4-mapped address, ATYP 4
// for IPv6, and ATYP 1 0.0.0.0 for an invalid ip (what Tor puts in a
// CONNECT reply). A host over 255 bytes is cut to 255, the most the
// length byte can say: callers send only names they validated.
func appendAddr(dst []byte, host string, ip netip.Addr, port uint16) []byte {
	switch {
	case host != "":
		if len(host) > 255 {
			host = host[:255]
		}
		dst = append(dst, ATYPDomain, byte(len(host)))
		dst = append(dst, host...)
	case ip.Is4() || ip.Is4In6():
		a := ip.Unmap().As4()
		dst = append(dst, ATYPIPv4)
		dst = append(dst, a[:]...)
	case ip.Is6():
		a := ip.As16()
		dst = append(dst, ATYPIPv6)
		dst = append(dst, a[:]...)
	default:
		dst = append(dst, ATYPIPv4, 0, 0, 0, 0)
	}
	return append(dst, byte(port>>8), byte(port))
}
