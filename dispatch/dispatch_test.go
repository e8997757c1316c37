package dispatch_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"socksd/dispatch"
	"socksd/httpguard"
	"socksd/internal/sockstest"
	"socksd/internal/testutil"
	"socksd/socks5"
	"strconv"
)

// greet5 is a SOCKS5 greeting offering no-auth.
var greet5 = hexb("05 01 00")

func socks5ConnectIP(ap netip.AddrPort) []byte {
	a := ap.Addr().As4()
	b := append(hexb("05 01 00 01"), a[:]...)
	return append(b, port16(ap.Port())...)
}

func socks5ConnectHost(host string, port uint16) []byte {
	b := append(hexb("05 01 00 03"), byte(len(host)))
	b = append(b, host...)
	return append(b, port16(port)...)
}

func socks4Connect(ap netip.AddrPort, user string) []byte {
	a := ap.Addr().As4()
	b := append([]byte{4, 1}, port16(ap.Port())...)
	b = append(b, a[:]...)
	b = append(b, user...)
	return append(b, 0)
}

func socks4aConnect(host string, port uint16, cmd byte) []byte {
	b := append([]byte{4, cmd}, port16(port)...)
	b = append(b, 0, 0, 0, 1, 0)
	b = append(b, host...)
	return append(b, 0)
}

// roundTrip writes "ping", half-closes and expects "ping|eof" back from
// echoServer: both directions and the half-close went through.
func roundTrip(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "ping|eof" {
		t.Fatalf("relay got %q, %v", got, err)
	}
}

func TestSOCKS4Connect(t *testing.T) {
	h := newHarness(t, hopt{})
	echo := testutil.EchoServer(t, "", "|eof")
	c := h.dial()
	c.Write(socks4Connect(echo, "alice"))
	expectBytes(t, c, hexb("00 5a 0000 00000000"))
	roundTrip(t, c)
	r := h.fake.Requests()
	if len(r) != 1 || r[0].IP != echo.Addr() || r[0].Port != echo.Port() || string(r[0].Username) != "<torS0X>0" {
		t.Fatalf("upstream saw %+v", r)
	}
}

func TestSOCKS4aConnect(t *testing.T) {
	h := newHarness(t, hopt{})
	echo := testutil.EchoServer(t, "", "|eof")
	c := h.dial()
	c.Write(socks4aConnect("localhost", echo.Port(), 1))
	expectBytes(t, c, hexb("00 5a 0000 00000000"))
	roundTrip(t, c)
	if r := h.fake.Requests(); r[0].Host != "localhost" {
		t.Fatalf("upstream saw host %q (must not be resolved locally)", r[0].Host)
	}
}

func TestSOCKS5Connect(t *testing.T) {
	h := newHarness(t, hopt{})
	echo := testutil.EchoServer(t, "", "|eof")
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"ipv4", append(append([]byte{}, greet5...), socks5ConnectIP(echo)...)},
		{"hostname", append(append([]byte{}, greet5...), socks5ConnectHost("localhost", echo.Port())...)},
		{"userpass", append(hexb("05 01 02 01 01 75 01 70"), socks5ConnectHost("localhost", echo.Port())...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial()
			c.Write(tc.msg)
			if tc.name == "userpass" {
				expectBytes(t, c, hexb("05 02 01 00"))
			} else {
				expectBytes(t, c, hexb("05 00"))
			}
			expectBytes(t, c, hexb("05 00 00 01 00000000 0000"))
			roundTrip(t, c)
		})
	}
	// Different credentials, different isolation keys upstream.
	r := h.fake.Requests()
	if len(r) != 3 || bytes.Equal(r[1].Password, r[2].Password) {
		t.Fatalf("isolation passwords not distinct: %q %q", r[1].Password, r[2].Password)
	}
	if got := h.counter("socksd_connections_total", "protocol", "socks5", "outcome", "ok"); got != 3 {
		t.Errorf("connections ok = %v", got)
	}
}

