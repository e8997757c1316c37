package chain

import (
	"errors"
	"io"
	"net"
	"net/netip"

	"socksd/socks5"
	"socksd/socksproto"
)

// reply is the upstream's answer to a request.
type reply struct {
	addr netip.Addr // BND.ADDR for ATYP 1/4 (the RESOLVE answer)
	host string     // BND.ADDR for ATYP 3 (the RESOLVE_PTR answer)
}

// encodeRequest builds greeting (offering only username/password, so the
// isolation credentials always reach Tor), RFC 1929 authentication,
// request and early data as one buffer (socks5.AppendClientRequest).
func encodeRequest(dst []byte, user, pass string, cmd socksproto.Command, host string, ip netip.Addr, port uint16, early []byte) ([]byte, error) {
	if err := socks5.CheckClientRequest([]byte(user), []byte(pass), host, ip); err != nil {
		return nil, err
	}
	return socks5.AppendClientRequest(dst, []byte(user), []byte(pass), cmd, host, ip, port, early), nil
}

// maxReply bounds what readReply buffers: method (2) + auth status (2) +
// the longest reply (4 + 1 + 255 + 2), rounded up. Bytes past the reply
// that arrive in the same read are stream data and are handed back.
const maxReply = 600

// readReply reads from c until the method selection, authentication
// status and request reply are complete (socks5.Client), and returns the
// reply and the bytes that followed it. It never buffers more than
// maxReply bytes for a hostile upstream. A refusal is a *socks5.ReplyError
// with the upstream's code; a malformed answer or an early close is
// general failure.
func readReply(c net.Conn, cmd socksproto.Command, buf []byte) (reply, []byte, error) {
	if cap(buf) < maxReply {
		buf = make([]byte, 0, maxReply)
	}
	cl := socks5.Client{Command: cmd}
	start := 0
	for {
		if start < len(buf) {
			res, err := cl.Step(buf[start:])
			start += res.Consumed
			switch {
			case err == nil && res.Done:
				return reply{addr: res.IP, host: string(res.Host)}, buf[start:], nil
			case err == nil || errors.Is(err, socksproto.ErrShortBuffer):
			default:
				var re *socks5.ReplyError
				if errors.As(err, &re) {
					return reply{}, nil, err
				}
				return reply{}, nil, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: err}
			}
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
