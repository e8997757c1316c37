package resolve

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"

	"socksd/internal/testutil"
)

var (
	loopbackIP = netip.MustParseAddr("127.0.0.1")
	strangerIP = netip.MustParseAddr("192.0.2.9")
)

// packet runs wire through the UDP fast path from src; slow queries are
// answered the way serveSlow does (ServeDNS). It reports whether the fast
// path handed the query on.
func packet(t *testing.T, b *Bridge, src netip.Addr, wire []byte) (answer []byte, slow bool) {
	t.Helper()
	req := new(dns.Msg)
	resp, slow := b.handlePacket(wire, src, req, make([]byte, udpPackBuf))
	if !slow {
		return resp, false
	}
	if resp != nil {
		t.Fatal("slow query with an answer")
	}
	w := &recorder{remote: net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 40000))}
	b.ServeDNS(w, req)
	if len(w.msgs) != 1 {
		t.Fatalf("slow query: %d answers", len(w.msgs))
	}
	p, err := w.msgs[0].Pack()
	if err != nil {
		t.Fatal(err)
	}
	return p, true
}

// Every wire case gets the same rcode through the fast path as through
// ServeDNS (TestWireQueries).
func TestHandlePacketWireCases(t *testing.T) {
	for _, tc := range wireCases {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBridge(t, testConfig(newClock()), newFakeTor())
			p, _ := packet(t, b, loopbackIP, testutil.Unhex(t, tc.hex))
			if tc.rcode == silent {
				if p != nil {
					t.Fatalf("answered %x", p)
				}
				return
			}
			var m dns.Msg
			if err := m.Unpack(p); err != nil {
				t.Fatalf("answer %x: %v", p, err)
			}
			if m.Id != 0xabcd || !m.Response || m.Rcode != tc.rcode {
				t.Fatalf("id %#x response %v rcode %s, want rcode %s", m.Id, m.Response, dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			if tc.check != nil {
				tc.check(t, &m)
			}
		})
	}
}

func TestHandlePacket(t *testing.T) {
	tor := newFakeTor()
	tor.answers["-x 198.51.100.7"] = "rev.example.test"
	tor.answers["plain.example"] = "198.51.100.7"
	cfg := testConfig(newClock())
	cfg.Automap = AutomapSuffixes
	cfg.AutomapSuffixes = []string{".test"}
	b := newTestBridge(t, cfg, tor)
	const (
		qA     = hdrQuery + qExample + "0001 0001"
		qPlain = hdrQuery + "05 706c61696e 07 6578616d706c65 00 0001 0001" // plain.example: not automapped
		qPTR   = hdrQuery + "01 37 03 313030 02 3531 03 313938 07 696e2d61646472 04 61727061 00 000c 0001"
	)
	for _, tc := range []struct {
		name string
		src  netip.Addr
		wire string
		want string // hex answer; "" nothing
		slow bool
	}{
		{"short header", loopbackIP, "abcd 0100 0001", "", false},
		{"a response", loopbackIP, "abcd 8180 0001 0000 0000 0000" + qExample + "0001 0001", "", false},
		{"stranger: bare REFUSED", strangerIP, qA, "abcd 8185 0000 0000 0000 0000", false},
		{"stranger, short", strangerIP, "abcd 01", "", false},
		{"stranger, response", strangerIP, "abcd 8180 0000 0000 0000 0000", "", false},
		// A question cut short does not unpack: miekg's server answers
		// FORMERR with the header (QR, the request's RD) and what did unpack.
		{"truncated question: FORMERR", loopbackIP, "abcd 0100 0001 0000 0000 0000 07 6578616d", "abcd 8101 0000 0000 0000 0000", false},
		{"MX: NOTIMP in place", loopbackIP, hdrQuery + qExample + "000f 0001", "abcd 8184 0001 0000 0000 0000" + qExample + "000f 0001", false},
		{"new name waits on Tor", loopbackIP, qA, "", true},
		{"name resolved through Tor", loopbackIP, qPlain, "", true},
		{"PTR through Tor", loopbackIP, qPTR, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := len(tor.callLog())
			resp, slow := b.handlePacket(testutil.Unhex(t, tc.wire), tc.src, new(dns.Msg), make([]byte, udpPackBuf))
			if slow != tc.slow {
				t.Fatalf("slow %v, want %v", slow, tc.slow)
			}
			if want := testutil.Unhex(t, tc.want); !bytes.Equal(resp, want) && (len(resp) > 0 || len(want) > 0) {
				t.Fatalf("answer\n%x, want\n%x", resp, want)
			}
			if len(tor.callLog()) != calls {
				t.Fatal("the fast path called Tor")
			}
		})
	}
	if n := len(b.v4.byName); n != 0 {
		t.Fatalf("the fast path created %d mappings", n)
	}

	// Once the mapping exists (and Tor has it), the same query is answered
	// in place with the same address.
	first, slow := packet(t, b, loopbackIP, testutil.Unhex(t, qA))
	if !slow {
		t.Fatal("new name answered in place")
	}
	again, slow := packet(t, b, loopbackIP, testutil.Unhex(t, qA))
	if slow {
		t.Fatal("mapped name not answered in place")
	}
	if !bytes.Equal(first, again) {
		t.Fatalf("in place\n%x, through ServeDNS\n%x", again, first)
	}
	// After a Tor reconnect the mapping must be pushed again: not in place.
	b.mu.Lock()
	b.epoch++
	b.mu.Unlock()
	if _, slow := packet(t, b, loopbackIP, testutil.Unhex(t, qA)); !slow {
		t.Fatal("answered in place a mapping Tor may not have")
	}
	if _, slow := packet(t, b, loopbackIP, testutil.Unhex(t, qA)); slow {
		t.Fatal("re-pushed mapping not answered in place")
	}
}

