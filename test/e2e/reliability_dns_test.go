package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"socksd/internal/daemontest"
)

// dnsJunk is a datagram the bridge must drop or refuse without asking
// Tor anything: a response (QR set), a query with two questions
// (FORMERR), or a fragment shorter than a header.
func dnsJunk(r *rand.Rand) []byte {
	b := make([]byte, 1+r.IntN(300))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	switch r.IntN(3) {
	case 0:
		if len(b) >= 3 {
			b[2] |= 0x80
		}
	case 1:
		if len(b) < 12 {
			b = append(b, make([]byte, 12-len(b))...)
		}
		b[2] &^= 0x80
		b[4], b[5] = 0, 2
	default:
		b = b[:min(len(b), 11)]
	}
	return b
}

// TestReliabilityDNS: a /24 pool asked for more names than it holds
// answers SERVFAIL for the excess, says so once in the log and on the
// status page; junk over UDP and TCP and idle TCP connections beyond
// max_tcp_connections leave the bridge answering and socksd at its
// baseline.
func TestReliabilityDNS(t *testing.T) {
	needTornet(t)
	ct := startClientTor(t, "dnsabuse")
	const maxTCP = 32
	tmpl := attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt}) + fmt.Sprintf(`
[dns]
listen = ["{{.DNS}}"]
virtual_network_ipv4 = "127.199.0.0/24"
virtual_network_ipv6 = ""
max_tcp_connections = %d
`, maxTCP)
	tmpl = strings.Replace(tmpl, `level = "debug"`, `level = "info"`, 1)
	s := startSocksd(t, tmpl)
	first := digOne(t, s.DNS, "first.example")
	base := mustSample(t, s)

	// Pool exhaustion: names beyond the pool's capacity within the TTL.
	status := func() (capacity, exhausted int) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		code, body, err := httpDo(ctx, "GET", "http://"+s.Metrics+"/status")
		if err != nil || code != 200 {
			t.Fatalf("GET /status: %d %v", code, err)
		}
		var st struct {
			DNS struct {
				Capacity      int `json:"capacity"`
				PoolExhausted int `json:"pool_exhausted"`
			} `json:"dns"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		return st.DNS.Capacity, st.DNS.PoolExhausted
	}
	capacity, _ := status()
	names := capacity + pick(50, 200)
	cl := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	servfail := 0
	t0 := time.Now()
	for i := range names {
		q := new(dns.Msg)
		q.SetQuestion(fmt.Sprintf("pool-%d.example.", i), dns.TypeA)
		m, _, err := cl.Exchange(q, s.DNS)
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if m.Rcode == dns.RcodeServerFailure {
			servfail++
		}
	}
	fill := time.Since(t0)
	// first.example took one address before the loop.
	if want := names - (capacity - 1); servfail != want {
		t.Errorf("%d SERVFAIL for %d names into a pool of %d, want %d", servfail, names, capacity, want)
	}
	if n := strings.Count(s.Log(), "virtual address pool full"); n != 1 {
		t.Errorf("%d pool-full warnings for %d refusals within 30 s, want 1", n, servfail)
	}
	if strings.Contains(s.Log(), "pool-1") {
		t.Errorf("a queried name reached the log")
	}
	if _, ex := status(); ex != servfail {
		t.Errorf("status page dns.pool_exhausted = %d, want %d", ex, servfail)
	}

	// Junk datagrams and TCP streams.
	r := rand.New(rand.NewPCG(7, 7))
	junkUDP := pick(2000, 20000)
	uc, err := net.Dial("udp", s.DNS)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	t1 := time.Now()
	for range junkUDP {
		uc.Write(dnsJunk(r))
	}
	udpTook := time.Since(t1)
	junkTCP := pick(100, 1000)
	for range junkTCP {
		c, err := net.DialTimeout("tcp", s.DNS, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		j := dnsJunk(r)
		c.Write(append([]byte{byte(len(j) >> 8), byte(len(j))}, j...))
		c.Close()
	}
	// Idle TCP connections: at most max_tcp_connections are kept.
	idle := 2 * maxTCP
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range idle {
		c, err := net.DialTimeout("tcp", s.DNS, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	var closedN atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := closedWithin(c, 500*time.Millisecond); ok {
				closedN.Add(1)
			}
		}()
	}
	wg.Wait()
	closed := int(closedN.Load())
	if closed < idle-maxTCP {
		t.Errorf("%d of %d idle DNS/TCP connections closed at once, want at least %d (max_tcp_connections %d)", closed, idle, idle-maxTCP, maxTCP)
	}
	if got := digOne(t, s.DNS, "first.example"); got != first {
		t.Errorf("first.example now %s, was %s", got, first)
	}
	if s.Proc.Exited() || strings.Contains(s.Log(), "panic") {
		t.Fatalf("socksd died:\n%s", daemontest.Tail(s.Log(), 3000))
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	after, rec := waitBaseline(t, s, base, 30*time.Second)
	report(t, "%d names into a pool of %d in %.2fs: %d SERVFAIL, 1 warning, status pool_exhausted %d; %d junk datagrams in %.2fs, %d junk TCP streams, %d idle TCP connections (%d closed at once, limit %d): bridge still answering; baseline %v -> %v after %.2fs",
		names, capacity, fill.Seconds(), servfail, servfail, junkUDP, udpTook.Seconds(), junkTCP, idle, closed, maxTCP, base, after, rec.Seconds())
}
