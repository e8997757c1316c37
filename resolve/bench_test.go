package resolve

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"socksd/internal/testutil"
)

// latencies collects per-query durations from parallel workers and reports
// p50/p99 and queries per second.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	b.ReportMetric(float64(l.all[len(l.all)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(l.all[len(l.all)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(len(l.all))/elapsed.Seconds(), "queries/s")
}

// benchClock advances by step on every read: time moves on for the new-name
// benchmarks so the LRU can reclaim once MaxMappings is reached.
type benchClock struct {
	ns   atomic.Int64
	step time.Duration
}

func (c *benchClock) Now() time.Time {
	return time.Unix(0, c.ns.Add(int64(c.step)))
}

func benchBridge(b *testing.B, stateDir string) *Bridge {
	b.Helper()
	clk := &benchClock{step: time.Millisecond}
	clk.ns.Store(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).UnixNano())
	cfg := testConfig(newClock())
	cfg.Now = clk.Now
	cfg.StateDir = stateDir
	cfg.Listen = []string{"127.0.0.1:0"}
	br, err := New(cfg, newFakeTor(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br
}

// In-process: ServeDNS with a recorder, no sockets.
func benchHandler(b *testing.B, br *Bridge, name func(i int64) string) {
	var n atomic.Int64
	var lat latencies
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		w := &recorder{remote: loopback}
		q := new(dns.Msg)
		for pb.Next() {
			q.SetQuestion(name(n.Add(1)), dns.TypeA)
			w.msgs = w.msgs[:0]
			t0 := time.Now()
			br.ServeDNS(w, q)
			mine = append(mine, time.Since(t0))
			if len(w.msgs) != 1 || w.msgs[0].Rcode != dns.RcodeSuccess {
				b.Errorf("bad answer %v", w.msgs)
				return
			}
		}
		lat.add(mine)
	})
	lat.report(b, time.Since(start))
}

func cachedName(i int64) string { return fmt.Sprintf("host%d.example.test.", i%1000) }

func newName(i int64) string { return fmt.Sprintf("new%d.example.test.", i) }

func BenchmarkHandlerCached(b *testing.B) {
	br := benchBridge(b, "")
	for i := int64(0); i < 1000; i++ {
		onlyAddr(b, ask(b, br, cachedName(i), dns.TypeA))
	}
	benchHandler(b, br, cachedName)
}

func BenchmarkHandlerNew(b *testing.B) {
	benchHandler(b, benchBridge(b, ""), newName)
}

// New names with the table saved to disk before each answer (group commit).
func BenchmarkHandlerNewPersisted(b *testing.B) {
	benchHandler(b, benchBridge(b, b.TempDir()), newName)
}

