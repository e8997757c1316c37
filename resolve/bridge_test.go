package resolve

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"socksd/socks5"
)

func TestSameNameSameAddress(t *testing.T) {
	tor := newFakeTor()
	b := newTestBridge(t, testConfig(newClock()), tor)
	a1 := onlyAddr(t, ask(t, b, "example.test.", dns.TypeA))
	a2 := onlyAddr(t, ask(t, b, "example.test.", dns.TypeA))
	other := onlyAddr(t, ask(t, b, "other.test.", dns.TypeA))
	v6 := onlyAddr(t, ask(t, b, "example.test.", dns.TypeAAAA))
	if a1 != a2 {
		t.Errorf("same name, two addresses: %v %v", a1, a2)
	}
	if other == a1 {
		t.Errorf("two names share %v", a1)
	}
	if !v6.Is6() || !b.IsVirtual(v6) || !b.IsVirtual(a1) {
		t.Errorf("AAAA %v / A %v not virtual", v6, a1)
	}
	want := []string{
		a1.String() + "=example.test",
		other.String() + "=other.test",
		"[" + v6.String() + "]=example.test", // Tor's own spelling of IPv6
	}
	if got := tor.callLog(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("MAPADDRESS calls %q, want %q", got, want)
	}
	for _, a := range []netip.Addr{a1, v6} {
		if name, ok := b.Lookup(a); !ok || name != "example.test" {
			t.Errorf("Lookup(%v) = %q %v", a, name, ok)
		}
	}
	if b.IsVirtual(netip.MustParseAddr("127.0.0.1")) || b.IsVirtual(netip.MustParseAddr("fd00::1")) {
		t.Error("address outside the pools is virtual")
	}
	if !b.IsVirtual(netip.MustParseAddr("::ffff:127.192.0.9")) {
		t.Error("IPv4-mapped virtual address not virtual")
	}
}

func TestPTRForVirtual(t *testing.T) {
	tor := newFakeTor()
	b := newTestBridge(t, testConfig(newClock()), tor)
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		a := onlyAddr(t, ask(t, b, "Onion.Example.Onion.", qt))
		rev, _ := dns.ReverseAddr(a.String())
		m := ask(t, b, rev, dns.TypePTR)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
			t.Fatalf("PTR %s: %v", rev, m)
		}
		if ptr := m.Answer[0].(*dns.PTR); ptr.Ptr != "onion.example.onion." || ptr.Hdr.Name != rev {
			t.Errorf("PTR %s = %q (owner %q)", rev, ptr.Ptr, ptr.Hdr.Name)
		}
	}
	if len(tor.resolves) != 0 {
		t.Errorf("PTR of our own addresses asked Tor: %v", tor.resolves)
	}
}

func TestParseReverse(t *testing.T) {
	rev6, _ := dns.ReverseAddr("fd00:5ec5:d000::1") // "1.0.….f.ip6.arpa."
	for _, tc := range []struct {
		name string
		want string // "" = not an address
	}{
		{"1.0.192.127.in-addr.arpa", "127.192.0.1"},
		{"255.255.255.255.in-addr.arpa", "255.255.255.255"},
		{"01.0.192.127.in-addr.arpa", ""},
		{"256.0.192.127.in-addr.arpa", ""},
		{"0.192.127.in-addr.arpa", ""},
		{"1.1.0.192.127.in-addr.arpa", ""},
		{rev6[:len(rev6)-1], "fd00:5ec5:d000::1"},
		{"0." + rev6[:len(rev6)-1], ""},  // 33 nibbles
		{rev6[2 : len(rev6)-1], ""},      // 31 nibbles
		{"g" + rev6[1:len(rev6)-1], ""},  // not hex
		{"10" + rev6[1:len(rev6)-1], ""}, // two-character label
		{"example.test", ""},
	} {
		got, ok := parseReverse(tc.name)
		if (tc.want == "") != !ok || (ok && got != netip.MustParseAddr(tc.want)) {
			t.Errorf("parseReverse(%q) = %v %v, want %q", tc.name, got, ok, tc.want)
		}
	}
}

