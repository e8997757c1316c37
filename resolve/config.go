package resolve

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"socksd/internal/confcheck"
)

// Tor is what the bridge needs from Tor. The Tor-facing code implements it;
// only cmd/socksd wires a concrete type in.
type Tor interface {
	// MapAddress sends "MAPADDRESS from=to" (control-spec §3.8) and returns
	// Tor's "from" as echoed in its 250 reply. from == to removes a mapping.
	MapAddress(ctx context.Context, from, to string) (string, error)
	// Resolve asks Tor to resolve name (reverse: name is an IP address and
	// the answer is a hostname). It must go through Tor (control RESOLVE +
	// ADDRMAP, or SOCKS RESOLVE F0/F1 with the bridge's own isolation key),
	// never a local resolver. "No such name" is reported as ErrNoAnswer or as
	// a *socks5.ReplyError with ReplyHostUnreachable.
	Resolve(ctx context.Context, name string, reverse bool) (answer string, err error)
}

// Mode says which names get a virtual address.
type Mode uint8

const (
	AutomapAll      Mode = iota // every name gets a virtual address
	AutomapSuffixes             // names ending in Config.AutomapSuffixes; others are resolved through Tor
	AutomapOff                  // no virtual addresses; everything is resolved through Tor
)

// ParseMode parses the config file's automap value.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "all", "":
		return AutomapAll, nil
	case "suffixes":
		return AutomapSuffixes, nil
	case "off":
		return AutomapOff, nil
	}
	return 0, fmt.Errorf("%w: automap %q (want all, suffixes or off)", ErrConfig, s)
}

// UnmarshalText decodes the file's automap value (ParseMode).
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalText is the inverse of UnmarshalText.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

