package socksproto_test

import (
	"errors"
	"strings"
	"testing"

	"socksd/httpguard"
	"socksd/socks4"
	"socksd/socks5"
	"socksd/socksproto"
)

// TestOneHostnameRule runs the same names through the three wire forms
// that carry a hostname (a SOCKS4a HOSTNAME, a SOCKS5 DOMAINNAME, the host
// of an HTTP CONNECT authority) and expects one verdict for each name:
// the rule of socksproto.ValidHostname. IPv6 literals are address syntax,
// which each form spells differently; the per-form cases are in the
// socks4, socks5 and httpguard tests.
func TestOneHostnameRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"example.com", true},
		{"example.com.", true},
		{"a_b.example.com", true},
		{"xn--bcher-kva.example", true},
		{"192.0.2.1", true},
		{"1.2.3.4.", true},
		{"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz234567.onion", true},
		{"host.node.exit", true},
		{strings.Repeat("a", 255), true},
		// C Tor's string_is_valid_nonrfc_hostname refuses a label that
		// starts with '_' or '-', over every protocol.
		{"_dmarc.example.com", false},
		{"a._b", false},
		{"-a.com", false},
		{"---", false},
		{"", false},
		{".", false},
		{"a..b", false},
		{"a b", false},
		{"é.fr", false},
		{"exa%6dple.com", false},
		{"[example.com]", false},
		{"[192.0.2.1]", false},
		{strings.Repeat("a", 256), false},
	} {
		got4 := socks4aAccepts(t, tc.name)
		got5 := socks5Accepts(t, tc.name)
		gotH := httpAccepts(tc.name)
		if got4 != tc.ok || got5 != tc.ok || gotH != tc.ok {
			t.Errorf("%.40q: socks4a %v, socks5 %v, http connect %v; want %v for all", tc.name, got4, got5, gotH, tc.ok)
		}
	}
}

func socks4aAccepts(t *testing.T, name string) bool {
	msg := append([]byte{4, 1, 0, 80, 0, 0, 0, 1, 0}, name...)
	msg = append(msg, 0)
	var h socks4.Handshake
	a, err := h.Step(msg)
	if err != nil && !errors.Is(err, socksproto.ErrHostname) && !errors.Is(err, socks4.ErrHostnameTooLong) {
		t.Fatalf("socks4a %.40q: %v", name, err)
	}
	return err == nil && a.Done
}

func socks5Accepts(t *testing.T, name string) bool {
	if len(name) > 255 {
		return false // the one-byte length cannot say it
	}
	var h socks5.Handshake
	if _, err := h.Step([]byte{5, 1, 0}); err != nil {
		t.Fatal(err)
	}
	msg := append([]byte{5, 1, 0, 3, byte(len(name))}, name...)
	a, err := h.Step(append(msg, 0, 80))
	if err != nil && !errors.Is(err, socksproto.ErrHostname) {
		t.Fatalf("socks5 %.40q: %v", name, err)
	}
	return err == nil && a.Done
}

func httpAccepts(name string) bool {
	head, _, err := httpguard.ParseHead([]byte("CONNECT " + name + ":443 HTTP/1.1\r\n\r\n"))
	return err == nil && head.IsConnect && head.Host == name
}
