package socks5

import "net/netip"

// ValidHostname reports whether name may be sent to Tor as a destination
// hostname. It follows C Tor's string_is_valid_dest and
// string_is_valid_nonrfc_hostname, and agrees with tor 0.4.9.11 on every
// case we probed: dot-separated labels of ASCII letters, digits, '-' and
// '_', no label starting with '-', no empty label, one optional trailing
// dot. An IPv4 literal passes (it is such a name), IPv6 literals do not:
// tor rejects "::1" and "[::1]" as CONNECT hostnames with 0x01. So an empty
// name, ".", NUL, any non-ASCII byte (invalid UTF-8 included), spaces,
// ':', "---", "-a" and "a..b" are all rejected. Label lengths are not
// limited, as in Tor; the exit decides.
//
// It does not allocate.
func ValidHostname(name []byte) bool {
	if len(name) == 0 || len(name) > 255 {
		return false
	}
	if name[len(name)-1] == '.' {
		name = name[:len(name)-1]
		if len(name) == 0 {
			return false
		}
	}
	labelStart := true
	for _, c := range name {
		switch {
		case c == '.':
			if labelStart { // empty label
				return false
			}
			labelStart = true
			continue
		case c == '-':
			if labelStart {
				return false
			}
		case c == '_', c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		default:
			return false
		}
		labelStart = false
	}
	return !labelStart
}

// parseIPLiteral returns the address a RESOLVE_PTR DOMAINNAME spells, as
// C Tor's tor_addr_parse reads it: "198.51.100.7", "::1" or "[::1]" (tor
// 0.4.9.11 accepts these, and answers 0x08 for "[198.51.100.7]",
// "198.51.100.7." and ""). Zones are refused: they name an interface of
// this host, which means nothing to Tor.
func parseIPLiteral(name []byte) (netip.Addr, bool) {
	bracketed := len(name) > 2 && name[0] == '[' && name[len(name)-1] == ']'
	if bracketed {
		name = name[1 : len(name)-1]
	}
	if len(name) == 0 || len(name) > 45 {
		return netip.Addr{}, false
	}
	for _, c := range name {
		if !(c == ':' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return netip.Addr{}, false
		}
	}
	a, err := netip.ParseAddr(string(name))
	if err != nil || bracketed && !a.Is6() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
