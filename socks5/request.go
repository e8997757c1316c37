package socks5

import (
	"net/netip"

	"socksd/socksproto"
)

// stepRequest parses "VER CMD RSV ATYP DST.ADDR DST.PORT" (RFC 1928 §4).
//
// Checks run in byte order, so the outcome never depends on how the
// message was split across reads:
//  1. VER ≠ 5: socksproto.ErrVersion, closed without a reply.
//  2. RSV ≠ 0: reply 0x01 at once. C Tor's trunnel parser fails on the
//     reserved byte as soon as it reads it and answers SOCKS5_GENERAL_ERROR.
//  3. unknown ATYP: reply 0x08 at once (the length of the rest is unknown).
//
// (C Tor answers 0x01 at the CMD byte for an unknown command and at the
// ATYP byte for an unknown address type; socksd answers 0x07 and 0x08,
// the RFC 1928 codes, so a client learns what it did wrong. testdata/ctor-0.4.9.11-observed.txt has the probe.)
//
// Then, with the whole message read (so the client's bytes are consumed
// before we answer and close):
//  4. BIND, UDP ASSOCIATE, any unknown command: 0x07
//     (socks-extensions.txt §1.1, C Tor SOCKS5_COMMAND_NOT_SUPPORTED).
//  5. RESOLVE_PTR whose DOMAINNAME is not an address literal: 0x08
//     (C Tor: tor_addr_parse fails → SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED).
//  6. DOMAINNAME not socksproto.ValidHostname (empty, NUL, non-ASCII, "---", "[::1]"):
//     0x01 (C Tor: string_is_valid_dest fails → SOCKS5_GENERAL_ERROR; tor
//     accepts a name with a NUL by cutting it there, we refuse it).
//  7. CONNECT to port 0: 0x01 (tor 0.4.9.11 answers 0x01 too, after
//     parsing; same rule as socks4).
func (h *Handshake) stepRequest(in []byte) (socksproto.Action, error) {
	if len(in) < 1 {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	if in[0] != Version {
		return h.fail(0, nil, socksproto.ErrVersion)
	}
	if len(in) < 3 {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	if in[2] != 0 {
		return h.reject(0, ReplyGeneralFailure, ErrReserved)
	}
	if len(in) < 4 {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	cmd := socksproto.Command(in[1])
	n := addrLen(in[3:])
	switch {
	case n < 0 || in[3] == ATYPNone:
		return h.reject(0, ReplyAddressUnsupported, ErrAddressType)
	case n == 0 || len(in) < 3+n:
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	end := 3 + n
	if !cmd.Accepted(Version) {
		return h.reject(end, ReplyCommandUnsupported, socksproto.ErrCommand)
	}

	r := &h.req
	r.Command = cmd
	ip, name, port := decodeAddr(in[3:end])
	r.IP, r.Port = ip, port
	switch {
	case name == nil:
	case cmd == socksproto.CmdResolvePTR:
		ip, ok := socksproto.ParseIPLiteral(name)
		if !ok {
			return h.reject(end, ReplyAddressUnsupported, ErrAddressType)
		}
		r.IP = ip
	case !socksproto.ValidHostname(name):
		return h.reject(end, ReplyGeneralFailure, socksproto.ErrHostname)
	default:
		r.Host = h.host[:copy(h.host[:], name)]
	}
	if cmd == socksproto.CmdConnect && r.Port == 0 {
		return h.reject(end, ReplyGeneralFailure, socksproto.ErrPortZero)
	}
	h.state = stateDone
	return socksproto.Action{Consumed: end, Done: true}, nil
}

// reject fails the handshake with a request reply carrying code and a
// zeroed IPv4 BND.ADDR/BND.PORT, the form C Tor sends
// (socks_request_set_socks5_error: ATYP 0x01).
func (h *Handshake) reject(consumed int, code Reply, err error) (socksproto.Action, error) {
	rep := AppendReply(h.reqRep[:0], code, netip.Addr{}, 0)
	return h.fail(consumed, rep, &ReplyError{Code: code, Err: err})
}
