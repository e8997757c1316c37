package dispatch

import (
	"errors"
	"net/netip"
	"strings"

	"socksd/socks5"
)

// Policy refusals, wrapped in *socks5.ReplyError{Code: ReplyNotAllowed}.
var (
	// ErrInternalDestination: reject_internal refused a destination on
	// this machine or the local network.
	ErrInternalDestination = errors.New("dispatch: destination is internal")
	// ErrUnsafeSOCKS: safe_socks refused a request that carries only an IP
	// address (the application resolved the name itself, outside Tor).
	ErrUnsafeSOCKS = errors.New("dispatch: IP-only request refused (safe_socks)")
)

// cgnat is RFC 6598 shared address space: carrier NAT, often the local
// side of a home router, never a public destination.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// thisNetwork is RFC 1122 "this host on this network" (0.0.0.0/8).
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// isInternalAddr reports whether a is on this machine or the local
// network: loopback (127/8, ::1), RFC 1918 and fc00::/7 (netip's
// IsPrivate), link-local (169.254/16, fe80::/10), CGNAT 100.64/10,
// 0/8, unspecified and link/interface-local multicast.
func isInternalAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() ||
		a.IsUnspecified() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() ||
		cgnat.Contains(a) || thisNetwork.Contains(a)
}

// isInternalName reports whether a hostname names this machine or the
// local network: "localhost" and *.localhost (RFC 6761 §6.3), *.local
// (mDNS, RFC 6762), or an IP literal that isInternalAddr. Case and a
// trailing dot do not matter.
func isInternalName(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || strings.HasSuffix(h, ".local") {
		return true
	}
	if a, ok := parseLiteral(h); ok {
		return isInternalAddr(a)
	}
	return false
}

// checkPolicy applies reject_internal and safe_socks to a CONNECT.
// It runs before literalHost, so req.Host == "" means exactly the IP-only
// request forms safe_socks is about (SOCKS4, SOCKS5 ATYP 1/4); a SOCKS4a,
// SOCKS5 ATYP 3 or HTTP CONNECT hostname that happens to be an address
// literal is not one (as in Tor), but reject_internal still sees its
// address. Virtual addresses handed out by the DNS bridge (isVirtual) pass
// both: they live in 127.192.0.0/10 yet stand for a name Tor resolves at
// the exit, and a client using one did not resolve anything itself.
func checkPolicy(req *Request, st *Settings, isVirtual func(netip.Addr) bool) error {
	if req.Command != CmdConnect {
		return nil
	}
	dest := req.IP
	if req.Host != "" {
		dest, _ = parseLiteral(req.Host)
	}
	if dest.IsValid() && isVirtual != nil && isVirtual(dest) {
		return nil
	}
	if st.SafeSOCKS && req.Host == "" {
		return &socks5.ReplyError{Code: socks5.ReplyNotAllowed, Err: ErrUnsafeSOCKS}
	}
	if st.RejectInternal {
		internal := false
		if dest.IsValid() {
			internal = isInternalAddr(dest)
		} else {
			internal = isInternalName(req.Host)
		}
		if internal {
			return &socks5.ReplyError{Code: socks5.ReplyNotAllowed, Err: ErrInternalDestination}
		}
	}
	return nil
}

// parseLiteral parses an address literal hostname ("192.0.2.1", "::1",
// "[::1]"); IPv4-mapped IPv6 is unmapped.
func parseLiteral(host string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// literalHost turns an address-literal hostname into the address it is,
// after the policy check: the upstream gets ATYP 1/4 (Tor does not take
// an IPv6 literal as a DOMAINNAME) and RESOLVE echoes it without asking.
func literalHost(req *Request) {
	if req.Host == "" {
		return
	}
	if a, ok := parseLiteral(req.Host); ok {
		req.Host, req.IP = "", a
	}
}
