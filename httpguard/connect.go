package httpguard

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/netip"

	"socksd/socksproto"
)

func badTarget(why string) error {
	return fmt.Errorf("%w: %w: %s", ErrMalformed, ErrBadTarget, why)
}

// parseAuthority parses a CONNECT request-target in authority-form,
// host ":" port (RFC 9110 §9.3.6): "example.com:443", "192.0.2.1:443",
// "[2001:db8::1]:443". The port is required and must be 1-65535. The host
// must be a destination Tor accepts (socksproto.ValidHostname); userinfo ("u@h:p"),
// a bare IPv6 literal and percent-encoding are refused.
func parseAuthority(t []byte) (string, uint16, error) {
	var host, port []byte
	if len(t) > 0 && t[0] == '[' {
		end := bytes.IndexByte(t, ']')
		if end < 0 || end+1 >= len(t) || t[end+1] != ':' {
			return "", 0, badTarget("want [ipv6]:port")
		}
		host, port = t[1:end], t[end+2:]
		a, err := netip.ParseAddr(string(host))
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", 0, badTarget("bad IPv6 literal")
		}
	} else {
		colon := bytes.LastIndexByte(t, ':')
		if colon < 0 {
			return "", 0, badTarget("port missing")
		}
		host, port = t[:colon], t[colon+1:]
		if !socksproto.ValidHostname(host) {
			return "", 0, badTarget("invalid host")
		}
	}
	if len(port) == 0 || len(port) > 5 {
		return "", 0, badTarget("bad port")
	}
	p := 0
	for _, c := range port {
		if !isDigit(c) {
			return "", 0, badTarget("bad port")
		}
		p = p*10 + int(c-'0')
	}
	if p < 1 || p > 65535 {
		return "", 0, badTarget("port out of range")
	}
	return string(host), uint16(p), nil
}

// IsolationUser is the Basic username by which a client says "the
// password is my isolation token" (proposal 365: clients that can set only
// Proxy-Authorization SHOULD send Basic with this username and an
// arbitrary password, the role SOCKS5's "<torS0X>0" username plays).
const IsolationUser = "tor-iso"

// parseBasic reads a Proxy-Authorization value as Basic
// base64(user ":" pass) (RFC 7617). The scheme is case-insensitive; padded
// and unpadded base64 are accepted (strictly: non-canonical padding bits
// are refused, so each credential has exactly one encoding); the user is
// everything before the first ':' and the password everything after it,
// both possibly empty, both raw bytes. ok is false for anything else; the
// caller then isolates on the raw header value, as C Tor does.
func parseBasic(v []byte) (user, pass []byte, ok bool) {
	sp := bytes.IndexByte(v, ' ')
	if sp < 0 || !asciiEqualFold(v[:sp], "Basic") {
		return nil, nil, false
	}
	cred := bytes.TrimLeft(v[sp+1:], " ")
	enc := base64.StdEncoding.Strict()
	if len(cred)%4 != 0 {
		enc = base64.RawStdEncoding.Strict()
	}
	raw := make([]byte, enc.DecodedLen(len(cred)))
	n, err := enc.Decode(raw, cred)
	if err != nil || len(cred) == 0 {
		return nil, nil, false
	}
	raw = raw[:n]
	colon := bytes.IndexByte(raw, ':')
	if colon < 0 {
		return nil, nil, false
	}
	return raw[:colon:colon], raw[colon+1:], true
}
