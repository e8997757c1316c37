package socks4

import (
	"bytes"
	"net/netip"
)

// ValidHostname reports whether name is a destination socksd accepts in a
// SOCKS4a request. It follows C Tor's string_is_valid_dest (address.c), so
// a name Tor would refuse is refused here before it reaches Tor:
//
//   - an IPv4 literal ("192.0.2.1") or an IPv6 literal ("2001:db8::1"),
//     the latter optionally in brackets ("[2001:db8::1]"); zones
//     ("fe80::1%eth0") are refused, there is no local interface to name;
//   - otherwise a "non-RFC hostname" (Tor's string_is_valid_nonrfc_hostname):
//     dot-separated labels of ASCII letters, digits, '-' and '_', where no
//     label is empty and no label starts with '-' or '_'; one trailing '.'
//     (an FQDN) is allowed. '_' is allowed because Tor allows it for zones
//     misconfigured in the wild. This admits every form of address-spec.txt:
//     "name.onion", "ignored.name.onion", "host.node.exit", "node.exit"
//     (nicknames and hex digests are alphanumeric).
//
// Everything else is refused: the empty name, names such as "---" or
// "a..b", spaces, NUL and any other control byte, and every non-ASCII byte
// (so invalid UTF-8 is refused, and so is valid UTF-8: like Tor, socksd
// expects internationalised names in their punycode "xn--" form).
//
// One deliberate difference from Tor: Tor strips brackets from any name
// ("[example.com]" passes); socksd accepts brackets only around an IPv6
// literal.
func ValidHostname(name []byte) bool {
	return len(hostOf(name)) > 0
}

// hostOf returns the destination to record for a valid name (the name
// itself, or the IPv6 literal inside brackets), or nil if name is invalid.
func hostOf(name []byte) []byte {
	if len(name) == 0 || len(name) > MaxHostname {
		return nil
	}
	if bytes.IndexByte(name, ':') >= 0 {
		inner := name
		if name[0] == '[' && name[len(name)-1] == ']' {
			inner = name[1 : len(name)-1]
		}
		if validIPv6(inner) {
			return inner
		}
		return nil
	}
	if validNonRFCHostname(name) {
		return name
	}
	return nil
}

func validIPv6(s []byte) bool {
	// Only reached for names containing ':', so the string conversion
	// (an allocation) is off the common path.
	a, err := netip.ParseAddr(string(s))
	return err == nil && a.Is6() && a.Zone() == ""
}

// validNonRFCHostname is Tor's string_is_valid_nonrfc_hostname without its
// leading "is it an IPv4 literal" exclusion: string_is_valid_dest accepts
// IPv4 literals anyway, and every dotted quad satisfies the label rules.
func validNonRFCHostname(s []byte) bool {
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1] // one trailing dot: an FQDN
	}
	if len(s) == 0 {
		return false // "." alone
	}
	labelStart := true
	for _, c := range s {
		switch {
		case c == '.':
			if labelStart {
				return false // empty label
			}
			labelStart = true
		case c == '-' || c == '_':
			if labelStart {
				return false // Tor: a label must not start with '-' or '_'
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			labelStart = false
		default:
			return false
		}
	}
	return !labelStart // trailing empty label (e.g. "a..")
}
