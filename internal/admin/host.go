package admin

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// HostGuard serves next only to requests whose Host header names this
// listener: an IP literal, "localhost", or the host part of listen (the
// configured metrics.listen, e.g. "myhost:9352"). Anything else gets 421
// Misdirected Request on every path. A web page that rebinds its own DNS
// name to 127.0.0.1 makes the browser send that name as Host: without the
// check it could read the status page, /status and /metrics (usage
// patterns) across origins. A request with no Host (HTTP/1.0) comes from
// no browser and is served.
func HostGuard(listen string, next http.Handler) http.Handler {
	own := ""
	if h, _, err := net.SplitHostPort(listen); err == nil {
		own = strings.ToLower(strings.Trim(h, "[]"))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowedHost(r.Host, own) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "misdirected request: the Host header must be an IP address, localhost or this listener's configured name", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowedHost reports whether hostport (a Host header) is an IP literal,
// localhost, or own (lower case; "" for none).
func allowedHost(hostport, own string) bool {
	if hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || (own != "" && host == own) {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}
