package socks5

import "socksd/socksproto"

// stepGreeting parses "VER NMETHODS METHODS" (RFC 1928 §3) and selects a
// method the way C Tor does (proto_socks.c process_socks5_methods_request):
// username/password when offered, so isolation credentials arrive, else
// no-auth; anything else, zero methods included, gets "05 FF". Tor's
// extended authentication (0x97, proposal 229) comes first when offered:
// a client offering it asks for per-stream options.
func (h *Handshake) stepGreeting(in []byte) (socksproto.Action, error) {
	if len(in) < 1 {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	if in[0] != Version {
		// Includes "auth before negotiation" (a first message starting
		// 0x01): the first byte decides the protocol, and a peer that does
		// not start with 5 gets no SOCKS5 answer.
		return h.fail(0, nil, socksproto.ErrVersion)
	}
	if len(in) < 2 {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	n := int(in[1])
	if len(in) < 2+n {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	var extAuth, userPass, noAuth bool
	for _, m := range in[2 : 2+n] {
		switch m {
		case MethodTorExtended:
			extAuth = true
		case MethodUserPass:
			userPass = true
		case MethodNoAuth:
			noAuth = true
		}
	}
	h.reply = [2]byte{Version, MethodNoAcceptable}
	switch {
	case extAuth:
		h.method = MethodTorExtended
		h.state = stateExtAuth
	case userPass:
		h.method = MethodUserPass
		h.state = stateAuth
	case noAuth:
		h.method = MethodNoAuth
		h.state = stateRequest
	default:
		return h.fail(2+n, h.reply[:], ErrNoAcceptableMethod)
	}
	h.reply[1] = h.method
	return socksproto.Action{Consumed: 2 + n, Reply: h.reply[:]}, nil
}
