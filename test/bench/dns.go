package main

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// dnsResult is one DNS load run against one server.
type dnsResult struct {
	OK, Errors int
	Elapsed    time.Duration
	Lat        []time.Duration // per answered query
	FirstErr   string
}

func (r dnsResult) qps() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// dnsLoad sends A queries for name(0), name(1), ... over UDP to server
// from workers clients, each on its own socket, one query in flight per
// worker, until max queries or dur has passed. An answer counts only if
// it is NOERROR with an A record inside vnet: the address a virtual-address
// server (socksd's DNS bridge, Tor's DNSPort with AutomapHostsOnResolve)
// must hand out, so a refusal or a stray real answer is an error.
func dnsLoad(server string, name func(i int) string, workers int, dur time.Duration, max int, vnet netip.Prefix) dnsResult {
	var (
		next  atomic.Int64
		mu    sync.Mutex
		res   dnsResult
		wg    sync.WaitGroup
		start = time.Now()
		stop  = start.Add(dur)
	)
	fail := func(err string) {
		mu.Lock()
		res.Errors++
		if res.FirstErr == "" {
			res.FirstErr = err
		}
		mu.Unlock()
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			conn, err := cl.Dial(server)
			if err != nil {
				fail(err.Error())
				return
			}
			defer func() { conn.Close() }() // conn is replaced after a lost answer
			lat := make([]time.Duration, 0, 1024)
			ok := 0
			m := new(dns.Msg)
			for time.Now().Before(stop) {
				i := int(next.Add(1)) - 1
				if i >= max {
					break
				}
				m.SetQuestion(dns.Fqdn(name(i)), dns.TypeA)
				t0 := time.Now()
				r, _, err := cl.ExchangeWithConn(m, conn)
				el := time.Since(t0)
				if err != nil {
					fail(err.Error())
					// A lost UDP answer may arrive late and be read as the
					// next query's: start over on a fresh socket.
					conn.Close()
					if conn, err = cl.Dial(server); err != nil {
						fail(err.Error())
						return
					}
					continue
				}
				if e := checkVirtualA(r, vnet); e != "" {
					fail(e)
					continue
				}
				ok++
				lat = append(lat, el)
			}
			mu.Lock()
			res.OK += ok
			res.Lat = append(res.Lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

// checkVirtualA returns "" if r answers with an A record inside vnet.
func checkVirtualA(r *dns.Msg, vnet netip.Prefix) string {
	if r.Rcode != dns.RcodeSuccess {
		return "rcode " + dns.RcodeToString[r.Rcode]
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, ok := netip.AddrFromSlice(a.A.To4())
			if ok && vnet.Contains(ip) {
				return ""
			}
			return fmt.Sprintf("A %s outside %s", a.A, vnet)
		}
	}
	return "no A record"
}

// dnsCase is one DNS measurement: mapped names (a fixed set, warmed once)
// or new names (unique per query), with C workers.
type dnsCase struct {
	kind    string // "mapped" | "new"
	workers int
}

func (c dnsCase) String() string { return fmt.Sprintf("%s C=%d", c.kind, c.workers) }

// dnsCases are measured in this order in every turn.
var dnsCases = []dnsCase{{"mapped", 1}, {"mapped", 16}, {"new", 1}, {"new", 16}}

// dnsTurn runs every dnsCase once against server. tag keeps each target's
// and repetition's names apart (socksd's bridge and Tor's automap share
// one tor). newMax bounds the unique names per case, so the virtual range
// (4M addresses in a /10) is never exhausted.
func dnsTurn(server, tag string, vnet netip.Prefix, names, mappedMax, newMax int, dur time.Duration) (map[dnsCase]dnsResult, error) {
	mapped := func(i int) string { return fmt.Sprintf("m%d.%s.socksbench.test", i%names, tag) }
	// Warm-up pass: every mapped name once, so the run below only ever
	// asks for names the server has already mapped.
	if w := dnsLoad(server, mapped, 4, 30*time.Second, names, vnet); w.OK != names {
		return nil, fmt.Errorf("DNS warm-up at %s: %d of %d answered (first error: %s)", server, w.OK, names, w.FirstErr)
	}
	out := map[dnsCase]dnsResult{}
	for _, c := range dnsCases {
		name, max := mapped, mappedMax
		if c.kind == "new" {
			prefix := fmt.Sprintf("n%d.%s", c.workers, tag)
			name = func(i int) string { return fmt.Sprintf("q%d.%s.socksbench.test", i, prefix) }
			max = newMax
		}
		out[c] = dnsLoad(server, name, c.workers, dur, max, vnet)
	}
	return out, nil
}

// durPct is the q-th percentile of v, in ms (0 if empty).
func durPct(v []time.Duration, q int) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*q/100)].Seconds() * 1e3
}
