package socks4

import (
	"bytes"
	"fmt"
	"net/netip"

	"socksd/socksproto"
)

// Command is the CD field of a SOCKS4 request.
type Command byte

const (
	CmdConnect Command = 0x01
	CmdBind    Command = 0x02 // not supported (socks-extensions.txt §1.1)
	CmdResolve Command = 0xF0 // Tor's RESOLVE (socks-extensions.txt §2)
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
	Command Command
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

// Action is what the caller must do after a Step.
type Action struct {
	// Consumed is the number of bytes of in that belong to the request.
	// On Done, in[Consumed:] is optimistic data for the upstream. On
	// ErrShortBuffer it is 0. On other errors it says how far the parser
	// read and is only informational: the connection is closed.
	Consumed int
	// Reply is what to write to the client before closing when Step
	// fails with a *ReplyError (00 5B 00 00 00 00 00 00); nil otherwise. A
	// granted request gets no reply here: the caller answers with
	// AppendReply once the upstream or resolver has answered.
	Reply []byte
	// Done means the request is complete and valid; see Handshake.Request.
	Done bool
}

// Handshake parses one SOCKS4/4a request. The zero value is ready to use.
// It holds the parsed request, including a copy of the userid, so parsing
// does not allocate except for a SOCKS4a hostname string.
type Handshake struct {
	req      Request
	finished bool // Step has returned Done or an error other than ErrShortBuffer
	valid    bool // req holds a complete, valid request
	user     [MaxMessage - headerLen - 1]byte
	reply    [8]byte
}

// Step parses the request at the start of in, which must hold every byte
// the client has sent so far (the caller appends each read to the same
// buffer and calls Step again after ErrShortBuffer).
//
// Outcomes:
//   - ErrShortBuffer: incomplete; Consumed is 0. Every strict prefix of a
//     valid request gives this.
//   - Done: the request is valid; read it with Request.
//   - a *ReplyError (errors.As), wrapping one of ErrCommandUnsupported,
//     ErrZeroPort, ErrZeroIP, ErrHostname, ErrHostnameTooLong, ErrTooLong:
//     write Action.Reply to the client, then close.
//   - ErrVersion: not SOCKS4; close without a reply.
//
// The outcome depends only on the first MaxMessage bytes of in and on
// where the request ends, never on how the bytes were split into reads:
// the framing (NUL terminators, limits) is checked first, the content
// only once the whole request is there. So a BIND is answered after its
// userid arrives, as C Tor does, and an over-long field is answered as
// soon as the limit is crossed.
func (h *Handshake) Step(in []byte) (Action, error) {
	if h.finished {
		return Action{}, ErrDone
	}
	if len(in) == 0 {
		return Action{}, ErrShortBuffer
	}
	if in[0] != 4 {
		h.finished = true
		return Action{}, fmt.Errorf("%w (got %#02x)", ErrVersion, in[0])
	}
	if len(in) < headerLen {
		return Action{}, ErrShortBuffer
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
		return Action{}, ErrShortBuffer
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
			return Action{}, ErrShortBuffer
		}
		host = rest[:n]
		end += n + 1
	}

	// Content, now that the whole request is here.
	cmd := Command(in[1])
	port := uint16(in[2])<<8 | uint16(in[3])
	switch {
	case cmd != CmdConnect && cmd != CmdResolve:
		return h.reject(end, ErrCommandUnsupported)
	case ip == [4]byte{}:
		return h.reject(end, ErrZeroIP)
	case port == 0 && cmd == CmdConnect:
		// RESOLVE carries no meaningful port, so 0 is fine there.
		return h.reject(end, ErrZeroPort)
	}
	var hostname string
	if host != nil {
		v, ok := hostOf(host)
		if !ok {
			return h.reject(end, ErrHostname)
		}
		hostname = string(v)
	}
	h.req = Request{Command: cmd, Port: port, IP: netip.AddrFrom4(ip), Host: hostname}
	if len(user) > 0 {
		h.req.UserID = h.user[:copy(h.user[:], user)]
	}
	h.finished, h.valid = true, true
	return Action{Consumed: end, Done: true}, nil
}

// Request returns the parsed request after Step reported Done, else nil.
func (h *Handshake) Request() *Request {
	if !h.valid {
		return nil
	}
	return &h.req
}

func (h *Handshake) reject(consumed int, err error) (Action, error) {
	h.finished = true
	reply := AppendReply(h.reply[:0], ReplyRejected, netip.Addr{}, 0)
	return Action{Consumed: consumed, Reply: reply}, &ReplyError{Code: ReplyRejected, Err: err}
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
