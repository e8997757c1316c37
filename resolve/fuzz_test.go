package resolve

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"socksd/internal/testutil"
)

// FuzzServeDNS: random wire messages through the server path never panic,
// get at most one answer, and every answer is a valid response to the query
// (same ID, QR set, packs); the table stays consistent.
func FuzzServeDNS(f *testing.F) {
	for _, tc := range wireCases {
		f.Add(testutil.Unhex(f, tc.hex), false)
	}
	f.Add(testutil.Unhex(f, hdrQuery+"0131 0130 03313932 03313237 07696e2d61646472 0461727061 00 000c 0001"), true)
	f.Add([]byte{}, false)
	f.Add(testutil.Unhex(f, "abcd 0100 0001"), false)

	clk := newClock()
	tor := newFakeTor()
	tor.answers["example.test"] = "127.0.0.1"
	tor.answers["-x 198.51.100.7"] = "rev.example.test"
	cfg := tinyPool(clk)
	cfg.Automap = AutomapSuffixes
	cfg.AutomapSuffixes = []string{".test"}
	b, err := New(cfg, tor, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	stranger := &net.UDPAddr{IP: net.ParseIP("192.0.2.9"), Port: 53}

	f.Fuzz(func(t *testing.T, wire []byte, fromStranger bool) {
		clk.Advance(30 * time.Second) // let the tiny pool reclaim now and then
		from := net.Addr(loopback)
		if fromStranger {
			from = stranger
		}
		m, err := serveWire(b, from, wire)
		if err == errUnpack {
			return // miekg answers FORMERR itself
		}
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			return
		}
		if !m.Response || m.Id != uint16(wire[0])<<8|uint16(wire[1]) {
			t.Fatalf("answer id %#x response %v", m.Id, m.Response)
		}
		if _, err := m.Pack(); err != nil {
			t.Fatalf("answer does not pack: %v", err)
		}
		if fromStranger && (m.Rcode != dns.RcodeRefused || len(m.Question) != 0 || len(m.Answer) != 0) {
			t.Fatalf("stranger got %v", m)
		}
		if len(m.Answer) > 1 {
			t.Fatalf("%d answers", len(m.Answer))
		}
		for _, rr := range m.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				a, _ := netip.AddrFromSlice(rr.A.To4())
				if !b.IsVirtual(a) && a != netip.MustParseAddr("127.0.0.1") {
					t.Fatalf("A %v neither virtual nor Tor's", a)
				}
			case *dns.AAAA:
				a, _ := netip.AddrFromSlice(rr.AAAA)
				if !b.IsVirtual(a) {
					t.Fatalf("AAAA %v not virtual", a)
				}
			}
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, fam := range b.families() {
			if len(fam.byAddr) != len(fam.byName) || len(fam.byAddr) != fam.lru.Len() || len(fam.byAddr) > fam.pool.capacity {
				t.Fatalf("table inconsistent: %d addrs %d names %d lru, capacity %d", len(fam.byAddr), len(fam.byName), fam.lru.Len(), fam.pool.capacity)
			}
			for a, mp := range fam.byAddr {
				if fam.byName[mp.name] != mp || mp.addr != a {
					t.Fatalf("%v ↔ %s broken", a, mp.name)
				}
			}
		}
	})
}

// FuzzNormalizeName: an accepted name is a fixed point, fits the wire
// limit, and holds nothing that could break a control-port command.
func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"example.test.", "ExAmPle.TeSt", "a..b", ".", "", "a b.test", "a=b", `a\.b`, strings.Repeat("a.", 127), "xn--bcher-kva.example", "_srv.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := normalizeName(s)
		if err != nil {
			return
		}
		if n2, err := normalizeName(n); err != nil || n2 != n {
			t.Fatalf("not a fixed point: %q → %q → %q %v", s, n, n2, err)
		}
		if len(n) > maxNameLen || strings.ContainsAny(n, " =\"\\\r\n\t") || strings.ToLower(n) != n {
			t.Fatalf("accepted %q", n)
		}
		if _, ok := dns.IsDomainName(n); !ok {
			t.Fatalf("%q is not a domain name", n)
		}
	})
}

// FuzzParseReverse: whatever parses round-trips through dns.ReverseAddr.
func FuzzParseReverse(f *testing.F) {
	for _, s := range []string{"1.0.192.127.in-addr.arpa", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.5.c.e.5.0.0.d.f.ip6.arpa", "0.192.127.in-addr.arpa", "01.0.0.1.in-addr.arpa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := parseReverse(s)
		if !ok || a.Is4In6() { // ReverseAddr spells those in in-addr.arpa
			return
		}
		rev, err := dns.ReverseAddr(a.String())
		if err != nil || rev != s+"." {
			t.Fatalf("%q → %v → %q %v", s, a, rev, err)
		}
	})
}
