package socks5

import (
	"fmt"
	"net/netip"

	"socksd/socksproto"
)

// CheckClientRequest reports why AppendClientRequest would refuse its
// arguments: a username or password over 255 bytes (RFC 1929 §2), a host
// not socksproto.ValidHostnameString, or neither host nor ip.
func CheckClientRequest(user, pass []byte, host string, ip netip.Addr) error {
	switch {
	case len(user) > 255 || len(pass) > 255:
		return fmt.Errorf("%w: credentials over 255 bytes", ErrFieldTooLong)
	case host != "" && !socksproto.ValidHostnameString(host):
		return fmt.Errorf("%w: hostname not sendable", ErrFieldTooLong)
	case host == "" && !ip.IsValid():
		return fmt.Errorf("%w: no destination", ErrFieldTooLong)
	}
	return nil
}

// AppendClientRequest appends everything socksd sends to an upstream SOCKS5
// server (Tor's SocksPort) in one pipelined write: a greeting offering only
// username/password (0x02, so the isolation credentials always reach Tor),
// the RFC 1929 sub-negotiation, the request and the client's optimistic
// data (socks-extensions.txt §5; Tor accepts all of it before answering).
//
// The destination is host (ATYP 3) when non-empty, else ip (ATYP 1 for
// IPv4 and IPv4-mapped addresses, ATYP 4 for IPv6). user and pass may be
// empty (Tor accepts that, bug 29175). Arguments CheckClientRequest refuses
// append nothing: the caller checks first, or compares lengths.
func AppendClientRequest(dst []byte, user, pass []byte, cmd socksproto.Command, host string, ip netip.Addr, port uint16, early []byte) []byte {
	if CheckClientRequest(user, pass, host, ip) != nil {
		return dst
	}
	dst = append(dst, Version, 1, MethodUserPass)
	dst = append(dst, userPassVersion, byte(len(user)))
	dst = append(dst, user...)
	dst = append(dst, byte(len(pass)))
	dst = append(dst, pass...)
	dst = append(dst, Version, byte(cmd), 0x00)
	dst = appendAddr(dst, host, ip, port)
	return append(dst, early...)
}

// Client parses an upstream server's answers to AppendClientRequest, in
// order: method selection (must be "05 02"; C Tor omits it when the
// greeting and credentials arrive in one read, which Client accepts), the
// RFC 1929 status (must be "01 00"), then the request reply (RFC 1928 §6).
// It trusts nothing: wrong
// versions, methods we did not offer, non-zero reserved bytes, unknown
// address types, ATYP 0 on success, empty or invalid hostnames and answers
// of the wrong kind for the command are errors, never panics.
//
// Step consumes every complete message at the start of in. It returns
// socksproto.ErrShortBuffer (consuming nothing) when not even the next message is
// complete; a nil error with Done false when it consumed some messages
// and needs more; Done when the reply has been read, with in[Consumed:]
// the first bytes of the stream. A failure reply is returned as a
// *ReplyError carrying the upstream's code (unassigned codes become
// ReplyGeneralFailure wrapping ErrUpstreamUnknownReply), with
// ClientResult.Consumed and Code filled in.
type Client struct {
	// socksproto.Command is the command that was sent; it decides which answers are
	// valid: RESOLVE wants an address, RESOLVE_PTR a hostname.
	Command socksproto.Command

	state clientState
	host  [255]byte
}

type clientState uint8

const (
	clientMethod clientState = iota
	clientAuth
	clientReply
	clientDone
)

// ClientResult is the outcome of one Client.Step.
type ClientResult struct {
	Consumed int
	Done     bool
	Code     Reply
	// IP or Host is the BND.ADDR of a successful reply: the RESOLVE answer,
	// the RESOLVE_PTR answer (Host), or what a CONNECT reported (usually
	// 0.0.0.0 from Tor). Host aliases the Client until Reset.
	IP   netip.Addr
	Host []byte
	Port uint16
}

// Reset prepares c for another exchange with the same socksproto.Command.
func (c *Client) Reset() { c.state = clientMethod }

