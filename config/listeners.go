package config

import "socksd/dispatch"

// Listeners is every SOCKS listener with its isolation policy: [socks]
// listeners under the [isolation] defaults (dispatch.Config.Listeners).
func (c *Config) Listeners() []dispatch.ListenerConfig {
	return c.SOCKS.Listeners(c.Isolation)
}

// Settings is the dispatcher's runtime configuration: [socks], with the
// wait for Tor's reply from tor.socks_timeout and log.safe_logging.
func (c *Config) Settings() dispatch.Settings {
	return dispatch.Settings{
		HandshakeTimeout: c.SOCKS.HandshakeTimeout,
		UpstreamTimeout:  c.Tor.SOCKSTimeout,
		MaxConnections:   c.SOCKS.MaxConnections,
		ExtendedErrors:   c.SOCKS.ExtendedErrors,
		HTTPConnect:      c.SOCKS.HTTPConnect,
		SafeSOCKS:        c.SOCKS.SafeSOCKS,
		RejectInternal:   c.SOCKS.RejectInternal,
		SafeLogging:      c.Log.SafeLogging,
	}
}
