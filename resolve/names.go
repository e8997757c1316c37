package resolve

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

var (
	errNameInvalid = errors.New("resolve: invalid name")
	errNameLong    = errors.New("resolve: name over 255 bytes")
)

// maxNameLen is the longest name in presentation form without the final dot
// whose wire form fits RFC 1035 §2.3.4's 255 octets.
const maxNameLen = 253

// normalizeName turns a query name (miekg presentation form) into the form
// the table and Tor use: lower case, no final dot. It accepts only what Tor
// accepts as a hostname with ServerDNSAllowNonRFC953Hostnames (letters,
// digits, '-', '_'), which also keeps the name safe inside a control-port
// command line: no spaces, quotes, '=' or escapes can reach MAPADDRESS.
func normalizeName(q string) (string, error) {
	q = strings.TrimSuffix(q, ".")
	if q == "" {
		return "", errNameInvalid // the root is not a host
	}
	if len(q) > maxNameLen {
		return "", errNameLong
	}
	var b []byte // allocated only if q has upper case
	label := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '.':
			if label == 0 {
				return "", errNameInvalid
			}
			label = 0
			continue
		case c >= 'A' && c <= 'Z':
			if b == nil {
				b = []byte(q)
			}
			b[i] = c + ('a' - 'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return "", errNameInvalid
		}
		label++
		if label > 63 {
			return "", errNameInvalid
		}
	}
	if label == 0 {
		return "", errNameInvalid
	}
	if b != nil {
		return string(b), nil
	}
	return q, nil
}

// nxdomainName reports names that must never get an address, whatever the
// mode: RFC 6761 §6.3 (localhost: pointing it at a Tor exit's localhost
// would be wrong) and §6.4 (invalid), and RFC 6762 §3 (.local is mDNS, never
// unicast DNS).
func nxdomainName(name string) bool {
	for _, tld := range [...]string{"localhost", "invalid", "local"} {
		if name == tld || (len(name) > len(tld) && strings.HasSuffix(name, tld) && name[len(name)-len(tld)-1] == '.') {
			return true
		}
	}
	return false
}

// parseReverse turns a PTR query name (normalized) into the address it asks
// about: RFC 1035 §3.5 in-addr.arpa and RFC 3596 §2.5 ip6.arpa. Partial
// names (a whole network) are not addresses: ok is false.
func parseReverse(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		var a [4]byte
		for i, l := range labels {
			if len(l) == 0 || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
				return netip.Addr{}, false
			}
			n, err := strconv.ParseUint(l, 10, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			a[3-i] = byte(n)
		}
		return netip.AddrFrom4(a), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		if len(rest) != 63 { // 32 nibbles and 31 dots
			return netip.Addr{}, false
		}
		var a [16]byte
		for i := 0; i < 32; i++ {
			c := rest[2*i]
			if i < 31 && rest[2*i+1] != '.' {
				return netip.Addr{}, false
			}
			var v byte
			switch {
			case c >= '0' && c <= '9':
				v = c - '0'
			case c >= 'a' && c <= 'f':
				v = c - 'a' + 10
			default:
				return netip.Addr{}, false
			}
			// The first nibble in the name is the lowest of the address.
			pos := 31 - i
			if pos%2 == 0 {
				a[pos/2] |= v << 4
			} else {
				a[pos/2] |= v
			}
		}
		return netip.AddrFrom16(a), true
	}
	return netip.Addr{}, false
}

// publicAddr reports whether a reverse lookup of a may go to Tor. Tor's own
// client refuses PTR for internal addresses (tornet README, gotcha 6), and
// asking an exit about a LAN address would tell it something about us.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate()
}

// NormalizeName is the bridge's name rule for other resolvers that hand
// out virtual addresses (socksd run's in-namespace resolver): lower case,
// no final dot, only what Tor accepts as a hostname.
func NormalizeName(q string) (string, error) { return normalizeName(q) }

// NeverAnswered reports names no resolver of socksd may give an address:
// localhost, .invalid and .local (see nxdomainName).
func NeverAnswered(name string) bool { return nxdomainName(name) }

// ParseReverse is parseReverse for other resolvers: the address a
// normalised PTR query name asks about.
func ParseReverse(name string) (netip.Addr, bool) { return parseReverse(name) }
