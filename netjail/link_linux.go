package netjail

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loopbackIndex is lo's interface index in a new network namespace.
const loopbackIndex = 1

// setupLoopback brings lo up and adds a default route through it for IPv4
// and IPv6 (rtnetlink, RFC 3549). Without a route, connect() to a
// non-local address fails with ENETUNREACH before any packet exists, and
// nftables has nothing to redirect. lo being the only interface, the
// route leads nowhere but back into the namespace.
func setupLoopback() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netjail: rtnetlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netjail: rtnetlink bind: %w", err)
	}

	ifi := unix.IfInfomsg{Family: unix.AF_UNSPEC, Index: loopbackIndex, Flags: unix.IFF_UP, Change: unix.IFF_UP}
	if err := nlRequest(fd, 1, unix.RTM_NEWLINK, 0, structBytes(&ifi), nil); err != nil {
		return fmt.Errorf("netjail: bringing lo up: %w", err)
	}
	var oif [4]byte
	binary.NativeEndian.PutUint32(oif[:], loopbackIndex)
	for i, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		rt := unix.RtMsg{Family: fam, Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_BOOT,
			Scope: unix.RT_SCOPE_LINK, Type: unix.RTN_UNICAST}
		// The loopback address as the preferred source: without it a
		// socket connected through this route is bound to 0.0.0.0, and
		// the forwarder's answers (a reset above all) never reach it.
		src := netip.AddrFrom4([4]byte{127, 0, 0, 1}).AsSlice()
		if fam == unix.AF_INET6 {
			src = netip.IPv6Loopback().AsSlice()
		}
		attrs := append(attr(unix.RTA_OIF, oif[:]), attr(unix.RTA_PREFSRC, src)...)
		err := nlRequest(fd, uint32(2+i), unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL,
			structBytes(&rt), attrs)
		if err != nil && !(fam == unix.AF_INET6 && ipv6Disabled(err)) {
			return fmt.Errorf("netjail: default route (family %d): %w", fam, err)
		}
	}
	return nil
}

// ipv6Disabled: a kernel booted with ipv6.disable=1 has no IPv6 routing;
// IPv6 sockets then fail on their own and nothing needs redirecting.
func ipv6Disabled(err error) bool {
	return err == unix.EAFNOSUPPORT || err == unix.EOPNOTSUPP
}

func structBytes[T any](p *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

// attr encodes one rtattr.
func attr(typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[unix.SizeofRtAttr:], data)
	return b
}

// nlRequest sends one request with NLM_F_ACK and returns the kernel's
// verdict.
func nlRequest(fd int, seq uint32, typ, flags uint16, body, attrs []byte) error {
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body)+len(attrs))
	msg = append(msg, body...)
	for len(msg)%4 != 0 {
		msg = append(msg, 0)
	}
	msg = append(msg, attrs...)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		for b := buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return fmt.Errorf("malformed netlink message")
			}
			typ := binary.NativeEndian.Uint16(b[4:])
			mseq := binary.NativeEndian.Uint32(b[8:])
			data := b[unix.SizeofNlMsghdr:l]
			if mseq == seq && typ == unix.NLMSG_ERROR && len(data) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(data)); code != 0 {
					return unix.Errno(-code)
				}
				return nil
			}
			b = b[min((l+3)&^3, len(b)):]
		}
	}
}
