package socksproto

import "net/netip"

// MaxHostname is the longest destination name any form carries: SOCKS5's
// one-byte length, and the DNS limit.
const MaxHostname = 255

// ValidHostname reports whether name is a destination hostname socksd
// hands to Tor. It is C Tor's string_is_valid_dest restricted to what a
// hostname field carries (an IPv6 literal is address syntax, which each
// wire form spells its own way, see below):
//
//   - dot-separated labels of ASCII letters, digits, '-' and '_' (Tor
//     admits '_' for zones misconfigured in the wild), no empty label, no
//     label starting with '-' or '_' (string_is_valid_nonrfc_hostname), one
//     optional trailing '.' (an FQDN), at most MaxHostname bytes. Label
//     lengths are not limited, as in Tor: the exit decides;
//   - an IPv4 literal ("192.0.2.1"), which satisfies the label rules.
//
// So "_dmarc.example.com" is refused, as C Tor refuses it over every
// protocol, while "a_b.example.com" passes. Refused too: the empty name,
// ".", "---", "-a", "a..b", spaces, NUL and every other control byte, ':'
// and every non-ASCII byte (invalid UTF-8, and valid UTF-8 as well: like
// Tor, socksd expects internationalised names in their punycode form).
// Every form of address-spec.txt passes: "name.onion",
// "ignored.name.onion", "host.node.exit", "node.exit".
//
// How each wire form maps onto this rule, and where that differs from
// C Tor 0.4.9:
//
//   - SOCKS5 DOMAINNAME: exactly this rule. An IPv6 destination travels
//     as ATYP 4; "::1" and "[::1]" as a DOMAINNAME are refused with 0x01,
//     which is what tor 0.4.9.11 answered when probed. Tor accepts a name
//     with a NUL by cutting it there; socksd refuses it.
//   - SOCKS4a HOSTNAME: this rule, and in addition an IPv6 literal with or
//     without brackets (ParseIPLiteral), because SOCKS4a has no other way
//     to name an IPv6 destination. C Tor strips brackets from any name, so
//     "[example.com]" and "[192.0.2.1]" pass there; socksd accepts
//     brackets only around an IPv6 literal, their only meaning.
//   - HTTP CONNECT authority: this rule for the host of "host:port"; an
//     IPv6 literal only in brackets ("[2001:db8::1]:443", RFC 9110).
//
// It does not allocate.
func ValidHostname(name []byte) bool {
	if len(name) == 0 || len(name) > MaxHostname {
		return false
	}
	if name[len(name)-1] == '.' {
		name = name[:len(name)-1] // one trailing dot: an FQDN
		if len(name) == 0 {
			return false // "." alone
		}
	}
	labelStart := true
	for _, c := range name {
		switch {
		case c == '.':
			if labelStart {
				return false // empty label
			}
			labelStart = true
		case c == '-' || c == '_':
			if labelStart {
				return false // string_is_valid_nonrfc_hostname: no leading '-' or '_'
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			labelStart = false
		default:
			return false
		}
	}
	return !labelStart // "a.." ends with an empty label
}

// ValidHostnameString is ValidHostname for a string. The conversion
// copies into a stack array, so it does not allocate either.
func ValidHostnameString(s string) bool {
	var buf [MaxHostname]byte
	if len(s) > len(buf) {
		return false
	}
	return ValidHostname(buf[:copy(buf[:], s)])
}

// ParseIPLiteral returns the address name spells, as C Tor's
// tor_addr_parse reads it: "198.51.100.7", "2001:db8::1" or
// "[2001:db8::1]" (tor 0.4.9.11 accepts these for RESOLVE_PTR, and
// refuses "[198.51.100.7]", "198.51.100.7." and ""). Zones are refused:
// they name an interface of this host, which means nothing to Tor. An
// IPv4-mapped IPv6 address comes back as the IPv4 address, so policy
// checks see what it really is.
func ParseIPLiteral(name []byte) (netip.Addr, bool) {
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
