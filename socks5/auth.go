package socks5

import (
	"bytes"

	"socksd/socksproto"
)

// stepAuth parses "VER ULEN UNAME PLEN PASSWD" (RFC 1929 §2). Empty
// fields are accepted as C Tor does since bug 29175 (0.3.5.8): the values
// are isolation data, not access control.
func (h *Handshake) stepAuth(in []byte) (socksproto.Action, error) {
	if len(in) < 1 {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	h.authRep = [2]byte{userPassVersion, 0x01}
	if in[0] != userPassVersion {
		// RFC 1929 §2: a non-zero STATUS means failure and the server
		// closes. Answer at once: the rest of the message is unparseable.
		return h.fail(0, h.authRep[:], ErrAuthVersion)
	}
	if len(in) < 2 {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	ulen := int(in[1])
	if len(in) < 3+ulen {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	plen := int(in[2+ulen])
	end := 3 + ulen + plen
	if len(in) < end {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	// Copy: in belongs to the caller and its next read may overwrite it.
	user := h.user[:copy(h.user[:], in[2:2+ulen])]
	pass := h.pass[:copy(h.pass[:], in[3+ulen:end])]
	h.req.HasAuth = true
	h.req.Username, h.req.Password = user, pass

	// Proposal 351: "<torS0X>" starts an extended-parameter username; C Tor
	// 0.4.9 knows only format "0" (password = isolation key) and refuses
	// the others instead of mistaking them for legacy isolation data.
	if bytes.HasPrefix(user, []byte(socksproto.TorExtPrefix)) && string(user) != socksproto.TorIsolationUsername {
		return h.fail(end, h.authRep[:], ErrTorExtension)
	}
	h.authRep[1] = 0x00
	h.state = stateRequest
	return socksproto.Action{Consumed: end, Reply: h.authRep[:]}, nil
}