func TestHTTPWarningPage(t *testing.T) {
	for _, httpConnect := range []bool{true, false} {
		h := newHarness(t, hopt{settings: func(s *dispatch.Settings) { s.HTTPConnect = httpConnect }})
		reqs := []string{"GET http://localhost/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
			"POST / HTTP/1.1\r\nHost: " + h.addr + "\r\nContent-Length: 2\r\n\r\nhi"}
		if !httpConnect {
			reqs = append(reqs, "CONNECT example.com:443 HTTP/1.1\r\n\r\n", "OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n")
		}
		for _, req := range reqs {
			c := h.dial()
			c.Write([]byte(req))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if want := httpguard.WarningPage(h.addr); !bytes.Equal(got, want) {
				t.Fatalf("page differs:\n%s\nwant\n%s", got, want)
			}
			head, body, _ := strings.Cut(string(got), "\r\n\r\n")
			lines := strings.Split(head, "\r\n")
			if !strings.HasPrefix(lines[0], "HTTP/1.0 501 ") {
				t.Fatalf("status line %q", lines[0])
			}
			hdr := map[string]string{}
			for _, l := range lines[1:] {
				k, v, _ := strings.Cut(l, ": ")
				hdr[k] = v
			}
			if hdr["Content-Type"] != "text/html; charset=utf-8" || hdr["Connection"] != "close" || hdr["Content-Length"] != strconv.Itoa(len(body)) {
				t.Fatalf("headers %q (body %d bytes)", hdr, len(body))
			}
		}
		if got := h.counter("socksd_connections_total", "protocol", "http", "outcome", "http_warning"); got != float64(len(reqs)) {
			t.Errorf("warning count %v", got)
		}
	}
}

func TestHTTPConnectTunnel(t *testing.T) {
	h := newHarness(t, hopt{})
	echo := testutil.EchoServer(t, "", "|eof")
	c := h.dial()
	c.Write([]byte("CONNECT 127.0.0.1:" + strconv.Itoa(int(echo.Port())) + " HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic dTpw\r\n\r\n"))
	expectBytes(t, c, []byte("HTTP/1.1 200 Connection established\r\nTor-Capabilities: \r\nVia: tor/1.0 tor-network (socksd)\r\n\r\n"))
	roundTrip(t, c)
}

func TestHTTPConnectFailure(t *testing.T) {
	h := newHarness(t, hopt{fake: &sockstest.Server{Fail: func(*sockstest.Request) byte { return 0x06 }}})
	c := h.dial()
	c.Write([]byte("CONNECT example.com:443 HTTP/1.1\r\n\r\n"))
	got, _ := io.ReadAll(c)
	want := "HTTP/1.1 504 Gateway Timeout (TTL expired)\r\nTor-Capabilities: \r\nVia: tor/1.0 tor-network (socksd)\r\n" +
		"Tor-Request-Failed: 0x06 TTL expired\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	if string(got) != want {
		t.Fatalf("got %q", got)
	}
}

func TestUnknownFirstByteClosed(t *testing.T) {
	h := newHarness(t, hopt{})
	c := h.dial()
	c.Write([]byte{0x16, 0x03, 0x01}) // a TLS ClientHello
	expectClosed(t, c)
	if got := h.counter("socksd_connections_total", "outcome", "unknown_protocol"); got != 1 {
		t.Errorf("unknown_protocol = %v", got)
	}
}

// fakeResolver answers from tables and counts calls.
type fakeResolver struct {
	calls atomic.Int32
}

func (f *fakeResolver) Resolve(_ context.Context, req *dispatch.Request) (netip.Addr, error) {
	f.calls.Add(1)
	switch req.Host {
	case "example.test":
		return netip.MustParseAddr("192.0.2.7"), nil
	case "v6.test":
		return netip.MustParseAddr("2001:db8::1"), nil
	}
	return netip.Addr{}, &socks5.ReplyError{Code: socks5.ReplyHostUnreachable}
}

func (f *fakeResolver) ResolvePTR(_ context.Context, req *dispatch.Request) (string, error) {
	f.calls.Add(1)
	if req.IP == netip.MustParseAddr("192.0.2.7") {
		return "rev.example.test", nil
	}
	return "", &socks5.ReplyError{Code: socks5.ReplyHostUnreachable}
}

