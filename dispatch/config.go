package dispatch

import (
	"fmt"
	"time"

	"socksd/internal/confcheck"
	"socksd/isolation"
)

// Config is the [socks] table of socksd's configuration file, owned here:
// DefaultConfig gives its defaults, Validate its rules (config.Parse calls
// both). The running Server takes Settings and ListenerConfigs, which
// config.Config builds from this table, [isolation] and what other
// sections say.
type Config struct {
	Listen           []string        `toml:"listen"` // simple form: each gets the [isolation] defaults
	Listener         []ListenerTable `toml:"listener"`
	HandshakeTimeout time.Duration   `toml:"handshake_timeout"`
	MaxConnections   int             `toml:"max_connections"`
	ExtendedErrors   bool            `toml:"extended_errors"`
	HTTPConnect      bool            `toml:"http_connect"`
	SafeSOCKS        bool            `toml:"safe_socks"`
	RejectInternal   bool            `toml:"reject_internal"`
}

// ListenerTable is one [[socks.listener]] table.
type ListenerTable struct {
	Listen       string              `toml:"listen"` // "host:port" or "unix:/path"
	SessionGroup string              `toml:"session_group"`
	Isolation    *isolation.Override `toml:"isolation"`
	// PTArgs reads the SOCKS5 username and password (SOCKS4: the userid)
	// as pt-spec arguments carrying stream options. Off by default: it
	// turns what are otherwise isolation strings into arguments.
	PTArgs bool `toml:"pt_args"`
}

// DefaultConfig is the [socks] table a file that omits it gets: one
// loopback listener, Tor's extended errors, HTTP CONNECT on, internal
// destinations refused.
func DefaultConfig() Config {
	return Config{
		Listen:           []string{"127.0.0.1:9350"},
		HandshakeTimeout: 30 * time.Second,
		MaxConnections:   4096,
		ExtendedErrors:   true,
		HTTPConnect:      true,
		RejectInternal:   true,
	}
}

// Validate checks every [socks] value; each problem names its key within
// the table (confcheck.Problem).
func (c *Config) Validate() error {
	var p confcheck.Problems
	seen := map[string]string{}
	unique := func(key, addr string) {
		if prev, ok := seen[addr]; ok {
			p.Add(key, "%q is already configured by socks.%s", addr, prev)
			return
		}
		seen[addr] = key
	}
	for i, l := range c.Listen {
		key := fmt.Sprintf("listen[%d]", i)
		p.Endpoint(key, l)
		unique(key, l)
	}
	for i, l := range c.Listener {
		key := fmt.Sprintf("listener[%d].listen", i)
		if l.Listen == "" {
			p.Add(key, "must be set")
			continue
		}
		p.Endpoint(key, l.Listen)
		unique(key, l.Listen)
	}
	if len(c.Listen)+len(c.Listener) == 0 {
		p.Add("listen", "no listener configured: set socks.listen or add a [[socks.listener]] table")
	}
	p.Positive("handshake_timeout", c.HandshakeTimeout)
	if c.MaxConnections <= 0 {
		p.Add("max_connections", "must be > 0, got %d", c.MaxConnections)
	}
	return p.Err()
}

// Listeners turns both listener forms into one list: each `listen = [...]`
// entry gets the [isolation] defaults iso, each [[socks.listener]] table
// its overrides. Every listener isolates on its session group, as every
// Tor SocksPort is its own session group unless SessionGroup= says
// otherwise (tor(1), SessionGroup); the group defaults to the listen
// address. The caller adds AppLookup and inherited sockets.
func (c *Config) Listeners(iso isolation.Config) []ListenerConfig {
	out := make([]ListenerConfig, 0, len(c.Listen)+len(c.Listener))
	for _, addr := range c.Listen {
		out = append(out, ListenerConfig{Addr: addr, Policy: iso.Policy(addr)})
	}
	for _, l := range c.Listener {
		group := l.SessionGroup
		if group == "" {
			group = l.Listen
		}
		out = append(out, ListenerConfig{Addr: l.Listen, Policy: iso.Apply(l.Isolation).Policy(group), PTArgs: l.PTArgs})
	}
	return out
}
