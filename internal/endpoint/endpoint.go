// Package endpoint is socksd's notation for a socket address, the one rule
// for every setting that names one (listeners, Tor's control port and
// SocksPort): "ip:port", "localhost:port", "[::1]:port" or
// "unix:/absolute/path".
package endpoint

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// Check reports whether addr is in socksd's notation. A hostname other
// than localhost is refused: socksd never resolves names locally.
func Check(addr string) error {
	if network, path := Split(addr); network == "unix" {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("want \"unix:/absolute/path\", got %q", addr)
		}
		return nil
	}
	if _, err := netip.ParseAddrPort(addr); err == nil {
		return nil
	}
	if port, ok := strings.CutPrefix(addr, "localhost:"); ok {
		if _, err := netip.ParseAddrPort("127.0.0.1:" + port); err == nil {
			return nil
		}
	}
	return fmt.Errorf("want \"ip:port\" or \"unix:/path\", got %q", addr)
}

// Split returns the network ("tcp" or "unix") and address to pass to
// net.Listen / net.Dial for an address in socksd's notation.
func Split(addr string) (network, address string) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return "unix", path
	}
	return "tcp", addr
}