func TestResolve(t *testing.T) {
	res := &fakeResolver{}
	h := newHarness(t, hopt{resolver: res})
	for _, tc := range []struct {
		name  string
		send  string
		reply string
		calls int32
	}{
		{"socks5 resolve", "050100 05f00003 0c 6578616d706c652e74657374 0000", "0500 05000001 c0000207 0000", 1},
		{"socks5 resolve v6", "050100 05f00003 07 76362e74657374 0000", "0500 05000004 20010db8000000000000000000000001 0000", 1},
		{"socks5 resolve nx", "050100 05f00003 07 6e782e74657374 0000", "0500 05040000 00000000 0000", 1},
		{"socks5 resolve ip literal echoed", "050100 05f00001 01020304 0000", "0500 05000001 01020304 0000", 0},
		{"socks5 resolve literal name echoed", "050100 05f00003 07 312e322e332e34 0000", "0500 05000001 01020304 0000", 0},
		{"socks4a resolve literal echoed", "04f0 0000 00000001 00 312e322e332e3400", "005a 0000 01020304", 0},
		{"socks5 resolve_ptr", "050100 05f10001 c0000207 0000", "0500 05000003 10 7265762e6578616d706c652e74657374 0000", 1},
		{"socks5 resolve_ptr fail", "050100 05f10001 c0000208 0000", "0500 05040000 00000000 0000", 1},
		{"socks4a resolve", "04f0 0000 00000001 00 6578616d706c652e7465737400", "005a 0000 c0000207", 1},
		{"socks4a resolve nx", "04f0 0000 00000001 00 6e782e7465737400", "005b 0000 00000000", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := res.calls.Load()
			c := h.dial()
			c.Write(hexb(tc.send))
			expectBytes(t, c, hexb(tc.reply))
			expectClosed(t, c)
			if n := res.calls.Load() - before; n != tc.calls {
				t.Fatalf("resolver called %d times, want %d", n, tc.calls)
			}
		})
	}
}

func TestResolveThroughChain(t *testing.T) {
	h := newHarness(t, hopt{fake: &sockstest.Server{Hosts: map[string]netip.Addr{"example.test": netip.MustParseAddr("192.0.2.9")}}})
	c := h.dial()
	c.Write(hexb("050100 05f00003 0c 6578616d706c652e74657374 0000"))
	expectBytes(t, c, hexb("0500 05000001 c0000209 0000"))
	if r := h.fake.Requests(); len(r) != 1 || r[0].Cmd != 0xF0 || string(r[0].Username) != "<torS0X>0" {
		t.Fatalf("upstream saw %+v", r)
	}
}

