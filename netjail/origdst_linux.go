package netjail

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/
// ip6_tables.h), which x/sys/unix does not name; it equals SO_ORIGINAL_DST.
const ip6tSOOriginalDst = 80

// originalDst returns where a redirected connection was going: conntrack
// keeps the destination the program asked for, and the socket option
// reads it back (IPv4: SO_ORIGINAL_DST; IPv6: IP6T_SO_ORIGINAL_DST).
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	local := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr()
	var ap netip.AddrPort
	var serr error
	err = rc.Control(func(fd uintptr) {
		if local.Unmap().Is4() {
			var sa unix.RawSockaddrInet4
			l := uint32(unix.SizeofSockaddrInet4)
			serr = getsockopt(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST, unsafe.Pointer(&sa), &l)
			if serr == nil {
				ap = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), portOf(sa.Port))
			}
			return
		}
		var sa unix.RawSockaddrInet6
		l := uint32(unix.SizeofSockaddrInet6)
		serr = getsockopt(int(fd), unix.SOL_IPV6, ip6tSOOriginalDst, unsafe.Pointer(&sa), &l)
		if serr == nil {
			ap = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), portOf(sa.Port))
		}
	})
	if err == nil {
		err = serr
	}
	if err == nil && !ap.IsValid() {
		err = errors.New("netjail: no original destination")
	}
	return ap, err
}

// portOf reads a sockaddr port, which is in network byte order.
func portOf(p uint16) uint16 {
	var b [2]byte
	*(*uint16)(unsafe.Pointer(&b[0])) = p
	return binary.BigEndian.Uint16(b[:])
}

func getsockopt(fd, level, opt int, p unsafe.Pointer, l *uint32) error {
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(l)), 0)
	if e != 0 {
		return e
	}
	return nil
}
