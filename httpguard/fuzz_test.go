package httpguard

import (
	"encoding/base64"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"socksd/internal/testutil"
	"socksd/socksproto"
)

func FuzzParseHead(f *testing.F) {
	for _, tc := range validHeads {
		f.Add([]byte(tc.in), []byte{})
		f.Add([]byte(tc.in), []byte{0, 7})
	}
	for _, tc := range badHeads {
		f.Add([]byte(tc.in), []byte{3})
	}
	f.Add([]byte("CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic YTpiOmM=\r\n\r\n"), []byte{1})
	f.Add([]byte("CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Bearer x\r\nTor-Stream-Isolation: t\r\n\r\n"), []byte{2})
	f.Add([]byte("CONNECT example.com:443 HTTP/1.1\r\nX-Tor-Stream-Isolation: t\r\nTor-Stream-Isolation: t\r\n\r\n"), []byte{5})
	f.Add([]byte("CONNECT example.com:443 HTTP/1.1\r\nX-Tor-Stream-Isolation: a\r\nTor-Stream-Isolation: b\r\n\r\n"), []byte{5})
	f.Add([]byte("CONNECT example.com:443 HTTP/1.1\r\nTor-Stream-Options: fresh=1;lifetime=60s;isolation=a\\;b\r\n\r\n"), []byte{4})
	f.Add([]byte("CONNECT example.com:443 HTTP/1.1\r\nTor-Stream-Options: fresh=1\r\ntor-stream-options: x=1\r\n\r\n"), []byte{6})
	f.Add([]byte("OPTIONS * HTTP/1.1\r\nHost: localhost:9350\r\nConnection: close\r\nTor-Foo: 1\r\n\r\n"), []byte{9})
	f.Fuzz(func(t *testing.T, in, split []byte) {
		whole := runHead(in, []int{len(in)})
		if chunked := runHead(in, testutil.Chunks(split, len(in), 512)); chunked != whole {
			t.Fatalf("whole %+v != chunked %+v", whole, chunked)
		}
		if whole.n > len(in) || whole.n > MaxHead || whole.n < 0 {
			t.Fatalf("n = %d of %d", whole.n, len(in))
		}
		if whole.short && len(in) >= MaxHead {
			t.Fatalf("still waiting with %d bytes", len(in))
		}
		if strings.HasPrefix(whole.err, "unknown") {
			t.Fatal(whole.err)
		}
		h, _, err := ParseHead(in)
		if err != nil {
			return
		}
		if !isToken([]byte(h.Method)) || !isHTTPVersion([]byte(h.Proto)) {
			t.Fatalf("method %q", h.Method)
		}
		if h.IsConnect != (h.Method == "CONNECT") {
			t.Fatalf("IsConnect %v for %q", h.IsConnect, h.Method)
		}
		if !h.IsConnect {
			return
		}
		if h.Port == 0 {
			t.Fatal("CONNECT to port 0 accepted")
		}
		if a, err := netip.ParseAddr(h.Host); err == nil {
			if a.Zone() != "" {
				t.Fatalf("zone in %q", h.Host)
			}
		} else if !socksproto.ValidHostnameString(h.Host) {
			t.Fatalf("host %q accepted, but it is not a valid hostname", h.Host)
		}
		// Round trip: a client's CONNECT for the parsed fields parses to
		// the same fields.
		host := h.Host
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		enc := "CONNECT " + host + ":" + strconv.Itoa(int(h.Port)) + " HTTP/1.1\r\n"
		if h.HasAuth {
			enc += "Proxy-Authorization: Basic " +
				base64.StdEncoding.EncodeToString([]byte(string(h.User)+":"+string(h.Pass))) + "\r\n"
		} else if h.ProxyAuthorization != nil {
			enc += "Proxy-Authorization: " + string(h.ProxyAuthorization) + "\r\n"
		}
		if h.HasStreamIsolation {
			name := "Tor-Stream-Isolation"
			if h.StreamIsolationLegacy {
				name = "X-" + name
			}
			enc += name + ": " + string(h.StreamIsolation) + "\r\n"
		}
		if h.HasStreamOptions {
			enc += "Tor-Stream-Options: " + string(h.StreamOptions) + "\r\n"
		}
		enc += "\r\n"
		h2, n2, err := ParseHead([]byte(enc))
		if err != nil && !(errors.Is(err, ErrHeadTooLarge) && len(enc) > MaxHead) {
			t.Fatalf("re-encoded %q: %v", enc, err)
		}
		if err == nil && (n2 != len(enc) || h2.Host != h.Host || h2.Port != h.Port || h2.HasAuth != h.HasAuth ||
			string(h2.User) != string(h.User) || string(h2.Pass) != string(h.Pass) ||
			(h2.ProxyAuthorization != nil) != (h.ProxyAuthorization != nil) ||
			!h.HasAuth && string(h2.ProxyAuthorization) != string(h.ProxyAuthorization) ||
			h2.HasStreamIsolation != h.HasStreamIsolation || string(h2.StreamIsolation) != string(h.StreamIsolation) ||
			h2.StreamIsolationLegacy != h.StreamIsolationLegacy ||
			h2.HasStreamOptions != h.HasStreamOptions || string(h2.StreamOptions) != string(h.StreamOptions)) {
			t.Fatalf("round trip %+v, want %+v", h2, h)
		}
	})
}

// The Host rule of AddressedToProxy: never a panic, and whatever it
// accepts is localhost, a loopback literal or the listener's own IP.
func FuzzAddressedToProxy(f *testing.F) {
	for _, s := range []string{"localhost", "LOCALHOST:9350", "127.0.0.1:80", "[::1]:1", "[::1]", "::1",
		"evil.example", "192.0.2.7:9350", "localhost:0", "[::1", "[fe80::1%lo]:1", ""} {
		f.Add(s, "192.0.2.7:9350")
		f.Add(s, "unix:/run/socksd.sock")
	}
	f.Fuzz(func(t *testing.T, host, listen string) {
		h, _, err := ParseHead([]byte("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"))
		if err != nil || !h.AddressedToProxy(listen) {
			return
		}
		name, ok := splitHostHeader(h.HostHeader)
		if !ok {
			t.Fatalf("%q accepted but does not split", h.HostHeader)
		}
		if strings.EqualFold(name, "localhost") {
			return
		}
		a, err := netip.ParseAddr(name)
		if err != nil {
			t.Fatalf("%q accepted: neither localhost nor an IP", h.HostHeader)
		}
		own, _ := listenIP(listen)
		if !a.IsLoopback() && a != own {
			t.Fatalf("%q accepted on %q", h.HostHeader, listen)
		}
	})
}
