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
		out = append(out, ListenerSpec{
			Listen: addr,
			Policy: isolation.Policy{Fields: fieldsOf(c.Isolation), SessionGroup: addr, KeepAlive: c.Isolation.KeepAlive},
		})
	}
	for _, l := range c.SOCKS.Listener {
		iso := c.Isolation.apply(l.Isolation)
		group := l.SessionGroup
		if group == "" {
			group = l.Listen
		}
		out = append(out, ListenerSpec{
			Listen: l.Listen,
			Policy: isolation.Policy{Fields: fieldsOf(iso), SessionGroup: group, KeepAlive: iso.KeepAlive},
		})
	}
	return out
}

func (d IsolationConfig) apply(o *IsolationOverride) IsolationConfig {
	if o == nil {
		return d
	}
	set := func(dst *bool, src *bool) {
		if src != nil {
			*dst = *src
		}
	}
	set(&d.SOCKSAuth, o.SOCKSAuth)
	set(&d.ClientAddr, o.ClientAddr)
	set(&d.ClientProtocol, o.ClientProtocol)
	set(&d.DestPort, o.DestPort)
	set(&d.DestAddr, o.DestAddr)
	set(&d.ClientApp, o.ClientApp)
	set(&d.KeepAlive, o.KeepAlive)
	return d
}

func fieldsOf(c IsolationConfig) isolation.Fields {
	f := isolation.SessionGroup
	for _, b := range []struct {
		on bool
		f  isolation.Fields
	}{
		{c.SOCKSAuth, isolation.SOCKSAuth},
		{c.ClientAddr, isolation.ClientAddr},
		{c.ClientProtocol, isolation.ClientProtocol},
		{c.DestPort, isolation.DestPort},
		{c.DestAddr, isolation.DestAddr},
		{c.ClientApp, isolation.ClientApp},
	} {
		if b.on {
			f |= b.f
		}
	}
	return f
}