// Step parses the upstream's bytes; see Client.
func (c *Client) Step(in []byte) (ClientResult, error) {
	var res ClientResult
	for {
		n, err := c.step(in[res.Consumed:], &res)
		res.Consumed += n
		if err == socksproto.ErrShortBuffer && res.Consumed > 0 {
			return res, nil
		}
		if err != nil || res.Done {
			if err != nil && err != socksproto.ErrShortBuffer {
				c.state = clientDone
			}
			return res, err
		}
	}
}

// step parses one message; it returns the bytes it used.
func (c *Client) step(in []byte, res *ClientResult) (int, error) {
	if c.state == clientDone {
		return 0, socksproto.ErrHandshakeOver
	}
	if len(in) < 1 {
		return 0, socksproto.ErrShortBuffer
	}
	switch c.state {
	case clientMethod:
		if in[0] == userPassVersion {
			// C Tor (0.4.9.11, observed) keeps only the last reply it
			// produced per read: when greeting and credentials arrive
			// together, as AppendClientRequest sends them, "05 02" is
			// never sent and the answers start with "01 00". We offered
			// only 0x02, so an RFC 1929 status can only mean it was chosen.
			c.state = clientAuth
			return c.step(in, res)
		}
		if in[0] != Version {
			return 0, ErrUpstreamVersion
		}
		if len(in) < 2 {
			return 0, socksproto.ErrShortBuffer
		}
		switch in[1] {
		case MethodUserPass:
			c.state = clientAuth
			return 2, nil
		case MethodNoAcceptable:
			return 2, ErrUpstreamNoMethod
		}
		return 2, ErrUpstreamMethod
	case clientAuth:
		if in[0] != userPassVersion {
			return 0, ErrUpstreamVersion
		}
		if len(in) < 2 {
			return 0, socksproto.ErrShortBuffer
		}
		if in[1] != 0 {
			return 2, ErrUpstreamAuth
		}
		c.state = clientReply
		return 2, nil
	}
	return c.stepReply(in, res)
}

// stepReply parses "VER REP RSV ATYP BND.ADDR BND.PORT".
func (c *Client) stepReply(in []byte, res *ClientResult) (int, error) {
	if in[0] != Version {
		return 0, ErrUpstreamVersion
	}
	if len(in) < 3 {
		return 0, socksproto.ErrShortBuffer
	}
	code := Reply(in[1])
	if in[2] != 0 {
		return 0, fmt.Errorf("%w: reserved byte %#02x", ErrUpstreamMalformed, in[2])
	}
	if len(in) < 4 {
		return 0, socksproto.ErrShortBuffer
	}
	if in[3] == ATYPNone && code == ReplySucceeded {
		// C Tor's failed RESOLVE: "05 04 00 00 00000000 0000".
		// Meaningless on success, where the caller would need an address.
		return 0, fmt.Errorf("%w: ATYP 0 on success", ErrUpstreamMalformed)
	}
	n := addrLen(in[3:])
	switch {
	case n < 0:
		return 0, fmt.Errorf("%w: ATYP %#02x", ErrUpstreamMalformed, in[3])
	case n == 0 || len(in) < 3+n:
		return 0, socksproto.ErrShortBuffer
	}
	end := 3 + n
	res.Code = code
	if code != ReplySucceeded {
		// The BND fields of a failure carry nothing we use; only the code.
		if !code.Known() {
			res.Code = ReplyGeneralFailure
			return end, &ReplyError{Code: ReplyGeneralFailure,
				Err: fmt.Errorf("%w %#02x", ErrUpstreamUnknownReply, byte(code))}
		}
		return end, &ReplyError{Code: code}
	}
	atyp := in[3]
	switch c.Command {
	case socksproto.CmdResolve:
		if atyp == ATYPDomain {
			return end, fmt.Errorf("%w: RESOLVE answered with a hostname", ErrUpstreamMalformed)
		}
	case socksproto.CmdResolvePTR:
		if atyp != ATYPDomain {
			return end, fmt.Errorf("%w: RESOLVE_PTR answered with an address", ErrUpstreamMalformed)
		}
	}
	ip, name, port := decodeAddr(in[3:end])
	res.IP, res.Port = ip, port
	if atyp == ATYPDomain {
		if !socksproto.ValidHostname(name) {
			return end, fmt.Errorf("%w: invalid hostname in reply", ErrUpstreamMalformed)
		}
		res.Host = c.host[:copy(c.host[:], name)]
	}
	res.Done = true
	c.state = clientDone
	return end, nil
}
