package chain

import (
	"fmt"
	"io"
	"net"
	"net/netip"

	"socksd/socks5"
)

// reply is the upstream's answer to a request.
type reply struct {
	code socks5.Reply
	addr netip.Addr // BND.ADDR for ATYP 1/4 (the RESOLVE answer)
	host string     // BND.ADDR for ATYP 3 (the RESOLVE_PTR answer)
	port uint16
}

// encodeRequest builds greeting (offering only username/password, so the
// isolation credentials always reach Tor), RFC 1929 authentication,
// request and early data as one buffer.
func encodeRequest(dst []byte, user, pass string, cmd socks5.Command, host string, ip netip.Addr, port uint16, early []byte) ([]byte, error) {
	if len(user) > 255 || len(pass) > 255 || len(host) > 255 || (host == "" && !ip.IsValid()) {
		return nil, socks5.ErrFieldTooLong
	}
	dst = append(dst, socks5.Version, 1, socks5.MethodUserPass)
	dst = append(dst, 1, byte(len(user)))
	dst = append(dst, user...)
	dst = append(dst, byte(len(pass)))
	dst = append(dst, pass...)
	dst = append(dst, socks5.Version, byte(cmd), 0)
	switch {
	case host != "":
		dst = append(dst, socks5.ATYPDomain, byte(len(host)))
		dst = append(dst, host...)
	case ip.Is4() || ip.Is4In6():
		a := ip.Unmap().As4()
		dst = append(dst, socks5.ATYPIPv4)
		dst = append(dst, a[:]...)
	default:
		a := ip.As16()
		dst = append(dst, socks5.ATYPIPv6)
		dst = append(dst, a[:]...)
	}
	dst = append(dst, byte(port>>8), byte(port))
	return append(dst, early...), nil
}

// readReply reads from c until the method selection, authentication
// status and request reply are complete, and returns the reply and the
// bytes that followed it (stream data). It reads at most cap(buf) bytes
// before giving up, so a hostile upstream cannot make it buffer without
// bound. A refusal comes back as *socks5.ReplyError with the upstream's
// code; a malformed answer as general failure.
func readReply(c net.Conn, buf []byte) (reply, []byte, error) {
	if cap(buf) < 600 {
		buf = make([]byte, 0, 600)
	}
	for {
		r, n, err := parseReply(buf)
		if err == nil {
			return r, buf[n:], replyErr(r)
		}
		if err != errShort {
			return reply{}, nil, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: err}
		}
		if len(buf) == cap(buf) {
			return reply{}, nil, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: socks5.ErrUpstreamMalformed}
		}
		m, rerr := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if rerr != nil && m == 0 {
			if rerr == io.EOF {
				rerr = ErrUpstreamClosed
			}
			return reply{}, nil, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: rerr}
		}
	}
}

func replyErr(r reply) error {
	if r.code == socks5.ReplySucceeded {
		return nil
	}
	return &socks5.ReplyError{Code: r.code}
}

var errShort = socks5.ErrShortBuffer

// parseReply parses "05 02" (method), "01 00" (auth status) and the reply.
func parseReply(in []byte) (reply, int, error) {
	if len(in) < 2 {
		return reply{}, 0, errShort
	}
	if in[0] != socks5.Version {
		return reply{}, 0, socks5.ErrUpstreamVersion
	}
	if in[1] != socks5.MethodUserPass {
		return reply{}, 0, socks5.ErrUpstreamMethod
	}
	if len(in) < 4 {
		return reply{}, 0, errShort
	}
	if in[2] != 1 || in[3] != 0 {
		return reply{}, 0, socks5.ErrUpstreamAuth
	}
	p := in[4:]
	if len(p) < 4 {
		return reply{}, 0, errShort
	}
	if p[0] != socks5.Version || p[2] != 0 {
		return reply{}, 0, socks5.ErrUpstreamMalformed
	}
	r := reply{code: socks5.Reply(p[1])}
	if !r.code.Known() {
		return reply{}, 0, socks5.ErrUpstreamUnknownReply
	}
	var alen int
	switch p[3] {
	case socks5.ATYPIPv4, socks5.ATYPNone:
		alen = 4
	case socks5.ATYPIPv6:
		alen = 16
	case socks5.ATYPDomain:
		if len(p) < 5 {
			return reply{}, 0, errShort
		}
		alen = 1 + int(p[4])
	default:
		return reply{}, 0, fmt.Errorf("%w: ATYP %#02x", socks5.ErrUpstreamMalformed, p[3])
	}
	if len(p) < 4+alen+2 {
		return reply{}, 0, errShort
	}
	a := p[4 : 4+alen]
	switch p[3] {
	case socks5.ATYPIPv4:
		r.addr = netip.AddrFrom4([4]byte(a))
	case socks5.ATYPIPv6:
		r.addr = netip.AddrFrom16([16]byte(a))
	case socks5.ATYPDomain:
		r.host = string(a[1:])
	}
	r.port = uint16(p[4+alen])<<8 | uint16(p[4+alen+1])
	return r, 4 + 4 + alen + 2, nil
}
