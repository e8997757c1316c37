package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"socksd/internal/testutil"
)

// TestDNSPoolExhaustion: a /29 pool (7 usable addresses: .0 is never handed
// out) and a 4 s TTL (filling the pool took 3.7 s once on a loaded
// machine: with a shorter TTL the first mapping can expire before the
// full-pool check, and the test's model of the table no longer holds). LRU reclaim, a mapping pinned by a live stream is
// never reclaimed, and no address is ever served for two live names.
func TestDNSPoolExhaustion(t *testing.T) {
	o := needOwnTor(t)
	n := needTornet(t)
	const ttl = 4 * time.Second
	ex := bridgeExtra(5)
	ex["v4"] = "127.197.7.0/29"
	ex["ttl"] = "4s"
	d := startDNSDaemon(t, BridgeConfig, "", ex)
	pool := netip.MustParsePrefix(ex["v4"])

	// owner is the bridge's table as the answers describe it.
	owner := map[netip.Addr]string{}
	addrOf := map[string]netip.Addr{}
	answered := map[string]time.Time{} // when the last answer for a name was asked for (lower bound)
	give := func(t *testing.T, name string, a netip.Addr, asked time.Time) {
		t.Helper()
		if !pool.Contains(a) || a == pool.Addr() {
			t.Fatalf("%s got %v, outside the pool's usable addresses", name, a)
		}
		if old, ok := owner[a]; ok && old != name {
			delete(addrOf, old)
		}
		if prev, ok := addrOf[name]; ok && prev != a {
			delete(owner, prev)
		}
		owner[a] = name
		addrOf[name] = a
		answered[name] = asked
	}
	query := func(t *testing.T, name string) netip.Addr {
		t.Helper()
		asked := time.Now()
		a := parseVirtual(t, digOne(t, d.DNS, name, "A"), ex["v4"])
		give(t, name, a, asked)
		return a
	}
	// checkTor compares Tor's mappings for the pool with owner.
	checkTor := func(t *testing.T) {
		t.Helper()
		m := o.mappings(t)
		for a, name := range owner {
			if m[a.String()] != name {
				t.Fatalf("tor maps %v → %q, the bridge answered it for %q", a, m[a.String()], name)
			}
		}
	}
	names := make([]string, 14)
	for i := range names {
		names[i] = fmt.Sprintf("p%d-%d.example.test", i, time.Now().UnixNano())
	}

	// Phase 1: fill the pool.
	fillStart := time.Now()
	for _, name := range names[:7] {
		query(t, name)
	}
	if len(owner) != 7 {
		t.Fatalf("7 names got %d distinct addresses: %v", len(owner), addrOf)
	}
	checkTor(t)

	// Phase 2: the pool is full and every answer is younger than the TTL:
	// an eighth name must fail (SERVFAIL), not steal an address an app may
	// still hold. Only decidable if the query ends within the TTL of the
	// first answer.
	r := dig(t, d.DNS, names[7], "A")
	if time.Since(fillStart) < ttl {
		if r.Status != "SERVFAIL" || len(r.Answers) != 0 {
			t.Fatalf("full pool, all answers within TTL: want SERVFAIL:\n%s", r.cmdResult)
		}
	} else {
		t.Logf("filling took over the TTL (%v); SERVFAIL case not decidable", time.Since(fillStart))
	}

	// Phase 3: a live SOCKS4 stream to p0's address pins p0.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := dialSOCKS4IP(ctx, d.Listen, netip.AddrPortFrom(addrOf[names[0]], uint16(n.HTTPPort)), "")
	if err != nil {
		t.Fatalf("SOCKS4 to %v (%s): %v", addrOf[names[0]], names[0], err)
	}
	tu := newKeptTunnel(c)
	defer tu.Close()
	via, err := tu.get("/via")
	if err != nil {
		t.Fatal(err)
	}
	wantExit(t, n, via)
	pinned := addrOf[names[0]]

	// Phase 4: once the TTL has passed, new names reclaim the least
	// recently used mappings: p1..p6 in order (p0 was touched by the pin).
	for i := 7; i < 13; i++ {
		want := addrOf[names[i-6]]
		var got netip.Addr
		ok := testutil.Poll(3*ttl, pollEvery, func() bool {
			asked := time.Now()
			r := dig(t, d.DNS, names[i], "A")
			if r.Status != "NOERROR" || len(r.Answers) != 1 {
				return false // SERVFAIL until the victim's TTL has passed
			}
			got = parseVirtual(t, r.Answers[0], ex["v4"])
			give(t, names[i], got, asked)
			return true
		})
		if !ok {
			t.Fatalf("%s: no answer within %v", names[i], 3*ttl)
		}
		if got != want {
			t.Fatalf("%s got %v, want the LRU %v (was %s)", names[i], got, want, names[i-6])
		}
		if got == pinned {
			t.Fatalf("the pinned address %v was reclaimed", pinned)
		}
	}
	checkTor(t)
	// PTR follows the new owner.
	if a := digOne(t, d.DNS, "-x", addrOf[names[7]].String()); a != names[7]+"." {
		t.Fatalf("PTR %v = %q, want %s.", addrOf[names[7]], a, names[7])
	}

	// Phase 5: p0 is now the least recently used but pinned; the next
	// name must skip it. p7 was just answered again (the PTR query above
	// counts as an answer and a use), so the victim is p8.
	want := addrOf[names[8]]
	ok := testutil.Poll(3*ttl, pollEvery, func() bool {
		asked := time.Now()
		r := dig(t, d.DNS, names[13], "A")
		if r.Status != "NOERROR" || len(r.Answers) != 1 {
			return false
		}
		give(t, names[13], parseVirtual(t, r.Answers[0], ex["v4"]), asked)
		return true
	})
	if !ok {
		t.Fatalf("%s: no answer", names[13])
	}
	if got := addrOf[names[13]]; got == pinned || got != want {
		t.Fatalf("%s got %v, want %v (pinned %v must stay with %s)", names[13], got, want, pinned, names[0])
	}
	checkTor(t)
	// The pinned stream still works, and Tor still maps its address to p0.
	if via, err := tu.get("/via"); err != nil {
		t.Fatalf("the pinned stream broke: %v", err)
	} else {
		wantExit(t, n, via)
	}
	if m := o.mappings(t); m[pinned.String()] != names[0] {
		t.Fatalf("pinned %v now maps to %q", pinned, m[pinned.String()])
	}

	// Phase 6: a burst of concurrent new names once every answer is older
	// than the TTL: at most 7 succeed, each with its own address.
	testutil.Poll(3*ttl, pollEvery, func() bool {
		for name, at := range answered {
			if _, live := addrOf[name]; live && time.Since(at) < ttl+200*time.Millisecond {
				return false
			}
		}
		return true
	})
	tu.Close() // unpin p0
	burst := make([]string, 12)
	for i := range burst {
		burst[i] = fmt.Sprintf("burst%d-%d.example.test", i, time.Now().UnixNano())
	}
	type res struct {
		name  string
		rcode int
		addr  netip.Addr
	}
	out := make([]res, len(burst))
	var wg sync.WaitGroup
	b0 := time.Now()
	for i, name := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(name), dns.TypeA)
			cl := &dns.Client{Net: "udp", Timeout: 15 * time.Second}
			resp, _, err := cl.Exchange(m, d.DNS)
			out[i] = res{name: name, rcode: -1}
			if err != nil {
				return
			}
			out[i].rcode = resp.Rcode
			if len(resp.Answer) == 1 {
				if a, ok := resp.Answer[0].(*dns.A); ok {
					out[i].addr, _ = netip.AddrFromSlice(a.A.To4())
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(b0)
	seen := map[netip.Addr]string{}
	okCount := 0
	for _, r := range out {
		switch r.rcode {
		case dns.RcodeSuccess:
			okCount++
			if !pool.Contains(r.addr) {
				t.Fatalf("%s: %v outside the pool", r.name, r.addr)
			}
			if other, dup := seen[r.addr]; dup && took < ttl {
				t.Fatalf("%v served for %s and %s within one TTL", r.addr, other, r.name)
			}
			seen[r.addr] = r.name
		case dns.RcodeServerFailure:
		default:
			t.Fatalf("%s: rcode %s", r.name, dns.RcodeToString[r.rcode])
		}
	}
	if took < ttl && okCount > 7 {
		t.Fatalf("%d answers from a 7-address pool within one TTL", okCount)
	}
	if okCount == 0 {
		t.Fatalf("no burst query succeeded: %+v", out)
	}
	t.Logf("burst of %d new names in %v: %d answered, %d SERVFAIL", len(burst), took.Round(time.Millisecond), okCount, len(burst)-okCount)
	// Tor agrees with the burst's answers.
	m := o.mappings(t)
	for a, name := range seen {
		if m[a.String()] != name {
			t.Fatalf("tor maps %v → %q, burst answered %q", a, m[a.String()], name)
		}
	}
	ss := scrape(t, d.Metrics)
	if got := metricSum(ss, "socksd_dns_reclaims_total", "family", "ipv4"); got < 7+float64(okCount) {
		t.Fatalf("socksd_dns_reclaims_total{family=ipv4} = %v, want >= %d", got, 7+okCount)
	}
	if got := metricSum(ss, "socksd_dns_pool_capacity", "family", "ipv4"); got != 7 {
		t.Fatalf("socksd_dns_pool_capacity{family=ipv4} = %v, want 7", got)
	}
}
