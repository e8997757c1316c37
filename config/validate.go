package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"socksd/internal/confcheck"
	"socksd/internal/endpoint"
)

// Enumerations accepted by Validate.
var (
	logLevels    = []string{"debug", "info", "warn", "error"}
	logFormats   = []string{"auto", "console", "json"}
	automapModes = []string{"all", "suffixes", "off"}
)

// Validate checks every value and returns all problems at once, each naming
// its key, so a user fixes a file in one pass. Every error wraps ErrInvalid.
func (c *Config) Validate() error {
	v := &validator{}

	if c.StateDir == "" {
		v.add("state_dir", "must not be empty")
	} else if !filepath.IsAbs(c.StateDir) {
		v.add("state_dir", "must be an absolute path, got %q", c.StateDir)
	}

	// [socks]
	seen := map[string]string{}
	for i, l := range c.SOCKS.Listen {
		key := fmt.Sprintf("socks.listen[%d]", i)
		v.listenAddr(key, l)
		v.unique(seen, key, l)
	}
	for i, l := range c.SOCKS.Listener {
		key := fmt.Sprintf("socks.listener[%d].listen", i)
		if l.Listen == "" {
			v.add(key, "must be set")
			continue
		}
		v.listenAddr(key, l.Listen)
		v.unique(seen, key, l.Listen)
	}
	if len(c.SOCKS.Listen)+len(c.SOCKS.Listener) == 0 {
		v.add("socks.listen", "no listener configured: set socks.listen or add a [[socks.listener]] table")
	}
	v.positive("socks.handshake_timeout", c.SOCKS.HandshakeTimeout)
	if c.SOCKS.MaxConnections <= 0 {
		v.add("socks.max_connections", "must be > 0, got %d", c.SOCKS.MaxConnections)
	}

	v.section("tor", c.Tor.Validate())

	// [log]
	v.enum("log.level", c.Log.Level, logLevels)
	v.enum("log.format", c.Log.Format, logFormats)

	// [metrics]
	if c.Metrics.Listen != "" {
		if _, err := netip.ParseAddrPort(c.Metrics.Listen); err != nil {
			v.add("metrics.listen", "want \"ip:port\" or \"\" (off), got %q", c.Metrics.Listen)
		}
	}

	// [dns]
	for i, l := range c.DNS.Listen {
		key := fmt.Sprintf("dns.listen[%d]", i)
		if _, err := netip.ParseAddrPort(l); err != nil {
			v.add(key, "want \"ip:port\", got %q", l)
		}
	}
	for i, a := range c.DNS.Allow {
		if _, err := netip.ParsePrefix(a); err != nil {
			v.add(fmt.Sprintf("dns.allow[%d]", i), "want a CIDR like \"127.0.0.0/8\", got %q", a)
		}
	}
	v.enum("dns.automap", c.DNS.Automap, automapModes)
	for i, s := range c.DNS.AutomapSuffixes {
		if !strings.HasPrefix(s, ".") || len(s) < 2 {
			v.add(fmt.Sprintf("dns.automap_suffixes[%d]", i), "want a suffix starting with a dot like \".onion\", got %q", s)
		}
	}
	if c.DNS.Automap == "suffixes" && len(c.DNS.AutomapSuffixes) == 0 {
		v.add("dns.automap_suffixes", `must not be empty when dns.automap = "suffixes"`)
	}
	v.network("dns.virtual_network_ipv4", c.DNS.VirtualNetworkIPv4, true)
	v.network("dns.virtual_network_ipv6", c.DNS.VirtualNetworkIPv6, false)
	if len(c.DNS.Listen) > 0 && c.Tor.Control == "none" {
		v.add("dns.listen", `the DNS bridge needs a Tor control port (it registers names with MAPADDRESS), but tor.control = "none": set tor.control or clear dns.listen`)
	}
	v.positive("dns.ttl", c.DNS.TTL)
	v.positive("dns.mapping_idle", c.DNS.MappingIdle)
	if c.DNS.MaxTCPConnections <= 0 {
		v.add("dns.max_tcp_connections", "must be > 0, got %d", c.DNS.MaxTCPConnections)
	}
	v.positive("dns.tcp_idle_timeout", c.DNS.TCPIdleTimeout)

	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) add(key, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...)))
}

// section adds the problems a section's own Validate found, each key
// prefixed with the section's name.
func (v *validator) section(name string, err error) {
	confcheck.Each(err, func(key, msg string) {
		v.add(name+"."+key, "%s", msg)
	})
}

func (v *validator) positive(key string, d time.Duration) {
	if d <= 0 {
		v.add(key, "must be a duration > 0 like \"30s\", got %v", d)
	}
}

func (v *validator) enum(key, val string, allowed []string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.add(key, "must be one of %q, got %q", allowed, val)
}

func (v *validator) unique(seen map[string]string, key, addr string) {
	if prev, ok := seen[addr]; ok {
		v.add(key, "%q is already configured by %s", addr, prev)
		return
	}
	seen[addr] = key
}

// listenAddr accepts "ip:port", "localhost:port" and "unix:/abs/path".
func (v *validator) listenAddr(key, addr string) {
	if err := endpoint.Check(addr); err != nil {
		v.add(key, "%v", err)
	}
}

func (v *validator) network(key, cidr string, want4 bool) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		v.add(key, "want a CIDR, got %q", cidr)
		return
	}
	if p.Addr().Is4() != want4 {
		fam := "IPv6"
		if want4 {
			fam = "IPv4"
		}
		v.add(key, "must be an %s network, got %q", fam, cidr)
		return
	}
	if p != p.Masked() {
		v.add(key, "has host bits set: %q (did you mean %q?)", cidr, p.Masked())
	}
}
