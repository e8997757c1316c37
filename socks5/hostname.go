package socks5

import "net/netip"

// ValidHostname reports whether name may be sent to Tor as a destination.
// It follows C Tor's string_is_valid_dest / string_is_valid_nonrfc_hostname
// (tor 0.4.x): an IPv4 or IPv6 literal (IPv6 with
// or without brackets), or dot-separated labels of ASCII letters, digits,
// '-' and '_', no label starting with '-', one optional trailing dot. So an
// empty name, NUL, any non-ASCII byte (invalid UTF-8 included), spaces,
// "---" and "a..b" are all rejected. Label and name lengths are not limited
// beyond the 255 bytes SOCKS can carry, as in Tor; the exit decides.
//
// It does not allocate for ordinary names.
func ValidHostname(name []byte) bool {
	if len(name) == 0 || len(name) > 255 {
		return false
	}
	hasColon := false
	for _, c := range name {
		if c == ':' {
			hasColon = true
			break
		}
	}
	if hasColon || name[0] == '[' {
		return ipv6Literal(name)
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

// ipv6Literal accepts "[v6]" or a bare v6 literal, without a zone: a zone
// names an interface of this host, which means nothing to a Tor exit.
func ipv6Literal(name []byte) bool {
	if name[0] == '[' {
		if len(name) < 3 || name[len(name)-1] != ']' {
			return false
		}
		name = name[1 : len(name)-1]
	}
	for _, c := range name {
		if !(c == ':' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	a, err := netip.ParseAddr(string(name))
	return err == nil && a.Is6()
}

// parseIPLiteral returns the address a RESOLVE_PTR hostname field spells,
// as C Tor's tor_addr_parse does: "1.2.3.4", "::1" or "[::1]".
func parseIPLiteral(name []byte) (netip.Addr, bool) {
	if len(name) > 2 && name[0] == '[' && name[len(name)-1] == ']' {
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
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
