// Package socks5 is a sans-IO implementation of SOCKS5 (RFC 1928) with
// username/password sub-negotiation (RFC 1929) and Tor's extensions
// (socks-extensions.txt: RESOLVE 0xF0, RESOLVE_PTR 0xF1, the extended reply
// codes of proposal 304, the "<torS0X>" username form of proposal 351).
//
// The server side is Handshake: it is fed the bytes a client sent and says
// what to write back and when the request is complete. The client side
// (AppendClientRequest, Client) talks to Tor's SocksPort upstream. Neither
// side reads, writes, blocks or logs; the caller owns sockets and deadlines.
package socks5

import (
	"errors"
)

// Version is the SOCKS protocol version byte (RFC 1928 §3).
const Version = 0x05

// Authentication methods (RFC 1928 §3).
const (
	MethodNoAuth       = 0x00
	MethodUserPass     = 0x02 // RFC 1929
	MethodTorExtended  = 0x97 // proposal 229: key/value pairs (extauth.go)
	MethodNoAcceptable = 0xFF
)

// userPassVersion is the sub-negotiation VER of RFC 1929 §2.
const userPassVersion = 0x01

// Address types (RFC 1928 §4).
const (
	ATYPIPv4   = 0x01
	ATYPDomain = 0x03
	ATYPIPv6   = 0x04
	// ATYPNone is not in RFC 1928: C Tor answers a failed RESOLVE with ATYP 0
	// and six zero bytes (observed with tor 0.4.9.11,
	// testdata/ctor-0.4.9.11-observed.txt).
	ATYPNone = 0x00
)

// Sentinel errors of SOCKS5 alone; the ones every handshake shares
// (socksproto.ErrShortBuffer, ErrVersion, ErrCommand, ErrHostname,
// ErrPortZero, ErrHandshakeOver) live in socksproto. Request-phase
// rejections come wrapped in *ReplyError whose Code is the reply already
// encoded in Action.Reply.
var (
	// ErrNoAcceptableMethod: the greeting offered no method we accept
	// (or none at all); "05 FF" is sent, then the connection is closed.
	ErrNoAcceptableMethod = errors.New("socks5: no acceptable authentication method")
	// ErrAuthVersion: the username/password message had a VER other than 1.
	ErrAuthVersion = errors.New("socks5: wrong username/password sub-negotiation version")
	// ErrTorExtension: a "<torS0X>" username in a format other than "0".
	ErrTorExtension = errors.New("socks5: unsupported <torS0X> username format")
	// ErrAuthRepeated: a second username/password message.
	ErrAuthRepeated = errors.New("socks5: repeated username/password message")
	// ErrReserved: RSV of a request was not zero.
	ErrReserved = errors.New("socks5: reserved byte not zero")
	// ErrExtAuthVersion: a proposal 229 message whose VER is not 1, or a
	// pair with an empty key: the proposal's MUSTs, answered by closing.
	ErrExtAuthVersion = errors.New("socks5: malformed extended authentication")
	// ErrExtAuthArgs: a proposal 229 pair socksd refuses (an unknown key,
	// a bad value, a repeated key, a message over MaxExtAuth): status
	// 0x02 is sent. It wraps socksproto.ErrOption where that applies.
	ErrExtAuthArgs = errors.New("socks5: invalid extended authentication arguments")
	// ErrAddressType: an unknown ATYP, or RESOLVE_PTR of a hostname.
	ErrAddressType = errors.New("socks5: address type not supported")

	// Client side: the upstream SOCKS5 server misbehaved.
	ErrUpstreamVersion      = errors.New("socks5: upstream sent wrong version")
	ErrUpstreamMethod       = errors.New("socks5: upstream selected a method we did not offer")
	ErrUpstreamNoMethod     = errors.New("socks5: upstream accepts none of our methods")
	ErrUpstreamAuth         = errors.New("socks5: upstream rejected our credentials")
	ErrUpstreamMalformed    = errors.New("socks5: malformed reply from upstream")
	ErrUpstreamUnknownReply = errors.New("socks5: upstream sent an unassigned reply code")
	// ErrFieldTooLong: a username, password or hostname over 255 bytes, or
	// a request with neither host nor address (client encoder).
	ErrFieldTooLong = errors.New("socks5: field too long or missing")
)
