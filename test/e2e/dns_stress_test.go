package e2e

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"socksd/internal/daemontest"
)

// TestDNSConcurrentNewNames: many clients asking for new names at once
// (each answer waits for a MAPADDRESS round trip to the real tor and for
// the table on disk). Every query gets its own address, Tor agrees with
// every answer, and socksd survives (its cleanup wants exit 0).
func TestDNSConcurrentNewNames(t *testing.T) {
	o := needOwnTor(t)
	ex := bridgeExtra(13)
	d := startDNSDaemon(t, BridgeConfig, "", ex)
	const total, workers = 400, 32
	names := make(chan string, total)
	stamp := time.Now().UnixNano()
	for i := range total {
		names <- fmt.Sprintf("c%d-%d.example.test", i, stamp)
	}
	close(names)
	var mu sync.Mutex
	got := map[string]netip.Addr{}
	var fails []string
	var wg sync.WaitGroup
	t0 := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &dns.Client{Net: "udp", Timeout: 15 * time.Second}
			for name := range names {
				m := new(dns.Msg)
				m.SetQuestion(name+".", dns.TypeA)
				resp, _, err := cl.Exchange(m, d.DNS)
				mu.Lock()
				switch {
				case err != nil:
					fails = append(fails, name+": "+err.Error())
				case resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1:
					fails = append(fails, name+": "+dns.RcodeToString[resp.Rcode])
				default:
					a, _ := netip.AddrFromSlice(resp.Answer[0].(*dns.A).A.To4())
					got[name] = a
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	if len(fails) > 0 {
		t.Fatalf("%d of %d queries failed, first: %v\n%s", len(fails), total, fails[:min(5, len(fails))], daemontest.Tail(d.Log(), 3000))
	}
	seen := map[netip.Addr]string{}
	for name, a := range got {
		if other, dup := seen[a]; dup {
			t.Fatalf("%v served for %s and %s", a, other, name)
		}
		seen[a] = name
	}
	m := o.mappings(t)
	for name, a := range got {
		if m[a.String()] != name {
			t.Fatalf("tor maps %v → %q, bridge answered it for %s", a, m[a.String()], name)
		}
	}
	t.Logf("%d new names from %d concurrent clients in %v (%.0f/s), all distinct and mapped in tor",
		total, workers, took.Round(time.Millisecond), float64(total)/took.Seconds())
	if d.Proc.Exited() {
		t.Fatalf("socksd died:\n%s", daemontest.Tail(d.Log(), 3000))
	}
}
