package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	"socksd/internal/confcheck"
)

// Enumerations accepted by Validate.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"auto", "console", "json"}
)

// Validate checks every value and returns all problems at once, each naming
// its key, so a user fixes a file in one pass. Each section is checked by
// the Validate of the package that owns it; what is left here is the
// top-level key, [log], [metrics] and the rules that span sections. Every
// error wraps ErrInvalid.
func (c *Config) Validate() error {
	var p confcheck.Problems
	if c.StateDir == "" {
		p.Add("state_dir", "must not be empty")
	} else if !filepath.IsAbs(c.StateDir) {
		p.Add("state_dir", "must be an absolute path, got %q", c.StateDir)
	}
	p.Enum("log.level", c.Log.Level, logLevels)
	p.Enum("log.format", c.Log.Format, logFormats)
	if c.Metrics.Listen != "" {
		if _, err := netip.ParseAddrPort(c.Metrics.Listen); err != nil {
			p.Add("metrics.listen", "want \"ip:port\" or \"\" (off), got %q", c.Metrics.Listen)
		}
	}
	if len(c.DNS.Listen) > 0 && c.Tor.Control == "none" {
		p.Add("dns.listen", `the DNS bridge needs a Tor control port (it registers names with MAPADDRESS), but tor.control = "none": set tor.control or clear dns.listen`)
	}

	var errs []error
	add := func(section string, err error) {
		confcheck.Each(err, func(key, msg string) {
			if section != "" {
				key = section + "." + key
			}
			errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalid, key, msg))
		})
	}
	add("socks", c.SOCKS.Validate())
	add("tor", c.Tor.Validate())
	add("dns", c.DNS.Validate())
	add("", p.Err())
	return errors.Join(errs...)
}
