package socks5

import (
	"net/netip"

	"socksd/socksproto"
)

// Handshake is the server side of one SOCKS5 handshake (RFC 1928 §3–4,
// RFC 1929), fed bytes by the caller. The zero value accepts methods 0x00
// and 0x02 and treats credentials as isolation data only.
//
// Use: call Step under the contract of socksproto.Action, with every
// byte not yet consumed; when it reports Done, Request() holds the request.
//
// Step returns after each phase (greeting, username/password, request), so
// a client that pipelines all three in one write needs three Step calls on
// the remaining bytes; the replies of each phase must be written in order.
//
// A Handshake holds the hostname and credentials in fixed arrays, so a
// complete handshake does not allocate; Request's byte slices alias them
// and stay valid until Reset.
type Handshake struct {
	state   hsState
	method  byte
	req     Request
	host    [255]byte
	user    [255]byte
	pass    [255]byte
	reply   [2]byte  // method selection
	authRep [2]byte  // RFC 1929 status
	extRep  [4]byte  // proposal 229 status
	reqRep  [10]byte // request rejection
}

type hsState uint8

const (
	stateGreeting hsState = iota // expecting "05 NMETHODS METHODS"
	stateAuth                    // 0x02 selected: expecting "01 ULEN ..."
	stateExtAuth                 // 0x97 selected: expecting "01 NPAIRS ..."
	stateRequest                 // expecting the request (or, after 0x00, an unsolicited "01 ...")
	stateDone
	stateFailed
)

// Request is a complete SOCKS5 request.
type Request struct {
	Command socksproto.Command
	// IP is the destination for ATYP 1 and 4 (an IPv4-mapped IPv6 address
	// is unmapped, so internal-address checks see the IPv4 address), and
	// for RESOLVE_PTR whose DOMAINNAME is an address literal, as C Tor
	// accepts. Invalid when Host is set.
	IP netip.Addr
	// Host is the ATYP 3 DOMAINNAME, checked with socksproto.ValidHostname.
	// It aliases the Handshake and is valid until Reset; nil when IP is set.
	Host []byte
	Port uint16

	// HasAuth: the client sent a username/password message (solicited
	// or not). Username and Password alias the Handshake like Host; either
	// may be empty (socks-extensions.txt §1.1, Tor bug 29175).
	HasAuth            bool
	Username, Password []byte

	// ExtAuth: the client negotiated method 0x97 (proposal 229), which
	// also says it understands Tor's extended reply codes. Options holds
	// what its pairs asked for; USERNAME and PASSWD pairs fill Username
	// and Password (and HasAuth) as RFC 1929 would.
	ExtAuth bool
	Options socksproto.StreamOptions
}

// Request returns the parsed request; valid after Step returned Done,
// until Reset.
func (h *Handshake) Request() *Request { return &h.req }

// Reset prepares h for a new connection. Slices from an earlier Request
// become invalid.
func (h *Handshake) Reset() {
	h.state = stateGreeting
	h.method = 0
	h.req = Request{}
}

// Step consumes the next complete message of in. See Handshake.
func (h *Handshake) Step(in []byte) (socksproto.Action, error) {
	switch h.state {
	case stateGreeting:
		return h.stepGreeting(in)
	case stateAuth:
		return h.stepAuth(in)
	case stateExtAuth:
		return h.stepExtAuth(in)
	case stateRequest:
		// RFC 1929 after 0x00 was selected: C Tor accepts a message
		// starting with 0x01 as username/password in any state before the
		// request (proto_socks.c handle_socks_message), for clients that
		// send it unasked (socks-extensions.txt §1.1).
		if len(in) > 0 && in[0] == userPassVersion {
			if h.req.HasAuth {
				// A second username/password message: C Tor parses it
				// as a request and answers general failure (observed
				// with tor 0.4.9.11).
				return h.reject(0, ReplyGeneralFailure, ErrAuthRepeated)
			}
			return h.stepAuth(in)
		}
		return h.stepRequest(in)
	}
	return socksproto.Action{}, socksproto.ErrHandshakeOver
}

// fail moves h to the failed state and returns err with reply.
func (h *Handshake) fail(consumed int, reply []byte, err error) (socksproto.Action, error) {
	h.state = stateFailed
	return socksproto.Action{Consumed: consumed, Reply: reply}, err
}
