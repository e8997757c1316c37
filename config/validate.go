package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"socksd/internal/confcheck"
	"socksd/internal/endpoint"
)

// Enumerations accepted by Validate.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"auto", "console", "json"}
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
	v.section("dns", c.DNS.Validate())
	if len(c.DNS.Listen) > 0 && c.Tor.Control == "none" {
		v.add("dns.listen", `the DNS bridge needs a Tor control port (it registers names with MAPADDRESS), but tor.control = "none": set tor.control or clear dns.listen`)
	}

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
