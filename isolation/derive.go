package isolation

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"net/netip"
	"strings"
)

// keyDomain separates isolation digests from any other SHA-256 use; the
// version lets a future encoding change never collide with this one.
const keyDomain = "socksd/isolation/key/v1"

// Each field that enters a digest is written as a one-byte tag followed by
// length-prefixed values, so no two different inputs can produce the same
// byte string (a username "ab" + password "c" never encodes like "a" +
// "bc"), and a field that a policy leaves out cannot be mimicked by
// another field's bytes. The tags of the always-keyed parts are here; each
// field's own tags are in its row of the fields table (fields.go).
const (
	tagGroup byte = 'G' // session group: always
	tagEpoch byte = 'E' // new-identity epoch: always
	tagFresh byte = 'F' // a fresh stream's own value: whenever set
)

// Key derives the isolation key of one stream under p.
//
// The session group and the new-identity epoch are always part of the key:
// every listener is its own group unless it names a shared one (Tor's
// ISO_SESSIONGRP, always on) and a NEWNYM epoch change must separate every
// later stream from every earlier one (Tor's ISO_NYM_EPOCH). The other
// fields enter only when p.Fields enables them, each as its row of the
// fields table writes it:
//
//   - SOCKSAuth: username and password as raw bytes. As in C Tor's
//     proto_socks.c, which stores a zero-length username or password as
//     absent, an empty credential equals no credential: a client sending
//     ""/"" shares with one sending no authentication (proposal 171 says the
//     opposite; the code, which is what users experience, wins). So HasAuth
//     does not enter the key, and a SOCKS4 userid "u", a SOCKS5 "u"/"" and a
//     Proxy-Authorization "u:" are the same identity unless ClientProtocol is
//     also on. Username <torS0X>0 makes the password alone the key, distinct
//     from every plain username/password pair.
//   - ClientAddr: the client IP (never its port), IPv4-mapped IPv6 unmapped,
//     zone kept (fe80::1%eth0 and fe80::1%eth1 are different machines).
//     Exact comparison, as C Tor's tor_addr_eq. An invalid address (a unix
//     socket client) is one value of its own.
//   - ClientProtocol: the protocol name, so socks4 and socks4a differ as
//     proposal 171 lists them (C Tor only compares the SOCKS version).
//   - DestPort, DestAddr: the destination; a hostname is compared
//     case-insensitively without a trailing dot (C Tor uses strcasecmp), a
//     hostname that is an IP literal equals that IP.
//   - ClientApp: uid and executable path when the lookup succeeded. When it
//     failed (App.Known false) every such stream gets the same "unknown"
//     application value: unidentified clients never share with an
//     identified application, but may share among themselves when their
//     other fields agree. That is no weaker than isolation without
//     ClientApp, and it avoids a circuit per stream when /proc is hidden.
func (p Policy) Key(in Input) Key {
	e := encoder{h: sha256.New()}
	e.h.Write([]byte(keyDomain))

	e.field(tagGroup, []byte(p.SessionGroup))
	var epoch [8]byte
	binary.BigEndian.PutUint64(epoch[:], in.Epoch)
	e.field(tagEpoch, epoch[:])

	for i := range fields {
		if f := &fields[i]; p.Fields&f.f != 0 && f.key != nil {
			f.key(e, in)
		}
	}
	if in.Fresh != 0 {
		// A stream that asked for a circuit of its own: whatever the
		// policy, no other stream has this value, so no other key.
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], in.Fresh)
		e.field(tagFresh, n[:])
	}

	var k Key
	copy(k.sum[:], e.h.Sum(nil))
	return k
}

// encoder writes tag || n || len(v1) || v1 || ... into a hash.
type encoder struct{ h hash.Hash }

func (e encoder) field(tag byte, values ...[]byte) {
	var hdr [5]byte
	hdr[0] = tag
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(values)))
	e.h.Write(hdr[:])
	for _, v := range values {
		binary.BigEndian.PutUint32(hdr[1:], uint32(len(v)))
		e.h.Write(hdr[1:])
		e.h.Write(v)
	}
}

// addrBytes is the canonical form of a client address: 4 or 16 bytes plus
// the zone; nil for an invalid address.
func addrBytes(a netip.Addr) []byte {
	if !a.IsValid() {
		return nil
	}
	b, _ := a.Unmap().MarshalBinary() // never fails for a valid Addr
	return b
}

func destBytes(host string, ip netip.Addr) (byte, []byte) {
	if !ip.IsValid() {
		if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
			ip = a
		}
	}
	if ip.IsValid() {
		b, _ := ip.Unmap().WithZone("").MarshalBinary()
		return 'i', b
	}
	h := strings.ToLower(host)
	if len(h) > 1 {
		h = strings.TrimSuffix(h, ".")
	}
	return 'h', []byte(h)
}

// String is the key in hex: a digest, safe to log at debug level and to
// show on the status page; it reveals no credential or destination.
func (k Key) String() string { return hex.EncodeToString(k.sum[:]) }

// IsZero reports whether k is the zero Key, i.e. no key was derived.
func (k Key) IsZero() bool { return k == Key{} }
