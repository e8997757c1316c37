package torup

import (
	"path/filepath"
	"time"

	"socksd/internal/confcheck"
)

// DefaultConfig is the [tor] table a file that omits it gets.
func DefaultConfig() Config {
	return Config{
		Launch:          "auto",
		TorBinary:       "tor",
		AttachStreams:   true,
		CircuitLifetime: 10 * time.Minute,
		SOCKSTimeout:    120 * time.Second,
		CircuitPool:     32,
	}
}

var launchModes = []string{"auto", "always", "never"}

// Validate checks every [tor] value; each problem names its key within
// the table (confcheck.Problem).
func (c *Config) Validate() error {
	var p confcheck.Problems
	switch c.Control {
	case "", "none":
	default:
		p.Endpoint("control", c.Control)
	}
	if c.SOCKS != "" {
		p.Endpoint("socks", c.SOCKS)
	}
	if c.Control == "none" && c.SOCKS == "" {
		p.Add("socks", `must be set when tor.control = "none" (there is no control port to discover the SocksPort from)`)
	}
	p.Enum("launch", c.Launch, launchModes)
	if c.Launch != "never" && c.TorBinary == "" {
		p.Add("tor_binary", "must not be empty when tor.launch is %q", c.Launch)
	}
	if c.DataDir != "" && !filepath.IsAbs(c.DataDir) {
		p.Add("data_dir", "must be an absolute path, got %q", c.DataDir)
	}
	p.Positive("circuit_lifetime", c.CircuitLifetime)
	p.Positive("socks_timeout", c.SOCKSTimeout)
	if c.CircuitPool < 0 || c.CircuitPool > 256 {
		p.Add("circuit_pool", "must be between 0 (off) and 256, got %d", c.CircuitPool)
	}
	return p.Err()
}