// A mapping not yet on disk is not answered in place: the answer waits for
// the saver: a restart must keep every address an app was told.
func TestHandlePacketWaitsForDisk(t *testing.T) {
	cfg := testConfig(newClock())
	cfg.StateDir = t.TempDir()
	b := newTestBridge(t, cfg, newFakeTor())
	wire := testutil.Unhex(t, hdrQuery+qExample+"0001 0001")
	if _, slow := packet(t, b, loopbackIP, wire); !slow {
		t.Fatal("new name answered in place")
	}
	b.mu.Lock()
	m := b.v4.byName["example.test"]
	b.mu.Unlock()
	if !b.saver.isSaved(m.gen) {
		t.Fatal("answered before the mapping was saved")
	}
	b.saver.mu.Lock()
	b.saver.saved = m.gen - 1 // as if the write were still running
	b.saver.mu.Unlock()
	if _, slow := b.handlePacket(wire, loopbackIP, new(dns.Msg), make([]byte, udpPackBuf)); !slow {
		t.Fatal("answered in place a mapping not on disk")
	}
}

// Over the wire: a query waiting on Tor does not hold up table hits, every
// socket of the reuseport group answers, and Close ends every goroutine
// (workers and the waiting query).
func TestUDPFastPathOverTheWire(t *testing.T) {
	before := runtime.NumGoroutine()
	tor := newFakeTor()
	b, udp, _ := startBridge(t, testConfig(newClock()), tor)
	defer b.Close()
	if n := len(b.servers[0].fast.conns); n != min(runtime.GOMAXPROCS(0), maxUDPSockets) && canReusePort {
		t.Fatalf("%d sockets, want GOMAXPROCS", n)
	}
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion("cached.test.", dns.TypeA)
	m, _, err := c.Exchange(q, udp)
	if err != nil {
		t.Fatal(err)
	}
	want := onlyAddr(t, m)

	tor.mu.Lock()
	tor.gate = make(chan struct{}) // every MapAddress blocks
	tor.mu.Unlock()
	slow, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	q.SetQuestion("blocked.test.", dns.TypeA)
	wire, _ := q.Pack()
	if _, err := slow.Write(wire); err != nil {
		t.Fatal(err)
	}
	// Wait until that query is at Tor's gate.
	for deadline := time.Now().Add(5 * time.Second); ; {
		b.mu.Lock()
		m := b.v4.byName["blocked.test"]
		pushing := m != nil && m.pushing != nil
		b.mu.Unlock()
		if pushing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the query never reached Tor")
		}
		time.Sleep(time.Millisecond)
	}
	// Many clients (source ports spread over the sockets) still get the
	// cached name at once.
	for i := 0; i < 16; i++ {
		q.SetQuestion("cached.test.", dns.TypeA)
		m, _, err := c.Exchange(q, udp)
		if err != nil {
			t.Fatalf("client %d while a query waits on Tor: %v", i, err)
		}
		if got := onlyAddr(t, m); got != want {
			t.Fatalf("client %d: %v, want %v", i, got, want)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitGoroutines(t, before)
}

// FuzzHandlePacket: the fast path never panics, and whatever it answers in
// place is what the miekg server path (serveWire: unpack, acceptQuery,
// ServeDNS) answers; what it hands on changed nothing.
func FuzzHandlePacket(f *testing.F) {
	for _, tc := range wireCases {
		f.Add(testutil.Unhex(f, tc.hex), false)
	}
	f.Add(testutil.Unhex(f, hdrQuery+qExample+"0001 0001"), true)
	f.Add(testutil.Unhex(f, "abcd 0100 0001 0000 0000 0000 07 6578616d"), false)
	f.Add([]byte{}, false)

	tor := newFakeTor()
	tor.answers["example.test"] = "127.0.0.1"
	cfg := tinyPool(newClock())
	b, err := New(cfg, tor, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	// Map a name so table hits are answered in place.
	q := new(dns.Msg)
	q.SetQuestion("example.test.", dns.TypeA)
	onlyAddr(f, askMsg(f, b, loopback, q))
	buf := make([]byte, udpPackBuf)

	f.Fuzz(func(t *testing.T, wire []byte, fromStranger bool) {
		src, from := loopbackIP, net.Addr(loopback)
		if fromStranger {
			src, from = strangerIP, &net.UDPAddr{IP: strangerIP.AsSlice(), Port: 53}
		}
		calls := len(tor.callLog())
		resp, slow := b.handlePacket(wire, src, new(dns.Msg), buf)
		if slow {
			if resp != nil || len(tor.callLog()) != calls {
				t.Fatalf("handed on with answer %x or a Tor call", resp)
			}
			return
		}
		if resp == nil {
			return
		}
		var got dns.Msg
		if err := got.Unpack(resp); err != nil {
			t.Fatalf("answer %x does not unpack: %v", resp, err)
		}
		if !got.Response || got.Id != uint16(wire[0])<<8|uint16(wire[1]) {
			t.Fatalf("answer id %#x response %v", got.Id, got.Response)
		}
		if fromStranger {
			if len(resp) != 12 || got.Rcode != dns.RcodeRefused {
				t.Fatalf("stranger got %x", resp)
			}
			return
		}
		want, err := serveWire(b, from, wire)
		if err == errUnpack {
			if got.Rcode != dns.RcodeFormatError {
				t.Fatalf("unpack failure answered %s", dns.RcodeToString[got.Rcode])
			}
			return
		}
		if err != nil || want == nil {
			t.Fatalf("in place %v; server path %v %v", &got, want, err)
		}
		if got.Rcode != want.Rcode || len(got.Answer) != len(want.Answer) || len(got.Question) != len(want.Question) {
			t.Fatalf("in place\n%v\nserver path\n%v", &got, want)
		}
		for i := range got.Answer {
			if got.Answer[i].String() != want.Answer[i].String() {
				t.Fatalf("answer %v, server path %v", got.Answer[i], want.Answer[i])
			}
		}
	})
}

// A second bridge on the same address joins the first one's reuseport group
// for a moment, but its TCP listener fails, so it does not start and leaves
// no socket behind: every query still reaches the first bridge.
func TestSecondBridgeSameAddress(t *testing.T) {
	before := runtime.NumGoroutine()
	b, _, tcp := startBridge(t, testConfig(newClock()), newFakeTor())
	defer b.Close()
	_, tport, _ := net.SplitHostPort(tcp)
	cfg := testConfig(newClock())
	cfg.Listen = []string{tcp} // TCP is taken by b
	b2, err := New(cfg, newFakeTor(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Start(); err == nil {
		t.Fatal("second bridge started on a taken address")
	}
	b2.Close()

	// Same with both ports taken: the first bridge's own address.
	b.Close()
	waitGoroutines(t, before)
	addr := "127.0.0.1:" + tport
	cfg.Listen = []string{addr}
	first, err := New(cfg, newFakeTor(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Skipf("port %s taken meanwhile: %v", tport, err)
	}
	defer first.Close()
	second, err := New(cfg, newFakeTor(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(); err == nil {
		t.Fatal("second bridge started on the same address")
	}
	second.Close()
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	for i := 0; i < 16; i++ { // new source ports: any socket of the group
		q := new(dns.Msg)
		q.SetQuestion("example.test.", dns.TypeA)
		m, _, err := c.Exchange(q, addr)
		if err != nil {
			t.Fatalf("query %d after the second bridge gave up: %v", i, err)
		}
		onlyAddr(t, m)
	}
}

// IPv6 loopback takes the fast path too (ipv6.PacketConn batches).
func TestUDPFastPathIPv6(t *testing.T) {
	probe, err := net.ListenPacket("udp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	probe.Close()
	cfg := testConfig(newClock())
	cfg.Listen = []string{"[::1]:0"}
	b := newTestBridge(t, cfg, newFakeTor())
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if b.servers[0].fast == nil {
		t.Fatal("::1 not on the fast path")
	}
	udp, _ := b.Addrs()
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	var first netip.Addr
	for i := 0; i < 4; i++ { // new, then table hits
		q := new(dns.Msg)
		q.SetQuestion("example.test.", dns.TypeAAAA)
		m, _, err := c.Exchange(q, udp[0].String())
		if err != nil {
			t.Fatal(err)
		}
		a := onlyAddr(t, m)
		if i == 0 {
			first = a
		} else if a != first {
			t.Fatalf("answer %d: %v, want %v", i, a, first)
		}
	}
}
