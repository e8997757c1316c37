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

import "errors"

// Version is the SOCKS protocol version byte (RFC 1928 §3).
const Version = 0x05

// Authentication methods (RFC 1928 §3).
const (
	MethodNoAuth       = 0x00
	MethodUserPass     = 0x02 // RFC 1929
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

// Command is the CMD field of a SOCKS5 request (RFC 1928 §4,
// socks-extensions.txt §2).
type Command byte

const (
	CmdConnect      Command = 0x01
	CmdBind         Command = 0x02
	CmdUDPAssociate Command = 0x03
	CmdResolve      Command = 0xF0 // Tor: forward lookup, answer in BND.ADDR
	CmdResolvePTR   Command = 0xF1 // Tor: reverse lookup, answer as a hostname
)

func (c Command) String() string {
	switch c {
	case CmdConnect:
		return "CONNECT"
	case CmdBind:
		return "BIND"
	case CmdUDPAssociate:
		return "UDP ASSOCIATE"
	case CmdResolve:
		return "RESOLVE"
	case CmdResolvePTR:
		return "RESOLVE_PTR"
	}
	return "unknown command"
}

// TorIsolationUsername is the proposal 351 username whose password is the
// stream-isolation key; extPrefix starts every extended-parameter username.
const (
	TorIsolationUsername = "<torS0X>0"
	extPrefix            = "<torS0X>"
)

// Sentinel errors. Request-phase rejections come wrapped in *ReplyError
// whose Code is the reply already encoded in Action.Reply.
var (
	// ErrShortBuffer: the input holds no complete message yet. Nothing was
	// consumed; keep the bytes, read more, call again with all of them.
	ErrShortBuffer = errors.New("socks5: short buffer")

	// ErrVersion: a version byte other than 5 where a SOCKS5 message must
	// start. Nothing is sent: the peer does not speak SOCKS5.
	ErrVersion = errors.New("socks5: wrong protocol version")
	// ErrNoAcceptableMethod: the greeting offered no method we accept
	// (or none at all); "05 FF" is sent, then the connection is closed.
	ErrNoAcceptableMethod = errors.New("socks5: no acceptable authentication method")
	// ErrAuthVersion: the username/password message had a VER other than 1.
	ErrAuthVersion = errors.New("socks5: wrong username/password sub-negotiation version")
	// ErrAuthRejected: the credentials were refused ("01 01" is sent).
	ErrAuthRejected = errors.New("socks5: credentials rejected")
	// ErrTorExtension: a "<torS0X>" username in a format other than "0".
	ErrTorExtension = errors.New("socks5: unsupported <torS0X> username format")
	// ErrAuthRepeated: a second username/password message.
	ErrAuthRepeated = errors.New("socks5: repeated username/password message")
	// ErrReserved: RSV of a request was not zero.
	ErrReserved = errors.New("socks5: reserved byte not zero")
	// ErrCommand: BIND, UDP ASSOCIATE or an unknown command.
	ErrCommand = errors.New("socks5: command not supported")
	// ErrAddressType: an unknown ATYP, or RESOLVE_PTR of a hostname.
	ErrAddressType = errors.New("socks5: address type not supported")
	// ErrHostname: the DOMAINNAME is empty, has a NUL, is not UTF-8 or not
	// a hostname at all.
	ErrHostname = errors.New("socks5: invalid hostname")
	// ErrPortZero: CONNECT to port 0.
	ErrPortZero = errors.New("socks5: connect to port 0")
	// ErrHandshakeOver: Step called after the handshake finished or failed.
	ErrHandshakeOver = errors.New("socks5: handshake already finished")

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
