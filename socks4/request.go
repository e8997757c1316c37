package socks4

import (
	"bytes"
	"fmt"
	"net/netip"

	"socksd/socksproto"
)

// Limits on a request. A request still unterminated when the buffer holds
// MaxMessage bytes is refused at once instead of being waited for, so a
// client cannot make socksd buffer an unbounded userid or hostname.
const (
	MaxHostname = socksproto.MaxHostname // longest SOCKS4a hostname, as SOCKS5's one-byte length
	MaxMessage  = 512                    // longest whole request, header + userid + NUL + hostname + NUL
	headerLen   = 8                      // VN CD DSTPORT(2) DSTIP(4)
)

// Request is a complete, validated SOCKS4 or SOCKS4a request.
type Request struct {
	Command socksproto.Command
	Port    uint16
	// IP is DSTIP as sent. For SOCKS4a it is the marker 0.0.0.x (x != 0)
	// and Host holds the destination.
	IP netip.Addr
	// Host is the SOCKS4a hostname ("" for plain SOCKS4). It satisfies
	// socksproto.ValidHostname, or it is an IPv6 literal (brackets around
	// it stripped): SOCKS4a's only way to name an IPv6 destination. It may
	// be an IP literal, so check it with netip.ParseAddr before treating it
	// as a name.
	Host string
	// UserID is the userid as sent, without its NUL; nil when empty. It is
	// isolation data (socks-extensions.txt §1.1), never a credential. It
	// points into the Handshake's own storage, which is never reused.
	UserID []byte
}

// Is4a reports whether the request used SOCKS4a (DSTIP 0.0.0.x, x != 0).
func (r *Request) Is4a() bool { return is4aMarker(r.IP.As4()) }

func is4aMarker(ip [4]byte) bool {
	return ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0
}

// Handshake parses one SOCKS4/4a request. The zero value is ready to use.
// It holds the parsed request, including a copy of the userid, so parsing
// does not allocate except for a SOCKS4a hostname string.
type Handshake struct {
	req      Request
	finished bool // Step has returned Done or an error other than socksproto.ErrShortBuffer
	valid    bool // req holds a complete, valid request
	user     [MaxMessage - headerLen - 1]byte
	reply    [8]byte
}

// Step parses the request at the start of in under the contract of
// socksproto.Action: in holds every byte the client has sent so far (a
// SOCKS4 request is one message, so nothing is consumed before Done).
//
// Outcomes:
//   - socksproto.ErrShortBuffer: incomplete; Consumed is 0. Every strict
//     prefix of a valid request gives this.
//   - Done: the request is valid; read it with Request.
//   - a *ReplyError (errors.As), wrapping one of socksproto.ErrCommand,
//     socksproto.ErrPortZero, socksproto.ErrHostname, ErrZeroIP,
//     ErrHostnameTooLong, ErrTooLong: write Action.Reply to the client,
//     then close.
//   - socksproto.ErrVersion: not SOCKS4; close without a reply.
//
// The outcome depends only on the first MaxMessage bytes of in and on
// where the request ends, never on how the bytes were split into reads:
// the framing (NUL terminators, limits) is checked first, the content
// only once the whole request is there. So a BIND is answered after its
// userid arrives, as C Tor does, and an over-long field is answered as
// soon as the limit is crossed.
func (h *Handshake) Step(in []byte) (socksproto.Action, error) {
	if h.finished {
		return socksproto.Action{}, socksproto.ErrHandshakeOver
	}
	if len(in) == 0 {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	if in[0] != 4 {
		h.finished = true
		return socksproto.Action{}, fmt.Errorf("%w (got %#02x)", socksproto.ErrVersion, in[0])
	}
	if len(in) < headerLen {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	// Everything is decided from the first MaxMessage bytes, which is
	// what makes the outcome independent of how reads were split.
	lim := in
	if len(lim) > MaxMessage {
		lim = lim[:MaxMessage]
	}

	// Framing: USERID NUL, then for SOCKS4a HOSTNAME NUL.
	userEnd := bytes.IndexByte(lim[headerLen:], 0)
	if userEnd < 0 {
		if len(lim) == MaxMessage {
			return h.reject(len(lim), ErrTooLong)
		}
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	user := lim[headerLen : headerLen+userEnd]
	end := headerLen + userEnd + 1

	ip := [4]byte(in[4:8])
	var host []byte
	if is4aMarker(ip) {
		rest := lim[end:]
		n := bytes.IndexByte(rest, 0)
		switch {
		case n > MaxHostname || (n < 0 && len(rest) > MaxHostname):
			return h.reject(min(end+MaxHostname+1, len(lim)), ErrHostnameTooLong)
		case n < 0 && len(lim) == MaxMessage:
			return h.reject(len(lim), ErrTooLong)
		case n < 0:
			return socksproto.Action{}, socksproto.ErrShortBuffer
		}
		host = rest[:n]
		end += n + 1
	}

	// Content, now that the whole request is here.
	cmd := socksproto.Command(in[1])
	port := uint16(in[2])<<8 | uint16(in[3])
	switch {
	case !cmd.Accepted(4):
		return h.reject(end, socksproto.ErrCommand)
	case ip == [4]byte{}:
		return h.reject(end, ErrZeroIP)
	case port == 0 && cmd == socksproto.CmdConnect:
		// RESOLVE carries no meaningful port, so 0 is fine there.
		return h.reject(end, socksproto.ErrPortZero)
	}
	var hostname string
	if host != nil {
		v, ok := hostOf(host)
		if !ok {
			return h.reject(end, socksproto.ErrHostname)
		}
		hostname = string(v)
	}
	h.req = Request{Command: cmd, Port: port, IP: netip.AddrFrom4(ip), Host: hostname}
	if len(user) > 0 {
		h.req.UserID = h.user[:copy(h.user[:], user)]
	}
	h.finished, h.valid = true, true
	return socksproto.Action{Consumed: end, Done: true}, nil
}

// Request returns the parsed request after Step reported Done, else nil.
func (h *Handshake) Request() *Request {
	if !h.valid {
		return nil
	}
	return &h.req
}

func (h *Handshake) reject(consumed int, err error) (socksproto.Action, error) {
	h.finished = true
	reply := AppendReply(h.reply[:0], ReplyRejected, netip.Addr{}, 0)
	return socksproto.Action{Consumed: consumed, Reply: reply}, &ReplyError{Code: ReplyRejected, Err: err}
}

// hostOf returns the destination a SOCKS4a HOSTNAME names: the name itself
// when socksproto.ValidHostname accepts it, or the IPv6 literal inside
// optional brackets (the SOCKS4a addition to that rule, written down at
// socksproto.ValidHostname).
func hostOf(name []byte) ([]byte, bool) {
	if bytes.IndexByte(name, ':') < 0 {
		if !socksproto.ValidHostname(name) {
			return nil, false
		}
		return name, true
	}
	// Only names containing ':' get here, so ParseIPLiteral's string
	// conversion (an allocation) stays off the common path.
	if _, ok := socksproto.ParseIPLiteral(name); ok {
		if name[0] == '[' {
			name = name[1 : len(name)-1]
		}
		return name, true
	}
	return nil, false
}
