package config

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"socksd/isolation"
)

func TestParseEmptyIsDefault(t *testing.T) {
	cfg, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if cfg.SOCKS.HandshakeTimeout != d.SOCKS.HandshakeTimeout || cfg.SOCKS.Listen[0] != "127.0.0.1:9350" || !cfg.SOCKS.RejectInternal {
		t.Fatalf("empty file did not give defaults: %+v", cfg.SOCKS)
	}
}

func TestExampleFileLoads(t *testing.T) {
	cfg, err := Load("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tor.SOCKS != "" || cfg.Tor.Control != "" || cfg.Metrics.Listen != "127.0.0.1:9352" || cfg.SOCKS.HandshakeTimeout != 30*time.Second {
		t.Fatalf("example values not decoded: %+v", cfg)
	}
}

func TestUnknownKeyNamed(t *testing.T) {
	for _, tc := range []struct {
		name, doc, key string
		line           int
	}{
		{"top level", "state_dri = \"/x\"\n", "state_dri", 1},
		{"in table", "[socks]\nlisten = [\"127.0.0.1:1\"]\nhandshake_timout = \"1s\"\n", "socks.handshake_timout", 3},
		{"unknown table", "[sock]\nlisten = []\n", "sock", 1},
		{"listener table", "[[socks.listener]]\nlisten = \"127.0.0.1:1\"\nisolaton = 1\n", "socks.listener.isolaton", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("want ErrUnknownKey, got %v", err)
			}
			if !strings.Contains(err.Error(), `"`+tc.key+`"`) {
				t.Fatalf("error does not name %q: %v", tc.key, err)
			}
			if want := "line " + itoa(tc.line); !strings.Contains(err.Error(), want) {
				t.Fatalf("error does not say %q: %v", want, err)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want string // substring of the error; "" = valid
	}{
		{`[socks]` + "\n" + `listen = ["127.0.0.1:9350", "unix:/run/socksd.sock", "[::1]:9350", "localhost:1"]`, ""},
		{`[socks]` + "\n" + `handshake_timeout = "0s"`, "socks.handshake_timeout"},
		{`[socks]` + "\n" + `handshake_timeout = "-1s"`, "socks.handshake_timeout"},
		{`[socks]` + "\n" + `max_connections = 0`, "socks.max_connections"},
		{`[socks]` + "\n" + `listen = ["example.com:80"]`, "socks.listen[0]"},
		{`[socks]` + "\n" + `listen = ["127.0.0.1"]`, "socks.listen[0]"},
		{`[socks]` + "\n" + `listen = ["unix:relative"]`, "socks.listen[0]"},
		{`[socks]` + "\n" + `listen = []`, "no listener configured"},
		{`[socks]` + "\n" + `listen = ["127.0.0.1:1", "127.0.0.1:1"]`, "already configured"},
		{"[socks]\nlisten = []\n[[socks.listener]]\nsession_group = \"x\"", "socks.listener[0].listen: must be set"},
		{`[tor]` + "\n" + `launch = "sometimes"`, "tor.launch"},
		{`[tor]` + "\n" + `control = "none"`, "tor.socks"},
		{`[tor]` + "\n" + `control = "localhost"`, "tor.control"},
		{`[tor]` + "\n" + `socks = "9050"`, "tor.socks"},
		{`[tor]` + "\n" + `circuit_lifetime = "0s"`, "tor.circuit_lifetime"},
		{`[tor]` + "\n" + `socks_timeout = "0s"`, "tor.socks_timeout"},
		{`[tor]` + "\n" + `data_dir = "rel"`, "tor.data_dir"},
		{`[tor]` + "\n" + `circuit_pool = -1`, "tor.circuit_pool"},
		{`[tor]` + "\n" + `circuit_pool = 257`, "tor.circuit_pool"},
		{`[tor]` + "\n" + `circuit_pool = 0`, ""},
		{`[tor]` + "\n" + `control = "unix:/run/tor/control"` + "\n" + `socks = "unix:/run/tor/socks"`, ""},
		{`[log]` + "\n" + `level = "verbose"`, "log.level"},
		{`[log]` + "\n" + `format = "xml"`, "log.format"},
		{`[metrics]` + "\n" + `listen = ""`, ""},
		{`[metrics]` + "\n" + `listen = "localhost"`, "metrics.listen"},
		{`[dns]` + "\n" + `listen = ["127.0.0.1"]`, "dns.listen[0]"},
		{`[dns]` + "\n" + `allow = ["10.0.0.0/33"]`, "dns.allow"}, // decode error names the key,
		{`[dns]` + "\n" + `automap = "some"`, "dns.automap"},
		{`[dns]` + "\n" + `automap_suffixes = ["onion"]`, "dns.automap_suffixes[0]"},
		{`[dns]` + "\n" + `virtual_network_ipv4 = "fd00::/8"`, "dns.virtual_network_ipv4"},
		{`[dns]` + "\n" + `virtual_network_ipv6 = "10.0.0.0/8"`, "dns.virtual_network_ipv6"},
		{`[dns]` + "\n" + `virtual_network_ipv4 = "127.192.0.1/10"`, "host bits"},
		{`[dns]` + "\n" + `ttl = "0s"`, "dns.ttl"},
		{`[dns]` + "\n" + `ttl = "48h"`, "dns.ttl"},
		{`[dns]` + "\n" + `mapping_idle = "10s"`, "dns.mapping_idle: 10s is shorter than ttl"},
		{`[dns]` + "\n" + `virtual_network_ipv4 = "127.192.0.0/31"`, "dns.virtual_network_ipv4"},
		{`[dns]` + "\n" + `virtual_network_ipv4 = ""` + "\n" + `virtual_network_ipv6 = ""`, "dns.automap: all needs a virtual network"},
		{`[dns]` + "\n" + `virtual_network_ipv6 = ""`, ""}, // a family turned off
		{`[dns]` + "\n" + `automap_suffixes = [".on ion"]`, "dns.automap_suffixes[0]"},
		{`[dns]` + "\n" + `mapping_idle = "0s"`, "dns.mapping_idle"},
		{`state_dir = "relative"`, "state_dir"},
		{`[socks]` + "\n" + `handshake_timeout = "soon"`, "handshake_timeout"}, // decode error names the key
		{`[socks]` + "\n" + `max_connections = "many"`, "max_connections"},
	} {
		_, err := Parse([]byte(tc.doc))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: unexpected error %v", tc.doc, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want error containing %q, got %v", tc.doc, tc.want, err)
		}
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	_, err := Parse([]byte("[socks]\nmax_connections = 0\nhandshake_timeout = \"0s\"\n[log]\nlevel = \"x\"\n"))
	for _, k := range []string{"socks.max_connections", "socks.handshake_timeout", "log.level"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("error does not mention %s: %v", k, err)
		}
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("want ErrInvalid, got %v", err)
	}
}

