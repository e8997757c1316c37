package main

import (
	"reflect"
	"testing"
	"time"

	"socksd/config"
)

// TestRestartOnly: a reload names every part it does not apply, and only
// those.
func TestRestartOnly(t *testing.T) {
	base := config.Default()
	for _, tc := range []struct {
		name string
		mod  func(*config.Config)
		want []string
	}{
		{"nothing", func(*config.Config) {}, nil},
		{"listeners and [socks] apply", func(c *config.Config) {
			c.SOCKS.Listen = append(c.SOCKS.Listen, "127.0.0.1:1")
			c.SOCKS.SafeSOCKS = true
			c.Isolation.DestPort = true
			c.Log.Level = "debug"
		}, nil},
		{"tor", func(c *config.Config) { c.Tor.Control = "127.0.0.1:9051" }, []string{"[tor]"}},
		{"keep_alive", func(c *config.Config) { c.Isolation.KeepAlive = true }, []string{"isolation.keep_alive"}},
		{"metrics", func(c *config.Config) { c.Metrics.Listen = "" }, []string{"[metrics]"}},
		{"dns listen", func(c *config.Config) { c.DNS.Listen = []string{"127.0.0.1:5353"} }, []string{"[dns]"}},
		{"dns ttl", func(c *config.Config) { c.DNS.TTL = time.Minute * 2 }, []string{"[dns]"}},
		{"state_dir and format", func(c *config.Config) { c.StateDir = "/x"; c.Log.Format = "json" }, []string{"state_dir", "log.format"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			tc.mod(&cfg)
			if got := restartOnly(base, cfg); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("restartOnly = %q, want %q", got, tc.want)
			}
		})
	}
}
