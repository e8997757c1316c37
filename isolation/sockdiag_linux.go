package isolation

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"
)

// sock_diag(7) constants not in package syscall.
const (
	netlinkSockDiag  = 4  // NETLINK_SOCK_DIAG
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	nlmsgHdrLen      = 16
	inetDiagReqLen   = 56 // struct inet_diag_req_v2
	inetDiagMsgLen   = 72 // struct inet_diag_msg
)

// errSockDiagUnavailable: the kernel or the sandbox refused the netlink
// socket (systemd RestrictAddressFamilies= without AF_NETLINK); the caller
// falls back to reading /proc/net/tcp.
var errSockDiagUnavailable = errors.New("isolation: sock_diag unavailable")

// sockDiagLookup asks the kernel for the one TCP socket whose local end is
// local and remote end is remote: a non-dump SOCK_DIAG_BY_FAMILY request
// with an exact id is a hash lookup in the kernel (inet_diag_find_one_icsk),
// where /proc/net/tcp makes the kernel print every socket of the machine.
// A v4 pair also finds an AF_INET6 socket using v4-mapped addresses: the
// kernel looks mapped pairs up in the IPv4 tables.
func sockDiagLookup(local, remote netip.AddrPort) (tcpEntry, error) {
	family := byte(syscall.AF_INET6)
	if local.Addr().Is4() {
		family = syscall.AF_INET
	}
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, netlinkSockDiag)
	if err != nil {
		return tcpEntry{}, fmt.Errorf("%w: %v", errSockDiagUnavailable, err)
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(int64(time.Second))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return tcpEntry{}, fmt.Errorf("%w: %v", errSockDiagUnavailable, err)
	}

	msg := make([]byte, nlmsgHdrLen+inetDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], sockDiagByFamily)
	ne.PutUint16(msg[6:], syscall.NLM_F_REQUEST)
	ne.PutUint32(msg[8:], 1) // sequence number
	req := msg[nlmsgHdrLen:]
	req[0] = family
	req[1] = syscall.IPPROTO_TCP
	ne.PutUint32(req[4:], ^uint32(0)) // every TCP state
	putDiagID(req[8:], local, remote)
	ne.PutUint32(req[48:], ^uint32(0)) // INET_DIAG_NOCOOKIE
	ne.PutUint32(req[52:], ^uint32(0))
	if err := syscall.Sendto(fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return tcpEntry{}, fmt.Errorf("%w: %v", errSockDiagUnavailable, err)
	}

	buf := make([]byte, 8192)
	n, _, err := syscall.Recvfrom(fd, buf, 0)
	if err != nil {
		return tcpEntry{}, fmt.Errorf("%w: %v", errSockDiagUnavailable, err)
	}
	return parseSockDiagReply(buf[:n], ne)
}

// putDiagID writes struct inet_diag_sockid: ports and addresses in network
// order, addresses in 16-byte slots (IPv4 in the first 4), interface 0.
func putDiagID(b []byte, local, remote netip.AddrPort) {
	binary.BigEndian.PutUint16(b[0:], local.Port())
	binary.BigEndian.PutUint16(b[2:], remote.Port())
	copy(b[4:20], local.Addr().AsSlice())
	copy(b[20:36], remote.Addr().AsSlice())
}

// parseSockDiagReply reads the answer to one request: an inet_diag_msg, or
// an NLMSG_ERROR whose ENOENT means "no such socket".
func parseSockDiagReply(b []byte, ne binary.ByteOrder) (tcpEntry, error) {
	if len(b) < nlmsgHdrLen {
		return tcpEntry{}, fmt.Errorf("%w: short reply", errSockDiagUnavailable)
	}
	l := int(ne.Uint32(b[0:]))
	if l < nlmsgHdrLen || l > len(b) {
		return tcpEntry{}, fmt.Errorf("%w: bad length", errSockDiagUnavailable)
	}
	body := b[nlmsgHdrLen:l]
	switch ne.Uint16(b[4:]) {
	case syscall.NLMSG_ERROR:
		if len(body) < 4 {
			return tcpEntry{}, fmt.Errorf("%w: short error", errSockDiagUnavailable)
		}
		errno := syscall.Errno(-int32(ne.Uint32(body)))
		if errno == syscall.ENOENT {
			return tcpEntry{}, ErrSocketNotFound
		}
		return tcpEntry{}, fmt.Errorf("%w: %v", errSockDiagUnavailable, errno)
	case sockDiagByFamily:
		if len(body) < inetDiagMsgLen {
			return tcpEntry{}, fmt.Errorf("%w: short message", errSockDiagUnavailable)
		}
		e := tcpEntry{
			State: body[1],
			UID:   ne.Uint32(body[64:]),
			Inode: uint64(ne.Uint32(body[68:])),
		}
		e.Local, e.Remote = diagID(body[0], body[4:])
		return e, nil
	}
	return tcpEntry{}, fmt.Errorf("%w: unexpected message type", errSockDiagUnavailable)
}

func diagID(family byte, b []byte) (local, remote netip.AddrPort) {
	addr := func(s []byte) netip.Addr {
		if family == syscall.AF_INET {
			return netip.AddrFrom4([4]byte(s[:4]))
		}
		return netip.AddrFrom16([16]byte(s[:16]))
	}
	return netip.AddrPortFrom(addr(b[4:20]), binary.BigEndian.Uint16(b[0:])),
		netip.AddrPortFrom(addr(b[20:36]), binary.BigEndian.Uint16(b[2:]))
}
