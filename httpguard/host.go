package httpguard

import (
	"net/netip"
	"strings"
)

// AddressedToProxy reports whether a request other than CONNECT may be
// answered at all (http-connect spec, "Avoiding cross-site probing
// attacks"): its single Host header must name this machine, so a web page
// that rebinds its own DNS name to 127.0.0.1 cannot make the browser read
// socksd's answers. The accepted names are "localhost" (any case), a
// loopback IP literal (127.0.0.0/8, or [::1] in brackets) and the listener's
// own IP (listen is the listener's configured address, "ip:port",
// "[v6]:port" or "unix:/path"); each may carry a port (1-65535). An IP
// literal cannot be the result of a rebinding, since a page's origin is the
// name in its URL. Everything else, a missing or repeated Host header
// included, is foreign: the caller closes the connection without a reply,
// because even an error page would tell the page that socksd is there.
//
// Stricter than a resolver: "localhost." and "LOCALHOST.localdomain" are
// names the system resolver answers, which is exactly what is not trusted.
func (h *Head) AddressedToProxy(listen string) bool {
	if h.Hosts != 1 {
		return false
	}
	host, ok := splitHostHeader(h.HostHeader)
	if !ok {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return false
	}
	if a.IsLoopback() {
		return true
	}
	own, ok := listenIP(listen)
	return ok && !own.IsUnspecified() && own == a.Unmap()
}

// splitHostHeader splits Host = uri-host [ ":" port ] (RFC 9110 §7.2,
// RFC 3986 §3.2.2) and returns the host without brackets. An IPv6 literal
// must be bracketed; a port, when present, must be 1-65535.
func splitHostHeader(v string) (string, bool) {
	var host, port string
	hasPort := false
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 0 {
			return "", false
		}
		host = v[1:end]
		rest := v[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return "", false
			}
			port, hasPort = rest[1:], true
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return "", false
		}
	} else {
		host = v
		if i := strings.IndexByte(v, ':'); i >= 0 {
			host, port, hasPort = v[:i], v[i+1:], true
		}
		if host == "" || strings.ContainsAny(host, "[]:") {
			return "", false
		}
	}
	if hasPort {
		if len(port) == 0 || len(port) > 5 {
			return "", false
		}
		p := 0
		for i := 0; i < len(port); i++ {
			if !isDigit(port[i]) {
				return "", false
			}
			p = p*10 + int(port[i]-'0')
		}
		if p < 1 || p > 65535 {
			return "", false
		}
	}
	return host, true
}

// listenIP is the IP of a listener address "ip:port" or "[v6]:port".
func listenIP(listen string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(listen)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}