func TestListenersPolicy(t *testing.T) {
	cfg, err := Parse([]byte(`
[socks]
listen = ["127.0.0.1:9350"]
[[socks.listener]]
listen = "127.0.0.1:9351"
session_group = "browser"
[socks.listener.isolation]
dest_port = true
client_addr = false
keep_alive = true
[isolation]
client_protocol = true
`))
	if err != nil {
		t.Fatal(err)
	}
	ls := cfg.Listeners()
	if len(ls) != 2 {
		t.Fatalf("want 2 listeners, got %d", len(ls))
	}
	want0 := isolation.SOCKSAuth | isolation.ClientAddr | isolation.ClientProtocol | isolation.SessionGroup
	if ls[0].Addr != "127.0.0.1:9350" || ls[0].Policy.Fields != want0 || ls[0].Policy.SessionGroup != "127.0.0.1:9350" || ls[0].Policy.KeepAlive {
		t.Errorf("simple listener: %+v", ls[0])
	}
	want1 := isolation.SOCKSAuth | isolation.ClientProtocol | isolation.DestPort | isolation.SessionGroup
	if ls[1].Policy.Fields != want1 || ls[1].Policy.SessionGroup != "browser" || !ls[1].Policy.KeepAlive {
		t.Errorf("table listener: %+v (fields %b want %b)", ls[1], ls[1].Policy.Fields, want1)
	}
}

// FuzzParse: any input either errors or yields a config that validates.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[socks]\nlisten = [\"127.0.0.1:9350\"]\n"))
	f.Add([]byte("[[socks.listener]]\nlisten = \"unix:/x\"\n[socks.listener.isolation]\ndest_port = true\n"))
	f.Add([]byte("state_dri = 1"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		cfg, err := Parse(doc)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse returned a config that fails Validate: %v", err)
		}
	})
}