func TestSuffixesMode(t *testing.T) {
	tor := newFakeTor()
	tor.answers["example.test"] = "127.0.0.1"
	tor.answers["v6.example.test"] = "[2001:db8::7]"
	tor.answers["-x 198.51.100.7"] = "rev.example.test"
	cfg := testConfig(newClock())
	cfg.Automap = AutomapSuffixes
	b := newTestBridge(t, cfg, tor)

	onion := onlyAddr(t, ask(t, b, "abc.onion.", dns.TypeA))
	if !b.IsVirtual(onion) {
		t.Errorf(".onion got %v, not virtual", onion)
	}
	if a := onlyAddr(t, ask(t, b, "example.test.", dns.TypeA)); a != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("example.test A = %v, want Tor's 127.0.0.1", a)
	}
	if m := ask(t, b, "example.test.", dns.TypeAAAA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("AAAA with only an IPv4 answer: %v, want NODATA", m)
	}
	if a := onlyAddr(t, ask(t, b, "v6.example.test.", dns.TypeAAAA)); a != netip.MustParseAddr("2001:db8::7") {
		t.Errorf("v6 AAAA = %v", a)
	}
	if m := ask(t, b, "nx.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("Tor has no answer: rcode %s, want NXDOMAIN", dns.RcodeToString[m.Rcode])
	}
	m := ask(t, b, "7.100.51.198.in-addr.arpa.", dns.TypePTR)
	if m.Rcode != dns.RcodeSuccess || m.Answer[0].(*dns.PTR).Ptr != "rev.example.test." {
		t.Errorf("PTR 198.51.100.7: %v", m)
	}
	if got := tor.callLog(); len(got) != 1 || got[0] != onion.String()+"=abc.onion" {
		t.Errorf("MAPADDRESS calls %q, want only the onion", got)
	}
	want := []string{"example.test", "example.test", "v6.example.test", "nx.test", "-x 198.51.100.7"}
	if fmt.Sprint(tor.resolves) != fmt.Sprint(want) {
		t.Errorf("Tor resolves %q, want %q", tor.resolves, want)
	}
}

// errTor is a Tor whose every call fails the given way.
type errTor struct{ err error }

func (e errTor) MapAddress(context.Context, string, string) (string, error) { return "", e.err }
func (e errTor) Resolve(context.Context, string, bool) (string, error)      { return "", e.err }

func TestTorFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		mode  Mode
		rcode int
	}{
		{"map fails", errors.New("control connection lost"), AutomapAll, dns.RcodeServerFailure},
		{"resolve: host unreachable", &socks5.ReplyError{Code: socks5.ReplyHostUnreachable}, AutomapOff, dns.RcodeNameError},
		{"resolve: general failure", &socks5.ReplyError{Code: socks5.ReplyGeneralFailure}, AutomapOff, dns.RcodeServerFailure},
		{"resolve: no answer", fmt.Errorf("tor: %w", ErrNoAnswer), AutomapOff, dns.RcodeNameError},
		{"resolve: timeout", context.DeadlineExceeded, AutomapOff, dns.RcodeServerFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(newClock())
			cfg.Automap = tc.mode
			b := newTestBridge(t, cfg, errTor{tc.err})
			if m := ask(t, b, "example.test.", dns.TypeA); m.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
		})
	}
}

func TestOffMode(t *testing.T) {
	tor := newFakeTor()
	tor.answers["abc.onion"] = "10.1.2.3"
	cfg := testConfig(newClock())
	cfg.Automap = AutomapOff
	b := newTestBridge(t, cfg, tor)
	if a := onlyAddr(t, ask(t, b, "abc.onion.", dns.TypeA)); a != netip.MustParseAddr("10.1.2.3") {
		t.Errorf("answer %v", a)
	}
	if len(tor.callLog()) != 0 {
		t.Errorf("off mode mapped: %v", tor.callLog())
	}
	if b.IsVirtual(netip.MustParseAddr("127.192.0.1")) {
		t.Error("off mode has virtual addresses")
	}
}

func TestMapFailureThenSuccess(t *testing.T) {
	tor := newFakeTor()
	tor.mapErr = errors.New("551 no")
	b := newTestBridge(t, testConfig(newClock()), tor)
	if m := ask(t, b, "example.test.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	tor.mu.Lock()
	tor.mapErr = nil
	tor.mu.Unlock()
	a := onlyAddr(t, ask(t, b, "example.test.", dns.TypeA))
	if tor.mapped(a.String()) != "example.test" {
		t.Fatalf("Tor does not map %v", a)
	}
}

// Concurrent first queries for one name share one address and one MAPADDRESS.
func TestConcurrentNewName(t *testing.T) {
	tor := newFakeTor()
	tor.gate = make(chan struct{})
	b := newTestBridge(t, testConfig(newClock()), tor)
	const n = 20
	addrs := make(chan netip.Addr, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := new(dns.Msg)
			q.SetQuestion("example.test.", dns.TypeA)
			w := &recorder{remote: loopback}
			b.ServeDNS(w, q)
			if len(w.msgs) == 1 && len(w.msgs[0].Answer) == 1 {
				a, _ := netip.AddrFromSlice(w.msgs[0].Answer[0].(*dns.A).A.To4())
				addrs <- a
			} else {
				addrs <- netip.Addr{}
			}
		}()
	}
	tor.gate <- struct{}{} // exactly one MapAddress may pass
	tor.mu.Lock()
	tor.gate = nil
	tor.mu.Unlock()
	wg.Wait()
	close(addrs)
	var first netip.Addr
	for a := range addrs {
		if !first.IsValid() {
			first = a
		}
		if !a.IsValid() || a != first {
			t.Fatalf("answers differ or failed: %v vs %v", a, first)
		}
	}
	if got := tor.callLog(); len(got) != 1 {
		t.Fatalf("MAPADDRESS calls %q, want 1", got)
	}
}

