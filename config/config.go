// Package config is the only place TOML is decoded. The file's sections
// are the plain structs of the packages that use them (torup.Config is
// [tor], resolve.Config [dns], isolation.Config [isolation]), each with its own defaults and Validate; this package decodes
// the file into them, calls every Validate and checks what spans sections.
package config

import (
	"time"

	"socksd/isolation"
	"socksd/resolve"
	"socksd/torup"
)

// Config is socksd's whole configuration file.
type Config struct {
	StateDir  string           `toml:"state_dir"`
	SOCKS     SOCKS            `toml:"socks"`
	Tor       torup.Config     `toml:"tor"`
	Log       Log              `toml:"log"`
	Metrics   Metrics          `toml:"metrics"`
	DNS       resolve.Config   `toml:"dns"`
	Isolation isolation.Config `toml:"isolation"`
}

// SOCKS configures the client-facing listeners.
type SOCKS struct {
	Listen           []string      `toml:"listen"` // simple form: each gets the [isolation] defaults
	Listener         []Listener    `toml:"listener"`
	HandshakeTimeout time.Duration `toml:"handshake_timeout"`
	MaxConnections   int           `toml:"max_connections"`
	ExtendedErrors   bool          `toml:"extended_errors"`
	HTTPConnect      bool          `toml:"http_connect"`
	SafeSOCKS        bool          `toml:"safe_socks"`
	RejectInternal   bool          `toml:"reject_internal"`
}

// Listener is one [[socks.listener]] table.
type Listener struct {
	Listen       string              `toml:"listen"` // "host:port" or "unix:/path"
	SessionGroup string              `toml:"session_group"`
	Isolation    *isolation.Override `toml:"isolation"`
}

// Log configures zap.
type Log struct {
	Level       string `toml:"level"`  // debug | info | warn | error
	Format      string `toml:"format"` // auto | console | json
	SafeLogging bool   `toml:"safe_logging"`
}

// Metrics configures the Prometheus / status / admin listener.
type Metrics struct {
	Listen string `toml:"listen"` // "" = off
}

// Default returns the configuration used for every key the file omits.
func Default() Config {
	return Config{
		StateDir: "/var/lib/socksd",
		SOCKS: SOCKS{
			Listen:           []string{"127.0.0.1:9350"},
			HandshakeTimeout: 30 * time.Second,
			MaxConnections:   4096,
			ExtendedErrors:   true,
			HTTPConnect:      true,
			RejectInternal:   true,
		},
		Tor:       torup.DefaultConfig(),
		Log:       Log{Level: "info", Format: "auto", SafeLogging: true},
		Metrics:   Metrics{Listen: "127.0.0.1:9352"},
		DNS:       resolve.DefaultConfig(),
		Isolation: isolation.DefaultConfig(),
	}
}
