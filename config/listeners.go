package config

import "socksd/isolation"

// ListenerSpec is one resolved SOCKS listener: its address and the
// isolation policy that results from [isolation] and its own overrides.
type ListenerSpec struct {
	Listen string // "host:port" or "unix:/path"
	Policy isolation.Policy
}

// Listeners turns both listener forms into one list: each `listen = [...]`
// entry gets the [isolation] defaults, each [[socks.listener]] table its
// overrides. Every listener isolates on its session group, as every Tor
// SocksPort is its own session group unless SessionGroup= says otherwise
// (tor(1), SessionGroup); the group defaults to the listen address.
func (c *Config) Listeners() []ListenerSpec {
	out := make([]ListenerSpec, 0, len(c.SOCKS.Listen)+len(c.SOCKS.Listener))
	for _, addr := range c.SOCKS.Listen {
		out = append(out, ListenerSpec{Listen: addr, Policy: c.Isolation.Policy(addr)})
	}
	for _, l := range c.SOCKS.Listener {
		group := l.SessionGroup
		if group == "" {
			group = l.Listen
		}
		out = append(out, ListenerSpec{Listen: l.Listen, Policy: c.Isolation.Apply(l.Isolation).Policy(group)})
	}
	return out
}
