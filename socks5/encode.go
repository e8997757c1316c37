package socks5

import "net/netip"

// AppendReply appends a request reply (RFC 1928 §6) with code and BND.ADDR
// addr, BND.PORT port. An IPv4 (or IPv4-mapped) addr is sent as ATYP 1, an
// IPv6 one as ATYP 4, and an invalid addr as ATYP 1 0.0.0.0: what Tor sends
// for CONNECT success ("05 00 00 01 00000000 0000", observed with tor
// 0.4.9.11)
// and for failures. Every code, Tor's 0xF0–0xF7 included, is encodable.
func AppendReply(dst []byte, code Reply, addr netip.Addr, port uint16) []byte {
	dst = append(dst, Version, byte(code), 0x00)
	return appendAddr(dst, "", addr, port)
}

// AppendReplyHost appends a reply whose BND.ADDR is a DOMAINNAME (ATYP 3):
// the answer to RESOLVE_PTR (socks-extensions.txt §2; tor sends
// "05 00 00 03 10 rev.example.test 0000"). host is cut to 255 bytes, the
// most the length byte can say; callers send only names they validated.
func AppendReplyHost(dst []byte, code Reply, host string, port uint16) []byte {
	if host == "" {
		return append(dst, Version, byte(code), 0x00, ATYPDomain, 0, byte(port>>8), byte(port))
	}
	dst = append(dst, Version, byte(code), 0x00)
	return appendAddr(dst, host, netip.Addr{}, port)
}

// AppendResolveFailure appends C Tor's answer to a failed RESOLVE or
// RESOLVE_PTR: ATYP 0 and six zero bytes, "05 04 00 00 00000000 0000" for
// code 0x04 (observed with tor 0.4.9.11, testdata/ctor-0.4.9.11-observed.txt).
// Clients of
// Tor's resolve commands (tor-resolve aside) expect exactly this.
func AppendResolveFailure(dst []byte, code Reply) []byte {
	return append(dst, Version, byte(code), 0x00, ATYPNone, 0, 0, 0, 0, 0, 0)
}
