package resolve

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
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

// Config is the bridge's plain configuration; cmd/socksd builds it from the
// [dns] table and state_dir.
type Config struct {
	Listen []string // "host:port" for UDP and TCP each; empty = no listener (ServeDNS still works)
	// Allow lists the client networks that may query. Empty means loopback
	// only (127.0.0.0/8 and ::1). Everyone else gets REFUSED.
	Allow           []netip.Prefix
	Automap         Mode
	AutomapSuffixes []string // e.g. ".onion", ".exit"; leading dot optional
	// VirtualIPv4 and VirtualIPv6 are the virtual address pools. A zero
	// prefix disables that family (A or AAAA answers NODATA for automapped
	// names).
	VirtualIPv4 netip.Prefix
	VirtualIPv6 netip.Prefix
	TTL         time.Duration // answer TTL; 0 → 60s
	MappingIdle time.Duration // a mapping unused this long is removed; 0 → 24h
	StateDir    string        // where the table is saved; "" = not saved

	MaxMappings  int           // per family, on top of the pool size; 0 → 65536
	QueryTimeout time.Duration // per query, including Tor calls; 0 → 10s
	MaxInflight  int           // concurrent queries waiting on Tor; 0 → 256, beyond → SERVFAIL
	// MaxTCPConns bounds live DNS-over-TCP connections over every
	// listener address: one more is closed at once. 0 → 256.
	MaxTCPConns int
	// TCPIdle closes a DNS-over-TCP connection that sent no query for
	// this long (the first query must come within 2 s). 0 → 10s.
	TCPIdle time.Duration
	Now     func() time.Time // clock for expiry and LRU; nil → time.Now
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

// normalize fills defaults and checks c; it returns the suffixes in the form
// the matcher wants (lower case, leading dot).
func (c *Config) normalize() error {
	if c.TTL < 0 || c.MappingIdle < 0 || c.QueryTimeout < 0 || c.MaxMappings < 0 || c.MaxInflight < 0 || c.MaxTCPConns < 0 || c.TCPIdle < 0 {
		return fmt.Errorf("%w: negative duration or limit", ErrConfig)
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.TTL > 24*time.Hour {
		return fmt.Errorf("%w: ttl %v is over a day", ErrConfig, c.TTL)
	}
	if c.MappingIdle == 0 {
		c.MappingIdle = DefaultMappingIdle
	}
	// An app may keep an answer for its whole TTL, so a mapping must live at
	// least that long after its last answer.
	if c.MappingIdle < c.TTL {
		return fmt.Errorf("%w: mapping_idle %v is shorter than ttl %v", ErrConfig, c.MappingIdle, c.TTL)
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
		if !p.IsValid() {
			return fmt.Errorf("%w: allow entry %d is not a valid prefix", ErrConfig, i)
		}
		c.Allow[i] = p.Masked()
	}
	if c.Automap > AutomapOff {
		return fmt.Errorf("%w: automap %v", ErrConfig, c.Automap)
	}
	if c.VirtualIPv4.IsValid() {
		if !c.VirtualIPv4.Addr().Is4() || c.VirtualIPv4.Bits() > 30 {
			return fmt.Errorf("%w: virtual_network_ipv4 %v must be IPv4 and /30 or larger", ErrConfig, c.VirtualIPv4)
		}
	}
	if c.VirtualIPv6.IsValid() {
		if !c.VirtualIPv6.Addr().Is6() || c.VirtualIPv6.Addr().Is4In6() || c.VirtualIPv6.Bits() > 126 {
			return fmt.Errorf("%w: virtual_network_ipv6 %v must be IPv6 and /126 or larger", ErrConfig, c.VirtualIPv6)
		}
	}
	if c.Automap != AutomapOff && !c.VirtualIPv4.IsValid() && !c.VirtualIPv6.IsValid() {
		return fmt.Errorf("%w: automap %v needs a virtual network", ErrConfig, c.Automap)
	}
	if c.VirtualIPv4.IsValid() && c.VirtualIPv6.IsValid() && c.VirtualIPv4.Overlaps(c.VirtualIPv6) {
		return fmt.Errorf("%w: virtual networks overlap", ErrConfig)
	}
	sfx := make([]string, 0, len(c.AutomapSuffixes))
	for _, s := range c.AutomapSuffixes {
		s = strings.ToLower(strings.TrimSuffix(s, "."))
		if s == "" {
			return fmt.Errorf("%w: empty automap suffix", ErrConfig)
		}
		if !strings.HasPrefix(s, ".") {
			s = "." + s
		}
		if _, err := normalizeName(s[1:]); err != nil {
			return fmt.Errorf("%w: automap suffix %q: %v", ErrConfig, s, err)
		}
		sfx = append(sfx, s)
	}
	c.AutomapSuffixes = sfx
	if c.Automap == AutomapSuffixes && len(sfx) == 0 {
		return fmt.Errorf("%w: automap suffixes with no suffix", ErrConfig)
	}
	return nil
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
