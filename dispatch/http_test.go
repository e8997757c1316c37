package dispatch_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"socksd/httpguard"
	"socksd/internal/testutil"
	"strconv"
)

// A request other than CONNECT whose Host does not name this machine gets
// no answer at all (http-connect spec, DNS-rebinding defence), and neither
// does a malformed or oversized head that is not a CONNECT.
func TestHTTPForeignHostClosed(t *testing.T) {
	h := newHarness(t, hopt{})
	reqs := []string{
		"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: rebound.example:" + h.addr[strings.LastIndexByte(h.addr, ':')+1:] + "\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: evil.example\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n", // no Host
		"GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n",
		"connect example.com:443 HTTP/1.1\r\n\r\n", // methods are case-sensitive
		"GET /\r\n\r\n", // malformed
		"GET / HTTP/1.1\r\nX-Big: " + strings.Repeat("a", httpguard.MaxHead) + "\r\n\r\n",
	}
	for _, req := range reqs {
		c := h.dial()
		c.Write([]byte(req))
		expectClosed(t, c)
	}
	if got := h.counter("socksd_connections_total", "protocol", "http", "outcome", "http_foreign_host"); got != float64(len(reqs)) {
		t.Errorf("http_foreign_host = %v, want %d", got, len(reqs))
	}
	if n := len(h.fake.Requests()); n != 0 {
		t.Errorf("upstream saw %d requests", n)
	}
}

// A malformed CONNECT (which no web page can send) gets 400, an oversized
// one 431.
func TestHTTPMalformedConnect(t *testing.T) {
	h := newHarness(t, hopt{})
	for _, tc := range []struct{ req, status string }{
		{"CONNECT example.com HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
		{"CONNECT example.com:443 HTTP/1.1\r\nTor-Stream-Isolation: a\r\nTor-Stream-Isolation: b\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
		{"CONNECT example.com:443 HTTP/1.1\r\nX-Big: " + strings.Repeat("a", httpguard.MaxHead) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
	} {
		c := h.dial()
		c.Write([]byte(tc.req))
		got, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(got), tc.status) || strings.Contains(string(got), "Tor-Request-Failed") {
			t.Errorf("%.40q: got %q, want %q without Tor-Request-Failed", tc.req, got, tc.status)
		}
	}
}

// OPTIONS (http-connect spec): Allow, Server and Tor-Capabilities; on an
// HTTP/1.1 connection the CONNECT may follow on the same connection.
func TestHTTPOptions(t *testing.T) {
	h := newHarness(t, hopt{})
	echo := testutil.EchoServer(t, "", "|eof")
	opts := httpguard.AppendOptions(nil, true)

	c := h.dial()
	c.Write([]byte("OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
	expectBytes(t, c, opts)
	c.Write([]byte("OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\nCONNECT 127.0.0.1:" + strconv.Itoa(int(echo.Port())) + " HTTP/1.1\r\n\r\n"))
	expectBytes(t, c, opts)
	expectBytes(t, c, httpguard.AppendConnectEstablished(nil))
	roundTrip(t, c)

	// HTTP/1.0, or Connection: close: answered, then closed.
	for _, req := range []string{"OPTIONS * HTTP/1.0\r\nHost: localhost\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: [::1]:9\r\nConnection: close\r\n\r\n"} {
		c := h.dial()
		c.Write([]byte(req))
		got, _ := io.ReadAll(c)
		if !bytes.Equal(got, httpguard.AppendOptions(nil, false)) {
			t.Fatalf("%q: got %q", req, got)
		}
	}
	// A body is refused.
	c = h.dial()
	c.Write([]byte("OPTIONS * HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nhi"))
	if got, _ := io.ReadAll(c); !strings.HasPrefix(string(got), "HTTP/1.1 400 ") {
		t.Fatalf("OPTIONS with a body: %q", got)
	}
	// At most a few OPTIONS per connection: the last one closes.
	c = h.dial()
	c.Write(bytes.Repeat([]byte("OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n"), 20))
	got, _ := io.ReadAll(c)
	if n := bytes.Count(got, []byte("HTTP/1.1 200 OK")); n != 8 || !bytes.HasSuffix(got, httpguard.AppendOptions(nil, false)) {
		t.Fatalf("%d answers to 20 OPTIONS, last %q", n, got[max(0, len(got)-80):])
	}
	if got := h.counter("socksd_connections_total", "protocol", "http", "outcome", "http_options"); got != 3 {
		t.Errorf("http_options = %v, want 3", got)
	}
}

// Isolation headers reach the upstream as distinct identities; the same
// token in Tor-Stream-Isolation, Proxy-Authorization "tor-iso" and SOCKS5
// "<torS0X>0" is one identity.
func TestHTTPIsolationHeaders(t *testing.T) {
	h := newHarness(t, hopt{})
	echo := testutil.EchoServer(t, "", "|eof")
	target := "127.0.0.1:" + strconv.Itoa(int(echo.Port()))
	connect := func(headers string) {
		t.Helper()
		c := h.dial()
		c.Write([]byte("CONNECT " + target + " HTTP/1.1\r\n" + headers + "\r\n"))
		expectBytes(t, c, httpguard.AppendConnectEstablished(nil))
		roundTrip(t, c)
		c.Close()
	}
	connect("Tor-Stream-Isolation: tok\r\n")                                    // 0
	connect("X-Tor-Stream-Isolation: tok\r\n")                                  // 1 = 0
	connect("Proxy-Authorization: Basic dG9yLWlzbzp0b2s=\r\n")                  // 2 = 0 (tor-iso:tok)
	connect("Tor-Stream-Isolation: other\r\n")                                  // 3
	connect("Tor-Stream-Isolation: tok\r\nProxy-Authorization: Basic dTpw\r\n") // 4: both count
	connect("Proxy-Authorization: Basic dTpw\r\n")                              // 5 (u:p)
	connect("Proxy-Authorization: Bearer x\r\n")                                // 6: raw value
	connect("")                                                                 // 7
	c := h.dial()
	c.Write(append(hexb("05 01 02 01 09"), []byte("<torS0X>0")...))
	c.Write(append([]byte{3}, []byte("tok")...))
	expectBytes(t, c, hexb("05 02 01 00"))
	c.Write(append(hexb("05 01 00 01 7f000001"), port16(echo.Port())...))
	expectBytes(t, c, hexb("05 00 00 01 00000000 0000"))
	roundTrip(t, c) // 8 = 0

	r := h.fake.Requests()
	if len(r) != 9 {
		t.Fatalf("%d upstream requests", len(r))
	}
	same := func(i, j int) bool { return bytes.Equal(r[i].Password, r[j].Password) }
	for _, p := range [][2]int{{0, 1}, {0, 2}, {0, 8}} {
		if !same(p[0], p[1]) {
			t.Errorf("requests %d and %d: different identities, want the same", p[0], p[1])
		}
	}
	distinct := []int{0, 3, 4, 5, 6, 7}
	for i, a := range distinct {
		for _, b := range distinct[i+1:] {
			if same(a, b) {
				t.Errorf("requests %d and %d share an identity", a, b)
			}
		}
	}
}