func TestInflightLimit(t *testing.T) {
	tor := newFakeTor()
	tor.gate = make(chan struct{})
	cfg := testConfig(newClock())
	cfg.MaxInflight = 1
	b := newTestBridge(t, cfg, tor)
	done := make(chan *dns.Msg)
	go func() {
		q := new(dns.Msg)
		q.SetQuestion("one.test.", dns.TypeA)
		w := &recorder{remote: loopback}
		b.ServeDNS(w, q)
		done <- w.msgs[0]
	}()
	// Wait until the first query holds the only slot.
	deadline := time.Now().Add(5 * time.Second)
	for len(b.inflight) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("first query never reached Tor")
		}
		time.Sleep(time.Millisecond) // polling a real condition, bounded
	}
	if m := ask(t, b, "two.test.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("second query with the slot taken: rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	tor.gate <- struct{}{}
	if m := <-done; m.Rcode != dns.RcodeSuccess {
		t.Errorf("first query: rcode %s", dns.RcodeToString[m.Rcode])
	}
}

func TestConfigErrors(t *testing.T) {
	good := func() Config { return testConfig(newClock()) }
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"v4 pool is IPv6", func(c *Config) { c.VirtualIPv4 = netip.MustParsePrefix("fd00::/64") }},
		{"v4 pool /31", func(c *Config) { c.VirtualIPv4 = netip.MustParsePrefix("127.192.0.0/31") }},
		{"v6 pool is IPv4", func(c *Config) { c.VirtualIPv6 = netip.MustParsePrefix("10.0.0.0/8") }},
		{"no pool", func(c *Config) { c.VirtualIPv4, c.VirtualIPv6 = netip.Prefix{}, netip.Prefix{} }},
		{"suffixes without suffix", func(c *Config) { c.Automap, c.AutomapSuffixes = AutomapSuffixes, nil }},
		{"bad suffix", func(c *Config) { c.AutomapSuffixes = []string{".on ion"} }},
		{"idle shorter than ttl", func(c *Config) { c.MappingIdle = time.Second }},
		{"negative ttl", func(c *Config) { c.TTL = -1 }},
		{"bad mode", func(c *Config) { c.Automap = 9 }},
	} {
		c := good()
		tc.mod(&c)
		if _, err := New(c, newFakeTor(), nil, nil); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err %v, want ErrConfig", tc.name, err)
		}
	}
	if _, err := ParseMode("sometimes"); !errors.Is(err, ErrConfig) {
		t.Errorf("ParseMode: %v", err)
	}
	for s, want := range map[string]Mode{"all": AutomapAll, "suffixes": AutomapSuffixes, "off": AutomapOff} {
		if m, err := ParseMode(s); err != nil || m != want || m.String() != s {
			t.Errorf("ParseMode(%q) = %v %v", s, m, err)
		}
	}
}

func TestMetrics(t *testing.T) {
	clk := newClock()
	reg := prometheus.NewRegistry()
	cfg := tinyPool(clk)
	b, err := New(cfg, newFakeTor(), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ask(t, b, "a.test.", dns.TypeA)
	ask(t, b, "a.test.", dns.TypeA)
	ask(t, b, "a.test.", dns.TypeMX)
	for i := 0; i < 7; i++ {
		ask(t, b, fmt.Sprintf("f%d.test.", i), dns.TypeA)
		clk.Advance(time.Minute)
	}
	if err := b.RepushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
				if strings.Contains(l.GetValue(), "test") {
					t.Errorf("metric %s carries a name in label %s", mf.GetName(), l.GetName())
				}
			}
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[key] = m.Gauge.GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		"socksd_dns_queries_total,qtype=A,result=noerror":    9,
		"socksd_dns_queries_total,qtype=other,result=notimp": 1,
		"socksd_dns_answers_total,source=new":                8,
		"socksd_dns_answers_total,source=cache":              1,
		"socksd_dns_mappings,family=ipv4":                    7,
		"socksd_dns_pool_capacity,family=ipv4":               7,
		"socksd_dns_reclaims_total,family=ipv4":              1,
		"socksd_dns_tor_repushes_total":                      1,
		"socksd_dns_tor_calls_total,call=map,result=ok":      15, // 8 new + 7 re-pushed
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}
