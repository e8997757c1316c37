package socks5

import (
	"encoding/binary"
	"fmt"

	"socksd/socksproto"
)

// MaxExtAuth bounds a proposal 229 message. The proposal allows 65535
// pairs of 64 KiB each; socksd's keys need a few hundred bytes, so a
// longer message is refused (status 0x02) as soon as its lengths say so,
// and a client cannot make socksd buffer more.
const MaxExtAuth = 2048

// Proposal 229 response statuses.
const (
	extAuthSuccess     = 0x00
	extAuthInvalidArgs = 0x02 // 0x01, authentication failed, is never sent: nothing is access control
)

// stepExtAuth parses Tor's extended authentication (proposal 229 §2.1):
//
//	VER(1)=1 NPAIRS(2) { KLEN(2) KEY VLEN(2) VALUE }*
//
// and answers "01 STATUS 0000" (no pairs back). Keys are the stream
// options of socksproto.StreamOptions, plus the proposal's USERNAME and
// PASSWD, which are the RFC 1929 credentials (at most 255 bytes each).
// A VER other than 1 or an empty key breaks a MUST of the proposal and
// the connection is closed without an answer; an unknown key, a bad or
// repeated value or a message over MaxExtAuth gets status 0x02 and a
// close. Zero pairs is a valid message that asks for nothing.
func (h *Handshake) stepExtAuth(in []byte) (socksproto.Action, error) {
	if len(in) < 1 {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	if in[0] != 0x01 {
		return h.fail(0, nil, fmt.Errorf("%w: VER %#02x", ErrExtAuthVersion, in[0]))
	}
	h.extRep = [4]byte{0x01, extAuthInvalidArgs, 0, 0}
	if len(in) < 3 {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	// Framing first, so the outcome never depends on how reads split.
	n := int(binary.BigEndian.Uint16(in[1:3]))
	end := 3
	for i := 0; i < n; i++ {
		for field := 0; field < 2; field++ {
			if end+2 > MaxExtAuth {
				return h.fail(min(end, len(in)), h.extRep[:], fmt.Errorf("%w: over %d bytes", ErrExtAuthArgs, MaxExtAuth))
			}
			if len(in) < end+2 {
				return socksproto.Action{}, socksproto.ErrShortBuffer
			}
			l := int(binary.BigEndian.Uint16(in[end:]))
			if field == 0 && l == 0 {
				return h.fail(end, nil, fmt.Errorf("%w: empty key", ErrExtAuthVersion))
			}
			end += 2 + l
			if end > MaxExtAuth {
				return h.fail(min(end, len(in)), h.extRep[:], fmt.Errorf("%w: over %d bytes", ErrExtAuthArgs, MaxExtAuth))
			}
		}
	}
	if len(in) < end {
		return socksproto.Action{}, socksproto.ErrShortBuffer
	}
	// Content.
	r := &h.req
	r.ExtAuth = true
	var user, pass bool
	for off := 3; off < end; {
		kl := int(binary.BigEndian.Uint16(in[off:]))
		key := in[off+2 : off+2+kl]
		off += 2 + kl
		vl := int(binary.BigEndian.Uint16(in[off:]))
		val := in[off+2 : off+2+vl]
		off += 2 + vl
		var err error
		switch string(key) {
		case "USERNAME", "PASSWD":
			dup := &user
			if key[0] == 'P' {
				dup = &pass
			}
			switch {
			case *dup:
				err = fmt.Errorf("%w: %s given twice", ErrExtAuthArgs, key)
			case len(val) > 255:
				err = fmt.Errorf("%w: %s over 255 bytes", ErrExtAuthArgs, key)
			case key[0] == 'U':
				r.Username = h.user[:copy(h.user[:], val)]
			default:
				r.Password = h.pass[:copy(h.pass[:], val)]
			}
			*dup, r.HasAuth = true, true
		default:
			if err = r.Options.Set(key, val); err != nil {
				err = fmt.Errorf("%w: %w", ErrExtAuthArgs, err)
			}
		}
		if err != nil {
			return h.fail(end, h.extRep[:], err)
		}
	}
	h.extRep[1] = extAuthSuccess
	h.state = stateRequest
	return socksproto.Action{Consumed: end, Reply: h.extRep[:]}, nil
}

// AppendExtAuth appends a proposal 229 request carrying pairs, for
// clients and tests.
func AppendExtAuth(dst []byte, pairs ...[2]string) []byte {
	dst = append(dst, 0x01, byte(len(pairs)>>8), byte(len(pairs)))
	for _, p := range pairs {
		for _, f := range p {
			dst = append(dst, byte(len(f)>>8), byte(len(f)))
			dst = append(dst, f...)
		}
	}
	return dst
}
