// Package config is the only place TOML is decoded. The file's sections
// are the plain structs of the packages that use them (dispatch.Config is
// [socks], torup.Config [tor], resolve.Config [dns], isolation.Config
// [isolation]), each with its own defaults and Validate; this package
// decodes the file into them, calls every Validate, checks what spans
// sections, and builds what takes values from several sections.
package config

import (
	"socksd/dispatch"
	"socksd/isolation"
	"socksd/resolve"
	"socksd/torup"
)

// Config is socksd's whole configuration file.
type Config struct {
	StateDir  string           `toml:"state_dir"`
	SOCKS     dispatch.Config  `toml:"socks"`
	Tor       torup.Config     `toml:"tor"`
	Log       Log              `toml:"log"`
	Metrics   Metrics          `toml:"metrics"`
	DNS       resolve.Config   `toml:"dns"`
	Isolation isolation.Config `toml:"isolation"`
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
		StateDir:  "/var/lib/socksd",
		SOCKS:     dispatch.DefaultConfig(),
		Tor:       torup.DefaultConfig(),
		Log:       Log{Level: "info", Format: "auto", SafeLogging: true},
		Metrics:   Metrics{Listen: "127.0.0.1:9352"},
		DNS:       resolve.DefaultConfig(),
		Isolation: isolation.DefaultConfig(),
	}
}