func TestRejectInternal(t *testing.T) {
	virtual := netip.MustParseAddr("127.192.0.5")
	isVirtual := func(a netip.Addr) bool { return a == virtual }
	ok := func(r *sockstest.Request, c net.Conn, _ *bufio.Reader) { sockstest.WriteReply(c, 0, nil) }
	h := newHarness(t, hopt{
		settings:  func(s *dispatch.Settings) { s.RejectInternal = true },
		isVirtual: isVirtual,
		fake:      &sockstest.Server{Handle: ok},
	})
	for _, tc := range []struct {
		name  string
		send  []byte
		reply string
	}{
		{"socks5 127.0.0.1", append(append([]byte{}, greet5...), socks5ConnectIP(netip.MustParseAddrPort("127.0.0.1:80"))...), "0500 05020001 00000000 0000"},
		{"socks5 10.1.2.3", append(append([]byte{}, greet5...), socks5ConnectIP(netip.MustParseAddrPort("10.1.2.3:80"))...), "0500 05020001 00000000 0000"},
		{"socks5 192.168.1.1", append(append([]byte{}, greet5...), socks5ConnectIP(netip.MustParseAddrPort("192.168.1.1:80"))...), "0500 05020001 00000000 0000"},
		{"socks5 169.254.1.1", append(append([]byte{}, greet5...), socks5ConnectIP(netip.MustParseAddrPort("169.254.1.1:80"))...), "0500 05020001 00000000 0000"},
		{"socks5 100.64.0.1", append(append([]byte{}, greet5...), socks5ConnectIP(netip.MustParseAddrPort("100.64.0.1:80"))...), "0500 05020001 00000000 0000"},
		{"socks5 ::1", hexb("050100 05010004 00000000000000000000000000000001 0050"), "0500 05020001 00000000 0000"},
		{"socks5 fe80::1", hexb("050100 05010004 fe800000000000000000000000000001 0050"), "0500 05020001 00000000 0000"},
		{"socks5 fd00::1", hexb("050100 05010004 fd000000000000000000000000000001 0050"), "0500 05020001 00000000 0000"},
		{"socks5 localhost", append(append([]byte{}, greet5...), socks5ConnectHost("localhost", 80)...), "0500 05020001 00000000 0000"},
		{"socks5 LocalHost.", append(append([]byte{}, greet5...), socks5ConnectHost("LocalHost.", 80)...), "0500 05020001 00000000 0000"},
		{"socks5 printer.local", append(append([]byte{}, greet5...), socks5ConnectHost("printer.local", 80)...), "0500 05020001 00000000 0000"},
		{"socks5 host 127.0.0.1", append(append([]byte{}, greet5...), socks5ConnectHost("127.0.0.1", 80)...), "0500 05020001 00000000 0000"},
		{"socks4 127.0.0.1", socks4Connect(netip.MustParseAddrPort("127.0.0.1:80"), ""), "005b 0000 00000000"},
		{"socks4a localhost", socks4aConnect("localhost", 80, 1), "005b 0000 00000000"},
		{"socks5 public ok", append(append([]byte{}, greet5...), socks5ConnectHost("example.com", 80)...), "0500 05000001 00000000 0000"},
		{"socks5 virtual ok", append(append([]byte{}, greet5...), socks5ConnectIP(netip.AddrPortFrom(virtual, 80))...), "0500 05000001 00000000 0000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial()
			c.Write(tc.send)
			expectBytes(t, c, hexb(tc.reply))
			expectClosed(t, c)
		})
	}
	if n := len(h.fake.Requests()); n != 2 {
		t.Fatalf("refused requests reached the upstream: %d requests", n)
	}
}

func TestSafeSOCKS(t *testing.T) {
	virtual := netip.MustParseAddr("127.192.0.5")
	ok := func(r *sockstest.Request, c net.Conn, _ *bufio.Reader) { sockstest.WriteReply(c, 0, nil) }
	h := newHarness(t, hopt{
		settings:  func(s *dispatch.Settings) { s.SafeSOCKS = true },
		isVirtual: func(a netip.Addr) bool { return a == virtual },
		fake:      &sockstest.Server{Handle: ok},
	})
	for _, tc := range []struct {
		name  string
		send  []byte
		reply string
	}{
		{"socks4 ip", socks4Connect(netip.MustParseAddrPort("198.51.100.7:80"), ""), "005b 0000 00000000"},
		{"socks5 ipv4", append(append([]byte{}, greet5...), socks5ConnectIP(netip.MustParseAddrPort("198.51.100.7:80"))...), "0500 05020001 00000000 0000"},
		{"socks5 ipv6", hexb("050100 05010004 20010db8000000000000000000000001 0050"), "0500 05020001 00000000 0000"},
		{"socks5 hostname ok", append(append([]byte{}, greet5...), socks5ConnectHost("example.com", 80)...), "0500 05000001 00000000 0000"},
		{"socks4a hostname ok", socks4aConnect("example.com", 80, 1), "005a 0000 00000000"},
		{"socks5 virtual ok", append(append([]byte{}, greet5...), socks5ConnectIP(netip.AddrPortFrom(virtual, 80))...), "0500 05000001 00000000 0000"},
		{"socks4 virtual ok", socks4Connect(netip.AddrPortFrom(virtual, 80), ""), "005a 0000 00000000"},
		{"socks4a literal ok", socks4aConnect("198.51.100.7", 80, 1), "005a 0000 00000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial()
			c.Write(tc.send)
			expectBytes(t, c, hexb(tc.reply))
			expectClosed(t, c)
		})
	}
	if got := h.counter("socksd_connections_total", "protocol", "socks5", "outcome", "rejected"); got != 2 {
		t.Errorf("rejected socks5 = %v", got)
	}
}