// udpLoad sends queries over UDP to addr from parallel workers, one socket
// each, and reports throughput and latency.
func udpLoad(b *testing.B, addr string, name func(i int64) string) {
	var n atomic.Int64
	var lat latencies
	// SOCKSD_BENCH_PAR=p runs p×GOMAXPROCS clients (default 1×).
	if p, _ := strconv.Atoi(os.Getenv("SOCKSD_BENCH_PAR")); p > 0 {
		b.SetParallelism(p)
	}
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := dns.Dial("udp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		var mine []time.Duration
		q := new(dns.Msg)
		for pb.Next() {
			q.SetQuestion(name(n.Add(1)), dns.TypeA)
			t0 := time.Now()
			_ = conn.SetDeadline(t0.Add(5 * time.Second))
			if err := conn.WriteMsg(q); err != nil {
				b.Error(err)
				return
			}
			m, err := conn.ReadMsg()
			if err != nil || m.Id != q.Id || m.Rcode != dns.RcodeSuccess {
				b.Errorf("query %s: %v %v", q.Question[0].Name, m, err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		lat.add(mine)
	})
	lat.report(b, time.Since(start))
}

func BenchmarkUDPCached(b *testing.B) {
	br := benchBridge(b, "")
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	for i := int64(0); i < 1000; i++ {
		onlyAddr(b, ask(b, br, cachedName(i), dns.TypeA))
	}
	udp, _ := br.Addrs()
	udpLoad(b, udp[0].String(), cachedName)
}

func BenchmarkUDPNew(b *testing.B) {
	br := benchBridge(b, "")
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	udp, _ := br.Addrs()
	udpLoad(b, udp[0].String(), newName)
}

// BenchmarkUDPTarget loads any DNS server, for comparisons with Tor's own
// DNSPort (AutomapHostsOnResolve 1, AutomapHostsSuffixes .):
//
//	SOCKSD_BENCH_DNS=127.0.0.1:18140 go test ./resolve -run XXX -bench UDPTarget
func BenchmarkUDPTarget(b *testing.B) {
	addr := os.Getenv("SOCKSD_BENCH_DNS")
	if addr == "" {
		b.Skip("SOCKSD_BENCH_DNS not set")
	}
	prefix := fmt.Sprintf("t%d", time.Now().UnixNano()) // new names on every run
	b.Run("cached", func(b *testing.B) {
		udpLoad(b, addr, func(i int64) string { return fmt.Sprintf("%sc%d.example.test.", prefix, i%1000) })
	})
	b.Run("new", func(b *testing.B) {
		udpLoad(b, addr, func(i int64) string { return fmt.Sprintf("%sn%d.example.test.", prefix, i) })
	})
}

// TestBenchServe runs a bridge on SOCKSD_BENCH_SERVE for SOCKSD_BENCH_SECONDS
// (default 60) so BenchmarkUDPTarget can load it from another process, as
// it loads Tor's DNSPort: a fair comparison needs the load generator outside
// the server's process. With SOCKSD_TOR_CONTROL/SOCKSD_TOR_COOKIE set, new
// names are mapped in a real Tor — a throwaway one: the hundreds of
// thousands of mappings stay there (controller mappings never expire,
// control-spec §3.8) and GETINFO address-mappings/control outgrows
// torctl's reply limit.
func TestBenchServe(t *testing.T) {
	addr := os.Getenv("SOCKSD_BENCH_SERVE")
	if addr == "" {
		t.Skip("SOCKSD_BENCH_SERVE not set")
	}
	secs, _ := strconv.Atoi(os.Getenv("SOCKSD_BENCH_SECONDS"))
	if secs == 0 {
		secs = 60
	}
	var tor Tor = newFakeTor()
	if os.Getenv(testutil.EnvControl) != "" {
		tor = dialCtlTor(t, t.Context(), testutil.NeedRealTor(t, testutil.EnvControl, testutil.EnvCookie))
	}
	cfg := testConfig(newClock())
	cfg.Now = time.Now
	cfg.Listen = []string{addr}
	cfg.MaxMappings = 1 << 22 // the whole /10: Tor's DNSPort has no lower limit either
	b, err := New(cfg, tor, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	select {
	case <-time.After(time.Duration(secs) * time.Second):
	case <-t.Context().Done():
	}
	b.mu.Lock()
	n := len(b.v4.byAddr)
	b.mu.Unlock()
	if n == 0 {
		t.Error("served no new name")
	}
	t.Logf("%d mappings after %ds", n, secs)
}

// The UDP fast path in-process: wire query in, wire answer out, no sockets.
func BenchmarkPacketCached(b *testing.B) {
	br := benchBridge(b, "")
	wires := make([][]byte, 1000)
	for i := range wires {
		onlyAddr(b, ask(b, br, cachedName(int64(i)), dns.TypeA))
		q := new(dns.Msg)
		q.SetQuestion(cachedName(int64(i)), dns.TypeA)
		wires[i], _ = q.Pack()
	}
	src := loopback.AddrPort().Addr().Unmap()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, buf := new(dns.Msg), make([]byte, udpPackBuf)
		for i := 0; pb.Next(); i++ {
			resp, slow := br.handlePacket(wires[i%len(wires)], src, req, buf)
			if slow || len(resp) == 0 {
				b.Errorf("slow %v, answer %x", slow, resp)
				return
			}
		}
	})
}
