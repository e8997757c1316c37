package tornet

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The exits' safety net: Linux refuses connect() from a loopback source to
// a non-loopback destination with EINVAL before sending anything. Tor binds
// OutboundBindAddressExit (127.0.0.N) exactly for non-loopback destinations,
// so this is what keeps exits from ever reaching the outside.
func TestLoopbackSourceCannotReachNonLoopback(t *testing.T) {
	for _, src := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.4"} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp4", RevAddr+":80")
		if err == nil {
			c.Close()
			t.Fatalf("connect from %s to %s succeeded", src, RevAddr)
		}
		if !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("connect from %s to %s: got %v, want EINVAL", src, RevAddr, err)
		}
	}
}

func TestDNSZone(t *testing.T) {
	s, err := startDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	srvAddr := s.udp.PacketConn.LocalAddr().String()
	tests := []struct {
		name  string
		qtype uint16
		rcode int
		want  string // answer data, "" = none
	}{
		{"example.test.", dns.TypeA, dns.RcodeSuccess, "127.0.0.1"},
		{"a.b.Example.TEST.", dns.TypeA, dns.RcodeSuccess, "127.0.0.1"},
		{"HoSt.eXaMpLe.TeSt.", dns.TypeA, dns.RcodeSuccess, "127.0.0.1"},
		{"rev.example.test.", dns.TypeA, dns.RcodeSuccess, RevAddr},
		{"host.example.test.", dns.TypeAAAA, dns.RcodeSuccess, ""},
		{"1.0.0.127.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, "host.example.test."},
		{"7.100.51.198.IN-ADDR.arpa.", dns.TypePTR, dns.RcodeSuccess, "rev.example.test."},
		{"nx.invalid.", dns.TypeA, dns.RcodeNameError, ""},
		{"www.torproject.org.", dns.TypeA, dns.RcodeRefused, ""},
		{"2.0.0.127.in-addr.arpa.", dns.TypePTR, dns.RcodeRefused, ""},
		{"example.test.evil.", dns.TypeA, dns.RcodeRefused, ""},
	}
	c := new(dns.Client)
	for _, tc := range tests {
		m := new(dns.Msg)
		m.SetQuestion(tc.name, tc.qtype)
		r, _, err := c.Exchange(m, srvAddr)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Rcode != tc.rcode {
			t.Errorf("%s %s: rcode %s, want %s", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
		}
		var got string
		if len(r.Answer) == 1 {
			switch rr := r.Answer[0].(type) {
			case *dns.A:
				got = rr.A.String()
			case *dns.PTR:
				got = rr.Ptr
			}
			if r.Answer[0].Header().Name != tc.name {
				t.Errorf("%s: answer owner %q does not echo the question's case", tc.name, r.Answer[0].Header().Name)
			}
		} else if len(r.Answer) > 1 {
			t.Errorf("%s: %d answers", tc.name, len(r.Answer))
		}
		if got != tc.want {
			t.Errorf("%s %s: answer %q, want %q", tc.name, dns.TypeToString[tc.qtype], got, tc.want)
		}
	}
	if log := s.log(); len(log) != len(tests) || log[2].Name != "HoSt.eXaMpLe.TeSt" || log[7].Rcode != "NXDOMAIN" {
		t.Errorf("query log %+v", log)
	}
}

func TestConsensusMissing(t *testing.T) {
	body := []byte(`network-status-version 3 microdesc
r exit0 CzFhzBT9Cm+0Y2qBAmyL1CB8WZM 2038-01-01 00:00:00 127.0.0.1 20006 0
m +VdX/n/g3RdHRCuUobsia1IFjXrVY2Rd4Ofpvt/cUb8
s Exit Fast Guard HSDir Running Stable V2Dir Valid
r exit1 W80yR2j7nC7SgtFocjQcyIZOYiA 2038-01-01 00:00:00 127.0.0.1 20008 0
s Fast Guard HSDir Running V2Dir Valid
r auth0 dYBn2eoAkCwRkpptEt51v8rM2FA 2038-01-01 00:00:00 127.0.0.1 20000 20003
s Authority Fast Guard HSDir Running Stable V2Dir Valid
r auth1 mvaAbLuqWzIwC5yBD/yL3LOpc/E 2038-01-01 00:00:00 127.0.0.1 20001 20004
s Authority Fast Valid
`)
	want := map[string]bool{"exit0": true, "exit1": true, "auth0": false, "auth1": false, "auth2": false}
	got := consensusMissing(body, want)
	m := map[string]bool{}
	for _, g := range got {
		m[g] = true
	}
	// exit1 lacks Exit, auth1 lacks Running, auth2 is absent.
	if len(got) != 3 || !m["exit1"] || !m["auth1"] || !m["auth2"] {
		t.Fatalf("missing = %v, want [exit1 auth1 auth2]", got)
	}
}

func TestProcNetAddr(t *testing.T) {
	if got := procNetAddr(netip.MustParseAddrPort("127.0.0.1:8080")); got != "0100007F:1F90" {
		t.Fatalf("got %s", got)
	}
	if got := procNetAddr(netip.MustParseAddrPort("10.1.2.3:1")); got != "0302010A:0001" {
		t.Fatalf("got %s", got)
	}
}

// The /via lookup must find the process owning the client end of a
// loopback TCP connection: here, this test process.
func TestSocketOwner(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inode, err := socketInode(netip.MustParseAddrPort(c.LocalAddr().String()), netip.MustParseAddrPort(c.RemoteAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	if !ownsSocket(os.Getpid(), inode) {
		t.Fatalf("this process does not own socket inode %s", inode)
	}
	if ownsSocket(1, inode) && os.Getpid() != 1 {
		t.Fatalf("pid 1 owns our socket %s", inode)
	}
}

func TestPortLeases(t *testing.T) {
	a, err := leasePorts()
	if err != nil {
		t.Fatal(err)
	}
	b, err := leasePorts()
	if err != nil {
		a.release()
		t.Fatal(err)
	}
	if a.base == b.base {
		t.Fatalf("two leases got block %d", a.base)
	}
	if a.port(offDNS) >= b.base && a.port(offDNS) < b.base+portBlock {
		t.Fatalf("blocks overlap: %d %d", a.base, b.base)
	}
	base := a.base
	a.release()
	b.release()
	c, err := leasePorts()
	if err != nil {
		t.Fatal(err)
	}
	defer c.release()
	if c.base > base {
		t.Fatalf("released block %d not reused (got %d)", base, c.base)
	}
}

func TestHTTPServer(t *testing.T) {
	s, err := startHTTP("127.0.0.1:0", func(remote, local string) string { return "x" })
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	addr := s.addr
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path, want string
		code       int
	}{
		{"/", HelloBody, 200},
		{"/whoami", "127.0.0.1", 200},
		{"/via", "x", 200},
		{"/bytes?n=300", string(Pattern(300)), 200},
		{"/bytes?n=-1", "n must be 0..16777216\n", 400},
		{"/nothing", "404 page not found\n", 404},
	} {
		code, body := get(tc.path)
		if code != tc.code || body != tc.want {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.want)
		}
	}
	if _, body := get("/page.html"); !strings.Contains(body, `<h1 id="hello">hello from tornet</h1>`) {
		t.Errorf("page.html = %q", body)
	}
	if hits := s.log(); len(hits) != 7 || hits[2].Via != "x" || hits[0].Path != "/" {
		t.Errorf("hits %+v", hits)
	}
}

func TestDialSOCKS5Errors(t *testing.T) {
	// A scripted SOCKS5 server answering host-unreachable with Tor's
	// ATYP 0 failure form (socks-extensions.txt) must give SOCKSError{4}.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- nil
			return
		}
		defer c.Close()
		buf := make([]byte, 3+4+1+len("nx.invalid")+2)
		io.ReadFull(c, buf[:3])
		c.Write([]byte{5, 0})
		io.ReadFull(c, buf[3:])
		c.Write([]byte{5, 4, 0, 0, 0, 0, 0, 0, 0, 0})
		done <- buf
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = DialSOCKS5(ctx, ln.Addr().String(), "nx.invalid", 80, "", "")
	var se *SOCKSError
	if !errors.As(err, &se) || se.Code != 4 {
		t.Fatalf("err = %v, want SOCKSError 0x04", err)
	}
	want := "\x05\x01\x00\x05\x01\x00\x03\x0anx.invalid\x00\x50"
	if got := string(<-done); got != want {
		t.Fatalf("request % x, want % x", got, want)
	}
}
