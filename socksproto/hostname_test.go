package socksproto

import (
	"strings"
	"testing"
)

func TestValidHostname(t *testing.T) {
	good := []string{"example.com", "example.com.", "EXAMPLE.com", "a", "xn--bcher-kva.example",
		"under_score.test", "a_b.example.com", "a-.b_", "1.2.3", "1.2.3.4", "1.2.3.4.", "8.8.8.8.8",
		"a-b.c", "a.", strings.Repeat("a", 255), "host.node.exit", "ignored.name.onion",
		"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz234567.onion"}
	bad := []string{"", ".", "..", "---", "-", "_", "-a.com", "a.-b", "_dmarc.example.com", "a._b",
		"a..b", ".a", "a..", "a b", "a\x00b", "a\x01b", "é.com", "a\xc3", "\xff",
		"[::1]", "::1", "2001:db8::1", "[::1", "[]", "[a]", "[1.2.3.4]", "[example.com]", "fe80::1%eth0",
		"::g", "a:b", "host:80", strings.Repeat("a", 256), "a/b", "a@b", "exa%6dple.com"}
	for _, h := range good {
		if !ValidHostname([]byte(h)) || !ValidHostnameString(h) {
			t.Errorf("ValidHostname(%q) = false", h)
		}
	}
	for _, h := range bad {
		if ValidHostname([]byte(h)) || ValidHostnameString(h) {
			t.Errorf("ValidHostname(%q) = true", h)
		}
	}
}

func TestParseIPLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7": "198.51.100.7", "::1": "::1", "[::1]": "::1", "2001:DB8::1": "2001:db8::1",
		"::ffff:192.0.2.1": "192.0.2.1", "[::ffff:192.0.2.1]": "192.0.2.1",
		"": "", "[]": "", "[198.51.100.7]": "", "198.51.100.7.": "", "fe80::1%eth0": "",
		"example.com": "", "[::1": "", "1.2.3": "", strings.Repeat("1", 46): "",
	} {
		a, ok := ParseIPLiteral([]byte(in))
		if ok != (want != "") || ok && a.String() != want {
			t.Errorf("ParseIPLiteral(%q) = %v, %v; want %q", in, a, ok, want)
		}
	}
}

func BenchmarkValidHostname(b *testing.B) {
	name := []byte("www.example.com")
	b.ReportAllocs()
	for b.Loop() {
		if !ValidHostname(name) {
			b.Fatal("refused")
		}
	}
}