func TestUpstreamFailureCodes(t *testing.T) {
	for _, tc := range []struct {
		upstream byte
		extended bool
		s5, s4   string
	}{
		{0x01, true, "05010001 00000000 0000", "005b 0000 00000000"},
		{0x04, true, "05040001 00000000 0000", "005b 0000 00000000"},
		{0x05, true, "05050001 00000000 0000", "005b 0000 00000000"},
		{0xF0, true, "05f00001 00000000 0000", "005b 0000 00000000"},
		{0xF6, true, "05f60001 00000000 0000", "005b 0000 00000000"},
		{0xF0, false, "05040001 00000000 0000", "005b 0000 00000000"},
		{0xF7, false, "05040001 00000000 0000", "005b 0000 00000000"},
		{0xF6, false, "05010001 00000000 0000", "005b 0000 00000000"},
	} {
		code := tc.upstream
		h := newHarness(t, hopt{
			settings: func(s *dispatch.Settings) { s.ExtendedErrors = tc.extended },
			fake:     &sockstest.Server{Fail: func(*sockstest.Request) byte { return code }},
		})
		c := h.dial()
		c.Write(append(append([]byte{}, greet5...), socks5ConnectHost("x.onion", 80)...))
		expectBytes(t, c, append(hexb("0500"), hexb(tc.s5)...))
		expectClosed(t, c)
		c = h.dial()
		c.Write(socks4aConnect("x.onion", 80, 1))
		expectBytes(t, c, hexb(tc.s4))
		expectClosed(t, c)
		if got := h.counter("socksd_replies_total", "protocol", "socks5", "code", "0x"+hexByte(hexb(tc.s5)[1])); got != 1 {
			t.Errorf("%#x: replies_total = %v", code, got)
		}
	}
}

func hexByte(b byte) string {
	const d = "0123456789abcdef"
	return string([]byte{d[b>>4], d[b&15]})
}

func TestUpstreamDownFailsClosed(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	h := newHarness(t, hopt{})
	h.up.Addr = dead
	c := h.dial()
	c.Write(append(append([]byte{}, greet5...), socks5ConnectHost("example.com", 80)...))
	expectBytes(t, c, hexb("0500 05010001 00000000 0000"))
	expectClosed(t, c)
}

func TestMaxConnections(t *testing.T) {
	h := newHarness(t, hopt{settings: func(s *dispatch.Settings) { s.MaxConnections = 2 }})
	a, b := h.dial(), h.dial()
	a.Write([]byte{5}) // both mid-handshake, holding their slots
	b.Write([]byte{5})
	// Wait until the server has accepted both (a real condition, bounded).
	for i := 0; h.srv.ActiveConnections() < 2; i++ {
		if i > 1000 {
			t.Fatal("connections not accepted")
		}
		time.Sleep(time.Millisecond)
	}
	c := h.dial()
	expectClosed(t, c)
	if got := h.counter("socksd_connections_total", "outcome", "over_limit"); got != 1 {
		t.Fatalf("over_limit = %v", got)
	}
	a.Close()
	for i := 0; h.srv.ActiveConnections() > 1; i++ {
		if i > 1000 {
			t.Fatal("slot not released")
		}
		time.Sleep(time.Millisecond)
	}
	d := h.dial()
	d.Write(greet5)
	expectBytes(t, d, hexb("0500"))
}

func TestHandshakeDeadline(t *testing.T) {
	h := newHarness(t, hopt{settings: func(s *dispatch.Settings) { s.HandshakeTimeout = 150 * time.Millisecond }})
	for _, partial := range [][]byte{nil, {5}, hexb("050100 0501"), []byte("GET / HTTP/1.1\r\n")} {
		c := h.dial()
		start := time.Now()
		if len(partial) > 0 {
			c.Write(partial)
		}
		b, _ := io.ReadAll(c)
		if partial != nil && partial[0] == 5 && len(partial) > 3 {
			b = bytes.TrimPrefix(b, hexb("0500"))
		}
		if len(b) != 0 {
			t.Fatalf("%x: got %q before close", partial, b)
		}
		if d := time.Since(start); d < 100*time.Millisecond || d > 3*time.Second {
			t.Fatalf("%x: closed after %v, want ~150ms", partial, d)
		}
	}
	if got := h.counter("socksd_connections_total", "outcome", "handshake_timeout"); got != 4 {
		t.Fatalf("handshake_timeout = %v", got)
	}
}

