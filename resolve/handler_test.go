package resolve

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"socksd/internal/testutil"
)

const (
	hdrQuery = "abcd 0100 0001 0000 0000 0000" // ID abcd, RD, one question
	qExample = "07 6578616d706c65 04 74657374 00"
	silent   = -1 // rcode column: nothing is sent back
)

// wireCases: a query in hex, the rcode it must get, and an optional check.
var wireCases = []struct {
	name  string
	hex   string
	rcode int
	check func(t *testing.T, m *dns.Msg)
}{
	{"A", hdrQuery + qExample + "0001 0001", dns.RcodeSuccess, inNet("127.192.0.0/10")},
	{"AAAA", hdrQuery + qExample + "001c 0001", dns.RcodeSuccess, inNet("fd00:5ec5:d000::/48")},
	{"ANY is A", hdrQuery + qExample + "00ff 0001", dns.RcodeSuccess, inNet("127.192.0.0/10")},
	{"MX", hdrQuery + qExample + "000f 0001", dns.RcodeNotImplemented, nil},
	{"TXT", hdrQuery + qExample + "0010 0001", dns.RcodeNotImplemented, nil},
	{"HTTPS", hdrQuery + qExample + "0041 0001", dns.RcodeNotImplemented, nil},
	{"NS", hdrQuery + qExample + "0002 0001", dns.RcodeNotImplemented, nil},
	{"zero questions", "abcd 0100 0000 0000 0000 0000", dns.RcodeFormatError, noQuestion},
	{"two questions", "abcd 0100 0002 0000 0000 0000" + qExample + "0001 0001" + qExample + "001c 0001", dns.RcodeFormatError, noQuestion},
	{"opcode STATUS", "abcd 1100 0001 0000 0000 0000" + qExample + "0001 0001", dns.RcodeNotImplemented, nil},
	{"opcode UPDATE", "abcd 2800 0001 0000 0000 0000" + qExample + "0006 0001", dns.RcodeNotImplemented, nil},
	{"class CH", hdrQuery + qExample + "0001 0003", dns.RcodeRefused, nil},
	{"class ANY", hdrQuery + qExample + "0001 00ff", dns.RcodeRefused, nil},
	{"a response", "abcd 8100 0001 0000 0000 0000" + qExample + "0001 0001", silent, nil},
	{"space in label", hdrQuery + "03 612062 04 74657374 00 0001 0001", dns.RcodeFormatError, nil},
	{"dot in label", hdrQuery + "03 612e62 04 74657374 00 0001 0001", dns.RcodeFormatError, nil},
	{"NUL in label", hdrQuery + "03 610062 04 74657374 00 0001 0001", dns.RcodeFormatError, nil},
	{"equals sign (would split MAPADDRESS)", hdrQuery + "03 613d62 04 74657374 00 0001 0001", dns.RcodeFormatError, nil},
	{"root", hdrQuery + "00 0001 0001", dns.RcodeFormatError, nil},
	{"localhost (RFC 6761)", hdrQuery + "09 6c6f63616c686f7374 00 0001 0001", dns.RcodeNameError, nil},
	{"x.invalid (RFC 6761)", hdrQuery + "01 78 07 696e76616c6964 00 0001 0001", dns.RcodeNameError, nil},
	{"x.local (mDNS)", hdrQuery + "01 78 05 6c6f63616c 00 001c 0001", dns.RcodeNameError, nil},
	{"EDNS0", "abcd 0100 0001 0000 0000 0001" + qExample + "0001 0001" + "00 0029 1000 00 00 0000 0000", dns.RcodeSuccess, hasOPT},
	{"EDNS version 1", "abcd 0100 0001 0000 0000 0001" + qExample + "0001 0001" + "00 0029 1000 00 01 0000 0000", dns.RcodeBadVers, hasOPT},
	{"PTR unmapped virtual", hdrQuery + "0131 0130 03313932 03313237 07696e2d61646472 0461727061 00 000c 0001", dns.RcodeNameError, nil},
	{"PTR private address (never asked of Tor)", hdrQuery + "0131 0131 03313638 03313932 07696e2d61646472 0461727061 00 000c 0001", dns.RcodeNameError, nil},
	{"PTR partial reverse name", hdrQuery + "03313638 03313932 07696e2d61646472 0461727061 00 000c 0001", dns.RcodeNameError, nil},
}

func inNet(cidr string) func(t *testing.T, m *dns.Msg) {
	p := netip.MustParsePrefix(cidr)
	return func(t *testing.T, m *dns.Msg) {
		if a := onlyAddr(t, m); !p.Contains(a) {
			t.Errorf("answer %v not in %v", a, p)
		}
		if m.Answer[0].Header().Ttl != 60 {
			t.Errorf("TTL %d, want 60", m.Answer[0].Header().Ttl)
		}
	}
}

func noQuestion(t *testing.T, m *dns.Msg) {
	if len(m.Question) != 0 {
		t.Errorf("FORMERR echoes %d questions", len(m.Question))
	}
}

func hasOPT(t *testing.T, m *dns.Msg) {
	if m.IsEdns0() == nil {
		t.Error("no OPT in the answer to an EDNS query")
	}
}