func (m Mode) String() string {
	switch m {
	case AutomapAll:
		return "all"
	case AutomapSuffixes:
		return "suffixes"
	case AutomapOff:
		return "off"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Config is the [dns] table of socksd's configuration file, owned here:
// DefaultConfig gives the file's defaults, Validate its rules (config.Parse
// calls both); New fills zero fields and checks with the same Validate.
type Config struct {
	Listen []string `toml:"listen"` // "ip:port" for UDP and TCP each; empty = no listener (ServeDNS still works)
	// Allow lists the client networks that may query. Empty means loopback
	// only (127.0.0.0/8 and ::1). Everyone else gets REFUSED.
	Allow           []netip.Prefix `toml:"allow"`
	Automap         Mode           `toml:"automap"`
	AutomapSuffixes []string       `toml:"automap_suffixes"` // e.g. ".onion", ".exit"; New adds a missing leading dot
	// VirtualIPv4 and VirtualIPv6 are the virtual address pools. A zero
	// prefix (an empty string in the file) disables that family (A or
	// AAAA answers NODATA for automapped names).
	VirtualIPv4 netip.Prefix  `toml:"virtual_network_ipv4"`
	VirtualIPv6 netip.Prefix  `toml:"virtual_network_ipv6"`
	TTL         time.Duration `toml:"ttl"`          // answer TTL; 0 → 60s
	MappingIdle time.Duration `toml:"mapping_idle"` // a mapping unused this long is removed; 0 → 24h

	// DNS over TCP: MaxTCPConns bounds live connections over every
	// listener address (one more is closed at once); TCPIdle closes a
	// connection that sent no query for this long (the first query must
	// come within 2 s).
	MaxTCPConns int           `toml:"max_tcp_connections"` // 0 → 256
	TCPIdle     time.Duration `toml:"tcp_idle_timeout"`    // 0 → 10s

	// Not in the file.
	StateDir     string           `toml:"-"` // where the table is saved; "" = not saved (cmd/socksd copies state_dir)
	MaxMappings  int              `toml:"-"` // per family, on top of the pool size; 0 → 65536
	QueryTimeout time.Duration    `toml:"-"` // per query, including Tor calls; 0 → 10s
	MaxInflight  int              `toml:"-"` // concurrent queries waiting on Tor; 0 → 256, beyond → SERVFAIL
	Now          func() time.Time `toml:"-"` // clock for expiry and LRU; nil → time.Now
}

// DefaultConfig is the [dns] table a file that omits it gets: the bridge
// off (no listen address), every name automapped into Tor's own default
// virtual networks' shape, loopback clients only.
func DefaultConfig() Config {
	return Config{
		Allow:           []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Automap:         AutomapAll,
		AutomapSuffixes: []string{".onion", ".exit"},
		VirtualIPv4:     netip.MustParsePrefix("127.192.0.0/10"),
		VirtualIPv6:     netip.MustParsePrefix("fd00:5ec5:d000::/48"),
		TTL:             DefaultTTL,
		MappingIdle:     DefaultMappingIdle,
		MaxTCPConns:     DefaultMaxTCPConns,
		TCPIdle:         DefaultTCPIdle,
	}
}

// Defaults for zero Config fields.
const (
	DefaultTTL          = 60 * time.Second
	DefaultMappingIdle  = 24 * time.Hour
	DefaultMaxMappings  = 65536
	DefaultQueryTimeout = 10 * time.Second
	DefaultMaxInflight  = 256
	DefaultMaxTCPConns  = 256
	DefaultTCPIdle      = 10 * time.Second
)

// StateFile is the table's file name inside Config.StateDir.
const StateFile = "dns-mappings.json"

var (
	// ErrConfig wraps every configuration error from New.
	ErrConfig = errors.New("resolve: bad config")
	// ErrNoAnswer is what a Tor implementation returns when Tor answered
	// that the name (or address) does not resolve; the client gets NXDOMAIN.
	ErrNoAnswer = errors.New("resolve: no answer")
	// ErrNotMapped: Pin of an address no mapping holds.
	ErrNotMapped = errors.New("resolve: virtual address not mapped")
	// errPoolExhausted: every address of a pool is pinned by a live stream
	// or was answered within the TTL; the query gets SERVFAIL.
	errPoolExhausted = errors.New("resolve: virtual address pool exhausted")
	// errGone: the mapping was expired or reclaimed while we waited on it.
	errGone = errors.New("resolve: mapping removed")
	// errBusy: too many queries already wait on Tor.
	errBusy = errors.New("resolve: too many queries in flight")
)

// fill gives zero fields their defaults and puts values in the form the
// bridge uses: suffixes lower case with a leading dot, allow entries
// masked.
func (c *Config) fill() {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.MappingIdle == 0 {
		c.MappingIdle = DefaultMappingIdle
	}
	if c.MaxMappings == 0 {
		c.MaxMappings = DefaultMaxMappings
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxTCPConns == 0 {
		c.MaxTCPConns = DefaultMaxTCPConns
	}
	if c.TCPIdle == 0 {
		c.TCPIdle = DefaultTCPIdle
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(c.Allow) == 0 {
		c.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	for i, p := range c.Allow {
		if p.IsValid() {
			c.Allow[i] = p.Masked()
		}
	}
	for i, s := range c.AutomapSuffixes {
		s = strings.ToLower(strings.TrimSuffix(s, "."))
		if s != "" && !strings.HasPrefix(s, ".") {
			s = "." + s
		}
		c.AutomapSuffixes[i] = s
	}
}

// Validate checks every [dns] value; each problem names its key within the
// table (confcheck.Problem).
func (c *Config) Validate() error {
	var p confcheck.Problems
	for i, l := range c.Listen {
		if _, err := netip.ParseAddrPort(l); err != nil {
			p.Add(fmt.Sprintf("listen[%d]", i), "want \"ip:port\", got %q", l)
		}
	}
	for i, a := range c.Allow {
		if !a.IsValid() {
			p.Add(fmt.Sprintf("allow[%d]", i), "want a CIDR like \"127.0.0.0/8\"")
		}
	}
	if c.Automap > AutomapOff {
		p.Add("automap", "must be one of all, suffixes or off, got %v", c.Automap)
	}
	for i, s := range c.AutomapSuffixes {
		key := fmt.Sprintf("automap_suffixes[%d]", i)
		if !strings.HasPrefix(s, ".") || len(s) < 2 {
			p.Add(key, "want a suffix starting with a dot like \".onion\", got %q", s)
		} else if _, err := normalizeName(s[1:]); err != nil {
			p.Add(key, "%q is not a DNS name: %v", s, err)
		}
	}
	if c.Automap == AutomapSuffixes && len(c.AutomapSuffixes) == 0 {
		p.Add("automap_suffixes", `must not be empty when dns.automap = "suffixes"`)
	}
	checkPool(&p, "virtual_network_ipv4", c.VirtualIPv4, true, 30)
	checkPool(&p, "virtual_network_ipv6", c.VirtualIPv6, false, 126)
	if c.Automap != AutomapOff && !c.VirtualIPv4.IsValid() && !c.VirtualIPv6.IsValid() {
		p.Add("automap", "%v needs a virtual network (virtual_network_ipv4 or virtual_network_ipv6)", c.Automap)
	}
	p.Positive("ttl", c.TTL)
	if c.TTL > 24*time.Hour {
		p.Add("ttl", "%v is over a day", c.TTL)
	}
	p.Positive("mapping_idle", c.MappingIdle)
	// An app may keep an answer for its whole TTL, so a mapping must live at
	// least that long after its last answer.
	if c.MappingIdle > 0 && c.MappingIdle < c.TTL {
		p.Add("mapping_idle", "%v is shorter than ttl %v: an app may use an answer for its whole TTL", c.MappingIdle, c.TTL)
	}
	if c.MaxTCPConns <= 0 {
		p.Add("max_tcp_connections", "must be > 0, got %d", c.MaxTCPConns)
	}
	p.Positive("tcp_idle_timeout", c.TCPIdle)
	if c.MaxMappings < 0 || c.QueryTimeout < 0 || c.MaxInflight < 0 {
		p.Add("limits", "negative MaxMappings, QueryTimeout or MaxInflight")
	}
	return p.Err()
}

// checkPool checks a virtual network: its family, room for addresses, and no
// host bits (which would mean the user meant another network). A zero
// prefix is a family turned off.
func checkPool(p *confcheck.Problems, key string, n netip.Prefix, want4 bool, maxBits int) {
	if !n.IsValid() {
		return
	}
	fam := "IPv6"
	if want4 {
		fam = "IPv4"
	}
	switch {
	case n.Addr().Is4() != want4 || n.Addr().Is4In6():
		p.Add(key, "must be an %s network, got %q", fam, n)
	case n.Bits() > maxBits:
		p.Add(key, "%q is too small: want /%d or larger", n, maxBits)
	case n != n.Masked():
		p.Add(key, "has host bits set: %q (did you mean %q?)", n, n.Masked())
	}
}

// automapped reports whether name (normalized) gets a virtual address.
func (c *Config) automapped(name string) bool {
	switch c.Automap {
	case AutomapAll:
		return true
	case AutomapSuffixes:
		for _, s := range c.AutomapSuffixes {
			if strings.HasSuffix(name, s) {
				return true
			}
		}
	}
	return false
}

// allowed reports whether a client at src may query.
func (c *Config) allowed(src netip.Addr) bool {
	src = src.Unmap()
	for _, p := range c.Allow {
		if p.Contains(src) {
			return true
		}
	}
	return false
}
