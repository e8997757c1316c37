package httpguard

import "testing"

func TestAddressedToProxy(t *testing.T) {
	for _, tc := range []struct {
		head   string // the header lines
		listen string
		want   bool
	}{
		{"Host: localhost\r\n", "127.0.0.1:9350", true},
		{"Host: LocalHost:9350\r\n", "127.0.0.1:9350", true},
		{"Host: localhost:1\r\n", "127.0.0.1:9350", true},
		{"Host: 127.0.0.1\r\n", "127.0.0.1:9350", true},
		{"Host: 127.0.0.1:9350\r\n", "127.0.0.1:9350", true},
		{"Host: 127.3.2.1:80\r\n", "127.0.0.1:9350", true},
		{"Host: [::1]\r\n", "127.0.0.1:9350", true},
		{"Host: [::1]:9350\r\n", "[::1]:9350", true},
		{"Host: 192.0.2.7:9350\r\n", "192.0.2.7:9350", true}, // the listener's own address
		{"Host: 192.0.2.7\r\n", "[::ffff:192.0.2.7]:9350", true},
		{"Host: localhost\r\n", "unix:/run/socksd.sock", true},
		// Foreign: every name but localhost (a rebinding attacker's name
		// resolves to 127.0.0.1 too), other addresses, bad syntax.
		{"Host: evil.example\r\n", "127.0.0.1:9350", false},
		{"Host: evil.example:9350\r\n", "127.0.0.1:9350", false},
		{"Host: localhost.\r\n", "127.0.0.1:9350", false},
		{"Host: localhost.evil.example\r\n", "127.0.0.1:9350", false},
		{"Host: 192.0.2.8:9350\r\n", "192.0.2.7:9350", false},
		{"Host: 0.0.0.0:9350\r\n", "0.0.0.0:9350", false},
		{"Host: 192.0.2.7\r\n", "unix:/run/socksd.sock", false},
		{"Host: ::1\r\n", "127.0.0.1:9350", false},
		{"Host: [127.0.0.1]\r\n", "127.0.0.1:9350", false},
		{"Host: [::1\r\n", "127.0.0.1:9350", false},
		{"Host: [::1]x\r\n", "127.0.0.1:9350", false},
		{"Host: [fe80::1%25lo]\r\n", "127.0.0.1:9350", false},
		{"Host: localhost:0\r\n", "127.0.0.1:9350", false},
		{"Host: localhost:65536\r\n", "127.0.0.1:9350", false},
		{"Host: localhost:\r\n", "127.0.0.1:9350", false},
		{"Host: localhost:1:2\r\n", "127.0.0.1:9350", false},
		{"Host: localhost:+1\r\n", "127.0.0.1:9350", false},
		{"Host:\r\n", "127.0.0.1:9350", false},
		{"", "127.0.0.1:9350", false}, // no Host (HTTP/1.0)
		{"Host: localhost\r\nHost: localhost\r\n", "127.0.0.1:9350", false},
		{"Host: evil.example\r\nHost: localhost\r\n", "127.0.0.1:9350", false},
	} {
		h, _, err := ParseHead([]byte("GET / HTTP/1.1\r\n" + tc.head + "\r\n"))
		if err != nil {
			t.Fatalf("%q: %v", tc.head, err)
		}
		if got := h.AddressedToProxy(tc.listen); got != tc.want {
			t.Errorf("%q on %s: %v, want %v", tc.head, tc.listen, got, tc.want)
		}
	}
}
