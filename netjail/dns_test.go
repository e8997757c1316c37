package netjail

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"strconv"
)

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	return m
}

// TestResolverAnswers: A and AAAA get virtual addresses that map back to
// the name (case folded), the same name the same address, other types and
// classes a refusal with an extended error, bad messages their RFC rcode.
func TestResolverAnswers(t *testing.T) {
	r := resolver{t: newTable()}
	a := r.answer(query("Example.COM.", dns.TypeA))
	if a.Rcode != dns.RcodeSuccess || len(a.Answer) != 1 {
		t.Fatalf("A: %v", a)
	}
	v4, _ := netip.AddrFromSlice(a.Answer[0].(*dns.A).A.To4())
	if !virtualIPv4.Contains(v4) {
		t.Fatalf("A answer %v not in %v", v4, virtualIPv4)
	}
	if n, ok := r.t.lookup(v4); !ok || n != "example.com" {
		t.Fatalf("lookup(%v) = %q %v", v4, n, ok)
	}
	aaaa := r.answer(query("example.com.", dns.TypeAAAA))
	v6, _ := netip.AddrFromSlice(aaaa.Answer[0].(*dns.AAAA).AAAA)
	if !virtualIPv6.Contains(v6) {
		t.Fatalf("AAAA answer %v not in %v", v6, virtualIPv6)
	}
	again := r.answer(query("EXAMPLE.com.", dns.TypeA))
	if got := again.Answer[0].(*dns.A).A.String(); got != v4.String() {
		t.Fatalf("second A = %s, want %s", got, v4)
	}
	other := r.answer(query("other.test.", dns.TypeA))
	if other.Answer[0].(*dns.A).A.String() == v4.String() {
		t.Fatalf("two names got one address")
	}
	ptr := r.answer(query(mustReverse(v4), dns.TypePTR))
	if len(ptr.Answer) != 1 || ptr.Answer[0].(*dns.PTR).Ptr != "example.com." {
		t.Fatalf("PTR of a virtual address: %v", ptr)
	}

	for _, tc := range []struct {
		name  string
		msg   *dns.Msg
		rcode int
	}{
		{"mx", query("example.com.", dns.TypeMX), dns.RcodeRefused},
		{"txt", query("example.com.", dns.TypeTXT), dns.RcodeRefused},
		{"https", query("example.com.", dns.TypeHTTPS), dns.RcodeRefused},
		{"ptr-public", query("8.8.8.8.in-addr.arpa.", dns.TypePTR), dns.RcodeRefused},
		{"localhost", query("localhost.", dns.TypeA), dns.RcodeNameError},
		{"mdns", query("printer.local.", dns.TypeA), dns.RcodeNameError},
		{"bad-name", query("a b.example.", dns.TypeA), dns.RcodeNameError},
		{"chaos", func() *dns.Msg {
			m := query("version.bind.", dns.TypeTXT)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}(), dns.RcodeRefused},
		{"two-questions", func() *dns.Msg {
			m := query("a.test.", dns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}(), dns.RcodeFormatError},
		{"edns-version-1", func() *dns.Msg {
			m := query("a.test.", dns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
			return m
		}(), dns.RcodeBadVers},
		{"notify", func() *dns.Msg { m := query("a.test.", dns.TypeSOA); m.Opcode = dns.OpcodeNotify; return m }(), dns.RcodeNotImplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := r.answer(tc.msg)
			if m.Rcode != tc.rcode || len(m.Answer) != 0 {
				t.Fatalf("rcode %s with %d answers, want %s", dns.RcodeToString[m.Rcode], len(m.Answer), dns.RcodeToString[tc.rcode])
			}
			if tc.rcode == dns.RcodeRefused {
				ede, _ := m.IsEdns0().Option[0].(*dns.EDNS0_EDE)
				if ede == nil || !strings.Contains(ede.ExtraText, "only A and AAAA") {
					t.Fatalf("refusal without its extended error: %v", m)
				}
			}
		})
	}
	resp := query("a.test.", dns.TypeA)
	resp.Response = true
	if r.answer(resp) != nil {
		t.Fatalf("answered a response")
	}
}

func mustReverse(a netip.Addr) string {
	s, err := dns.ReverseAddr(a.String())
	if err != nil {
		panic(err)
	}
	return s
}

// TestTableFull: past maxNames new names fail (SERVFAIL), known names
// keep their addresses.
func TestTableFull(t *testing.T) {
	tb := newTable()
	first, err := tb.addr("n0.test", false)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < maxNames; i++ {
		if _, err := tb.addr("n"+strconv.Itoa(i)+".test", false); err != nil {
			t.Fatalf("name %d: %v", i, err)
		}
	}
	if _, err := tb.addr("one-too-many.test", false); err != errTableFull {
		t.Fatalf("name %d: %v, want errTableFull", maxNames, err)
	}
	if again, err := tb.addr("n0.test", false); err != nil || again != first {
		t.Fatalf("known name after full: %v %v", again, err)
	}
	m := resolver{t: tb}.answer(query("another.test.", dns.TypeA))
	if m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("full table answered %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
}

// FuzzResolver: any bytes that parse as a DNS message get an answer that
// packs, or none; never a panic.
func FuzzResolver(f *testing.F) {
	for _, m := range []*dns.Msg{query("example.com.", dns.TypeA), query("x.onion.", dns.TypeAAAA),
		query("1.0.64.100.in-addr.arpa.", dns.TypePTR), query("example.com.", dns.TypeMX)} {
		b, _ := m.Pack()
		f.Add(b)
	}
	r := resolver{t: newTable()}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m dns.Msg
		if m.Unpack(b) != nil {
			return
		}
		if resp := r.answer(&m); resp != nil {
			if _, err := resp.Pack(); err != nil {
				t.Fatalf("answer does not pack: %v\n%v", err, resp)
			}
		}
	})
}
