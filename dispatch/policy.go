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
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return isInternalAddr(a)
	}
	return false
}

// checkPolicy applies reject_internal and safe_socks to a CONNECT.
// Virtual addresses handed out by the DNS bridge (isVirtual) pass both:
// they live in 127.192.0.0/10 yet stand for a name Tor resolves at the
// exit, and a client using one did not resolve anything itself.
func checkPolicy(req *Request, st *Settings, isVirtual func(netip.Addr) bool) error {
	if req.Command != CmdConnect {
		return nil
	}
	if req.Host == "" && isVirtual != nil && isVirtual(req.IP) {
		return nil
	}
	if st.SafeSOCKS && req.Host == "" {
		return &socks5.ReplyError{Code: socks5.ReplyNotAllowed, Err: ErrUnsafeSOCKS}
	}
	if st.RejectInternal {
		internal := false
		if req.Host != "" {
			internal = isInternalName(req.Host)
		} else {
			internal = isInternalAddr(req.IP)
		}
		if internal {
			return &socks5.ReplyError{Code: socks5.ReplyNotAllowed, Err: ErrInternalDestination}
		}
	}
	return nil
}
