package socks4

import "net/netip"

// Reply is the CD field of a SOCKS4 reply.
type Reply byte

const (
	ReplyGranted  Reply = 0x5A // request granted
	ReplyRejected Reply = 0x5B // request rejected or failed
	// The identd codes exist in the protocol for completeness; socksd
	// never queries identd, so it never sends them.
	ReplyNoIdentd       Reply = 0x5C // rejected: cannot reach identd on the client
	ReplyIdentdMismatch Reply = 0x5D // rejected: identd reports a different user
)

// AppendReply appends the 8-byte SOCKS4 reply to dst:
//
//	00 CD PORT(2, big endian) IP(4)
//
// The version byte of a reply is 0, not 4. For RESOLVE the answer goes in
// the IP field (socks-extensions.txt §2); an invalid or non-IPv4 ip is
// written as 0.0.0.0 (SOCKS4 cannot carry IPv6, so the caller must reject
// an IPv6-only answer with ReplyRejected rather than send it here).
func AppendReply(dst []byte, code Reply, ip netip.Addr, port uint16) []byte {
	var a [4]byte
	if ip.Is4() || ip.Is4In6() {
		a = ip.Unmap().As4()
	}
	return append(dst, 0x00, byte(code), byte(port>>8), byte(port), a[0], a[1], a[2], a[3])
}