func TestWireQueries(t *testing.T) {
	for _, tc := range wireCases {
		t.Run(tc.name, func(t *testing.T) {
			tor := newFakeTor()
			b := newTestBridge(t, testConfig(newClock()), tor)
			m, err := serveWire(b, loopback, testutil.Unhex(t, tc.hex))
			if err != nil {
				t.Fatal(err)
			}
			if tc.rcode == silent {
				if m != nil {
					t.Fatalf("answered %v, want silence", m)
				}
				return
			}
			if m == nil {
				t.Fatal("no answer")
			}
			if m.Id != 0xabcd || !m.Response {
				t.Errorf("id %#x response %v", m.Id, m.Response)
			}
			if m.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			if tc.rcode != dns.RcodeSuccess && len(m.Answer) != 0 {
				t.Errorf("error answer carries %d records", len(m.Answer))
			}
			if tc.check != nil {
				tc.check(t, m)
			}
			// Only successful automapped answers may talk to Tor, and only to map.
			for _, c := range tor.callLog() {
				if tc.rcode != dns.RcodeSuccess || !strings.HasSuffix(c, "=example.test") {
					t.Errorf("unexpected MAPADDRESS %q", c)
				}
			}
			if len(tor.resolves) != 0 {
				t.Errorf("unexpected Tor resolves %v", tor.resolves)
			}
		})
	}
}

func TestNameTooLong(t *testing.T) {
	b := newTestBridge(t, testConfig(newClock()), newFakeTor())
	long := strings.Repeat("a23456789.", 25) + "abcd." // 254 chars + root: 256 on the wire
	q := new(dns.Msg)
	q.Id = 7
	q.Question = []dns.Question{{Name: long, Qtype: dns.TypeA, Qclass: dns.ClassINET}}
	if m := askMsg(t, b, loopback, q); m.Rcode != dns.RcodeFormatError {
		t.Fatalf("rcode %s, want FORMERR", dns.RcodeToString[m.Rcode])
	}
	// 63 is the longest label.
	if m := ask(t, b, strings.Repeat("a", 64)+".test.", dns.TypeA); m.Rcode != dns.RcodeFormatError {
		t.Fatalf("64-byte label: rcode %s, want FORMERR", dns.RcodeToString[m.Rcode])
	}
	if m := ask(t, b, strings.Repeat("a", 63)+".test.", dns.TypeA); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("63-byte label: rcode %s, want NOERROR", dns.RcodeToString[m.Rcode])
	}
}

func TestRefusedOutsideAllow(t *testing.T) {
	tor := newFakeTor()
	b := newTestBridge(t, testConfig(newClock()), tor)
	for _, from := range []net.Addr{
		&net.UDPAddr{IP: net.ParseIP("192.0.2.1"), Port: 5353},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5353},
		nil, // unknown source: refused too
	} {
		q := new(dns.Msg)
		q.SetQuestion("example.test.", dns.TypeA)
		w := &recorder{remote: from}
		b.ServeDNS(w, q)
		if len(w.msgs) != 1 || w.msgs[0].Rcode != dns.RcodeRefused || len(w.msgs[0].Question) != 0 {
			t.Fatalf("from %v: %v, want a bare REFUSED", from, w.msgs)
		}
	}
	// IPv4-mapped loopback is loopback.
	mapped := &net.UDPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 1}
	q := new(dns.Msg)
	q.SetQuestion("example.test.", dns.TypeA)
	if m := askMsg(t, b, mapped, q); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("from %v: rcode %s", mapped, dns.RcodeToString[m.Rcode])
	}
	if got := len(tor.callLog()); got != 1 {
		t.Fatalf("%d MAPADDRESS calls, want only the allowed client's 1", got)
	}
}

func TestRefusedHeader(t *testing.T) {
	got := refusedHeader(testutil.Unhex(t, "abcd 2901 0001 0000 0000 0000 00"))
	// 0x29: opcode 5 (UPDATE) + RD, kept; byte 3 becomes RA + REFUSED.
	want := testutil.Unhex(t, "abcd a985 0000 0000 0000 0000")
	if string(got) != string(want) {
		t.Fatalf("got % x, want % x", got, want)
	}
	if refusedHeader(testutil.Unhex(t, "abcd 8100 0001 0000 0000 0000")) != nil {
		t.Fatal("answered a response")
	}
	if refusedHeader(testutil.Unhex(t, "abcd 0100 0001 0000 0000")) != nil {
		t.Fatal("answered a short header")
	}
}

func TestCaseIsPreserved(t *testing.T) {
	tor := newFakeTor()
	b := newTestBridge(t, testConfig(newClock()), tor)
	m := ask(t, b, "ExAmPle.TEST.", dns.TypeA)
	if m.Answer[0].Header().Name != "ExAmPle.TEST." {
		t.Errorf("owner %q, want the question's spelling (DNS 0x20)", m.Answer[0].Header().Name)
	}
	a := onlyAddr(t, m)
	if again := onlyAddr(t, ask(t, b, "example.test.", dns.TypeA)); again != a {
		t.Errorf("case changed the address: %v vs %v", again, a)
	}
	if got := tor.mapped(a.String()); got != "example.test" {
		t.Errorf("Tor maps %v to %q, want lower-case example.test", a, got)
	}
}
