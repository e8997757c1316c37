package isolation

import (
	"bytes"
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

// Field tags. Each field that enters a digest is written as its tag
// followed by length-prefixed values, so no two different inputs can
// produce the same byte string (a username "ab" + password "c" never
// encodes like "a" + "bc"), and a field that a policy leaves out cannot be
// mimicked by another field's bytes.
const (
	tagGroup    byte = 'G' // session group: always
	tagEpoch    byte = 'E' // new-identity epoch: always
	tagAuth     byte = 'A' // SOCKS / Proxy-Authorization user + password
	tagAuthX0   byte = 'X' // <torS0X>0: the password alone
	tagAddr     byte = 'C' // client IP
	tagProto    byte = 'P' // client protocol
	tagDestPort byte = 'p' // destination port
	tagDestHost byte = 'h' // destination hostname
	tagDestIP   byte = 'i' // destination IP
	tagApp      byte = 'U' // client application: uid + executable
	tagAppNone  byte = 'u' // client application could not be identified
)

// torS0X0 is the username by which a client says "the password alone is my
// isolation token" (torspec socks-extensions, "Extended usernames": format
// code 0 is legacy isolation carried in the password). Other <torS0X>
// format codes (RPC object ids) mean nothing to socksd and are hashed as an
// ordinary username.
const torS0X0 = "<torS0X>0"

// Key derives the isolation key of one stream under p.
//
// The session group and the new-identity epoch are always part of the key:
// every listener is its own group unless it names a shared one (Tor's
// ISO_SESSIONGRP, always on) and a NEWNYM epoch change must separate every
// later stream from every earlier one (Tor's ISO_NYM_EPOCH). The other
// fields enter only when p.Fields enables them:
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

	if p.Fields&SOCKSAuth != 0 {
		if bytes.Equal(in.Username, []byte(torS0X0)) {
			e.field(tagAuthX0, in.Password)
		} else {
			e.field(tagAuth, in.Username, in.Password)
		}
	}
	if p.Fields&ClientAddr != 0 {
		e.field(tagAddr, addrBytes(in.ClientAddr))
	}
	if p.Fields&ClientProtocol != 0 {
		e.field(tagProto, []byte(strings.ToLower(in.Protocol)))
	}
	if p.Fields&DestPort != 0 {
		e.field(tagDestPort, []byte{byte(in.DestPort >> 8), byte(in.DestPort)})
	}
	if p.Fields&DestAddr != 0 {
		tag, v := destBytes(in.DestHost, in.DestIP)
		e.field(tag, v)
	}
	if p.Fields&ClientApp != 0 {
		if in.App.Known {
			var uid [4]byte
			binary.BigEndian.PutUint32(uid[:], in.App.UID)
			e.field(tagApp, uid[:], []byte(in.App.Exe))
		} else {
			e.field(tagAppNone)
		}
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
		return tagDestIP, b
	}
	h := strings.ToLower(host)
	if len(h) > 1 {
		h = strings.TrimSuffix(h, ".")
	}
	return tagDestHost, []byte(h)
}

// String is the key in hex: a digest, safe to log at debug level and to
// show on the status page; it reveals no credential or destination.
func (k Key) String() string { return hex.EncodeToString(k.sum[:]) }

// IsZero reports whether k is the zero Key, i.e. no key was derived.
func (k Key) IsZero() bool { return k == Key{} }