func TestHalfClose(t *testing.T) {
	// The client sends, half-closes, and still receives everything the
	// destination sends after seeing EOF.
	h := newHarness(t, hopt{})
	echo := testutil.EchoServer(t, "", "|eof")
	c := h.dial()
	c.Write(append(append([]byte{}, greet5...), socks5ConnectIP(echo)...))
	expectBytes(t, c, hexb("0500 05000001 00000000 0000"))
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(payload, "|eof"...)) {
		t.Fatalf("got %d bytes, want %d then |eof", len(got), len(payload))
	}
}

// TestOptimisticData proves that bytes sent with the request reach the
// upstream before the upstream replied and hence before socksd replied to
// the client (socksd replies only after Await).
func TestOptimisticData(t *testing.T) {
	seen := make(chan []byte, 1)
	proceed := make(chan struct{})
	h := newHarness(t, hopt{fake: &sockstest.Server{Handle: func(r *sockstest.Request, c net.Conn, rd *bufio.Reader) {
		b := make([]byte, len("GET / HTTP/1.0\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadFull(rd, b)
		if err != nil {
			b = []byte(err.Error())
		}
		seen <- b
		<-proceed
		sockstest.WriteReply(c, 0, nil)
		c.Write([]byte("HTTP/1.0 200 OK\r\n\r\nhi"))
	}}})
	c := h.dial()
	// greeting + request + payload in ONE write.
	msg := append(append(append([]byte{}, greet5...), socks5ConnectHost("example.com", 80)...), "GET / HTTP/1.0\r\n\r\n"...)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	expectBytes(t, c, hexb("0500")) // method selection: part of the handshake
	got := <-seen
	if string(got) != "GET / HTTP/1.0\r\n\r\n" {
		t.Fatalf("upstream got %q before replying", got)
	}
	// The upstream has not replied yet, so socksd must not have either.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, syscall.EAGAIN) && !isTimeout(err) {
		t.Fatalf("client got a reply before the upstream answered: n=%d err=%v", n, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	close(proceed)
	expectBytes(t, c, hexb("05000001 00000000 0000"))
	rest, _ := io.ReadAll(c)
	if string(rest) != "HTTP/1.0 200 OK\r\n\r\nhi" {
		t.Fatalf("after reply got %q", rest)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestXNetProxyClient(t *testing.T) {
	h := newHarness(t, hopt{})
	echo := testutil.EchoServer(t, "", "|eof")
	for _, auth := range []*proxy.Auth{nil, {User: "bob", Password: "pw"}} {
		d, err := proxy.SOCKS5("tcp", h.addr, auth, proxy.Direct)
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.Dial("tcp", echo.String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		roundTrip(t, c)
		c.Close()
	}
}

// acceptErrListener fails Accept with EMFILE n times, then delegates.
type acceptErrListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *acceptErrListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

func TestAcceptSurvivesEMFILE(t *testing.T) {
	h := newHarness(t, hopt{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	el := &acceptErrListener{Listener: ln}
	el.fails.Store(3)
	if err := h.srv.Configure(h.stOpt, []dispatch.ListenerConfig{
		{Addr: "127.0.0.1:0"}, {Addr: "emfile", Listener: el},
	}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(greet5)
	expectBytes(t, c, hexb("0500"))
	if got := h.counter("socksd_accept_errors_total"); got != 3 {
		t.Fatalf("accept errors = %v", got)
	}
}

func TestReloadKeepsLiveStreams(t *testing.T) {
	h := newHarness(t, hopt{})
	echo := testutil.EchoServer(t, "", "|eof")
	c := h.dial()
	c.Write(append(append([]byte{}, greet5...), socks5ConnectIP(echo)...))
	expectBytes(t, c, hexb("0500 05000001 00000000 0000"))

	// Replace the listener set: the old listener goes, a new one comes,
	// settings change (safe_socks on).
	st := h.stOpt
	st.SafeSOCKS = true
	if err := h.srv.Configure(st, []dispatch.ListenerConfig{{Addr: "127.0.0.1:0/new"}}); err == nil {
		t.Fatal("bad address accepted")
	}
	if err := h.srv.Configure(st, []dispatch.ListenerConfig{{Addr: "127.0.0.2:0"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", h.addr); err == nil {
		t.Fatal("removed listener still accepts")
	}
	roundTrip(t, c) // the stream on the removed listener still works

	n := h.srv.Addrs()["127.0.0.2:0"].String()
	c2, err := net.Dial("tcp", n)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	c2.Write(append(append([]byte{}, greet5...), socks5ConnectIP(echo)...))
	expectBytes(t, c2, hexb("0500 05020001 00000000 0000")) // new settings apply
}

func TestShutdownForcesAfterGrace(t *testing.T) {
	h := newHarness(t, hopt{})
	echo := testutil.EchoServer(t, "", "|eof")
	c := h.dial()
	c.Write(append(append([]byte{}, greet5...), socks5ConnectIP(echo)...))
	expectBytes(t, c, hexb("0500 05000001 00000000 0000"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := h.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown = %v, want forced", err)
	}
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Fatalf("got %q", b)
	}
}

func TestShutdownDrains(t *testing.T) {
	h := newHarness(t, hopt{})
	echo := testutil.EchoServer(t, "", "|eof")
	c := h.dial()
	c.Write(append(append([]byte{}, greet5...), socks5ConnectIP(echo)...))
	expectBytes(t, c, hexb("0500 05000001 00000000 0000"))
	done := make(chan error, 1)
	go func() { done <- h.srv.Shutdown(context.Background()) }()
	// Listener closes at once; the live stream keeps working.
	for i := 0; ; i++ {
		d, err := net.Dial("tcp", h.addr)
		if err != nil {
			break
		}
		d.Close()
		if i > 1000 {
			t.Fatal("listener still open")
		}
		time.Sleep(time.Millisecond)
	}
	roundTrip(t, c)
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func TestHostileHandshakes(t *testing.T) {
	h := newHarness(t, hopt{})
	for _, tc := range []struct {
		name, send, reply string
	}{
		{"socks4 bind", "0402 0050 01020304 00", "005b 0000 00000000"},
		{"socks5 no methods", "0500", "05ff"},
		{"socks5 bind", "050100 05020001 01020304 0050", "0500 05070001 00000000 0000"},
		{"socks5 udp", "050100 05030001 01020304 0050", "0500 05070001 00000000 0000"},
		{"socks5 atyp 0x23", "050100 05010023 01020304 0050", "0500 05080001 00000000 0000"},
		{"version 6", "0601 00", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial()
			c.Write(hexb(tc.send))
			if tc.reply != "" {
				expectBytes(t, c, hexb(tc.reply))
			}
			expectClosed(t, c)
		})
	}
	if n := len(h.fake.Requests()); n != 0 {
		t.Fatalf("%d hostile requests reached the upstream", n)
	}
}

func TestUnixListener(t *testing.T) {
	h := newHarness(t, hopt{})
	echo := testutil.EchoServer(t, "", "|eof")
	path := t.TempDir() + "/socksd.sock"
	// A stale socket file from a crashed predecessor is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	addr := "unix:" + path
	if err := h.srv.Configure(h.stOpt, []dispatch.ListenerConfig{{Addr: "127.0.0.1:0"}, {Addr: addr}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(append(append([]byte{}, greet5...), socks5ConnectIP(echo)...))
	expectBytes(t, c, hexb("0500 05000001 00000000 0000"))
	c.Write([]byte("ping"))
	c.(*net.UnixConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "ping|eof" {
		t.Fatalf("relay over unix listener: %q, %v", got, err)
	}
	// A live socket is not stolen by a second server.
	other, err := dispatch.New(dispatch.Options{Upstream: h.up})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Configure(h.stOpt, []dispatch.ListenerConfig{{Addr: addr}}); err == nil {
		other.Close()
		t.Fatal("second server took over a live unix socket")
	}
}
