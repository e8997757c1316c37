package socks5

import "net/netip"

// Handshake is the server side of one SOCKS5 handshake (RFC 1928 §3–4,
// RFC 1929), fed bytes by the caller. The zero value accepts methods 0x00
// and 0x02 and treats credentials as isolation data only.
//
// Use: call Step with everything unread; write Action.Reply if non-nil;
// drop Action.Consumed bytes; if Action.Done, in[Consumed:] is the client's
// optimistic data and Request() holds the request. On ErrShortBuffer read
// more and call again with all unconsumed bytes. On any other error write
// Action.Reply (if non-nil) and close.
//
// Step returns after each phase (greeting, username/password, request), so
// a client that pipelines all three in one write needs three Step calls on
// the remaining bytes; the replies of each phase must be written in order.
//
// A Handshake holds the hostname and credentials in fixed arrays, so a
// complete handshake does not allocate; Request's byte slices alias them
// and stay valid until Reset.
type Handshake struct {
	// RequireAuth: the listener is configured with required credentials.
	// Only method 0x02 is acceptable and Credentials must approve the
	// username/password (a nil Credentials approves nothing: fail closed).
	RequireAuth bool
	// Credentials checks a username/password when RequireAuth is set. It
	// must not retain the slices.
	Credentials func(user, pass []byte) bool

	state   hsState
	method  byte
	req     Request
	host    [255]byte
	user    [255]byte
	pass    [255]byte
	reply   [2]byte  // method selection
	authRep [2]byte  // RFC 1929 status
	reqRep  [10]byte // request rejection
}

type hsState uint8

const (
	stateGreeting hsState = iota // expecting "05 NMETHODS METHODS"
	stateAuth                    // 0x02 selected: expecting "01 ULEN ..."
	stateRequest                 // expecting the request (or, after 0x00, an unsolicited "01 ...")
	stateDone
	stateFailed
)

// Request is a complete SOCKS5 request.
type Request struct {
	Command Command
	// IP is the destination for ATYP 1 and 4 (an IPv4-mapped IPv6 address
	// is unmapped, so internal-address checks see the IPv4 address), and
	// for RESOLVE_PTR whose DOMAINNAME is an address literal, as C Tor
	// accepts. Invalid when Host is set.
	IP netip.Addr
	// Host is the ATYP 3 DOMAINNAME, checked with socksproto.ValidHostname. It aliases
	// the Handshake and is valid until Reset; nil when IP is set.
	Host []byte
	Port uint16

	// HasAuth: the client sent a username/password message (solicited
	// or not). Username and Password alias the Handshake like Host; either
	// may be empty (socks-extensions.txt §1.1, Tor bug 29175).
	HasAuth            bool
	Username, Password []byte
	// TorIsolationForm: the username was exactly "<torS0X>0": proposal 351
	// format 0, the password alone is the isolation key.
	TorIsolationForm bool
}

// Action tells the caller what one Step did.
type Action struct {
	Consumed int    // bytes of in used
	Reply    []byte // bytes to write to the client now; aliases h, valid until Reset
	Done     bool   // request complete: in[Consumed:] is optimistic data
}

// Request returns the parsed request; valid after Step returned Done,
// until Reset.
func (h *Handshake) Request() *Request { return &h.req }

// Reset prepares h for a new connection, keeping RequireAuth and
// Credentials. Slices from an earlier Request become invalid.
func (h *Handshake) Reset() {
	h.state = stateGreeting
	h.method = 0
	h.req = Request{}
}

// Step consumes the next complete message of in. See Handshake.
func (h *Handshake) Step(in []byte) (Action, error) {
	switch h.state {
	case stateGreeting:
		return h.stepGreeting(in)
	case stateAuth:
		return h.stepAuth(in)
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
	return Action{}, ErrHandshakeOver
}

// fail moves h to the failed state and returns err with reply.
func (h *Handshake) fail(consumed int, reply []byte, err error) (Action, error) {
	h.state = stateFailed
	return Action{Consumed: consumed, Reply: reply}, err
}
