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
			if want := "line " + strconv.Itoa(tc.line); !strings.Contains(err.Error(), want) {
				t.Fatalf("error does not say %q: %v", want, err)
			}
		})
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
