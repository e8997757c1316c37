package resolve

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"socksd/internal/testutil"
)

// waitGoroutines polls (bounded) until at most n goroutines run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutine leak: %d > %d\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startBridge(t *testing.T, cfg Config, tor Tor) (b *Bridge, udp, tcp string) {
	t.Helper()
	cfg.Listen = []string{"127.0.0.1:0"}
	b, err := New(cfg, tor, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	u, c := b.Addrs()
	if len(u) != 1 || len(c) != 1 {
		t.Fatalf("Addrs %v %v", u, c)
	}
	return b, u[0].String(), c[0].String()
}

func TestUDPAndTCP(t *testing.T) {
	before := runtime.NumGoroutine()
	tor := newFakeTor()
	b, udp, tcp := startBridge(t, testConfig(newClock()), tor)

	var got []netip.Addr
	for _, tc := range []struct{ net, addr string }{{"udp", udp}, {"tcp", tcp}} {
		c := &dns.Client{Net: tc.net, Timeout: 5 * time.Second}
		q := new(dns.Msg)
		q.SetQuestion("example.test.", dns.TypeA)
		m, _, err := c.Exchange(q, tc.addr)
		if err != nil {
			t.Fatalf("%s: %v", tc.net, err)
		}
		got = append(got, onlyAddr(t, m))
		q.SetQuestion("example.test.", dns.TypeMX)
		if m, _, err = c.Exchange(q, tc.addr); err != nil || m.Rcode != dns.RcodeNotImplemented {
			t.Fatalf("%s MX: %v %v", tc.net, m, err)
		}
	}
	if got[0] != got[1] {
		t.Errorf("UDP %v, TCP %v", got[0], got[1])
	}
	// Several queries on one TCP connection.
	conn, err := dns.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		q := new(dns.Msg)
		q.SetQuestion("example.test.", dns.TypeAAAA)
		if err := conn.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, err := conn.ReadMsg()
		if err != nil || m.Id != q.Id {
			t.Fatalf("TCP query %d: %v %v", i, m, err)
		}
		onlyAddr(t, m)
	}
	conn.Close()

	// A name over 255 bytes does not even unpack: miekg answers FORMERR.
	raw := testutil.Unhex(t, "4242 0100 0001 0000 0000 0000")
	for i := 0; i < 5; i++ {
		raw = append(raw, 63)
		raw = append(raw, []byte(strings.Repeat("a", 63))...)
	}
	raw = append(raw, 0, 0, 1, 0, 1)
	uc, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if _, err := uc.Write(raw); err != nil {
		t.Fatal(err)
	}
	_ = uc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, err := uc.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var m dns.Msg
	if err := m.Unpack(buf[:n]); err != nil || m.Id != 0x4242 || m.Rcode != dns.RcodeFormatError {
		t.Fatalf("long name: %v %v", &m, err)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Start(); err == nil {
		t.Fatal("Start after Close succeeded")
	}
	waitGoroutines(t, before)
}

func TestDisallowedOverTheWire(t *testing.T) {
	before := runtime.NumGoroutine()
	tor := newFakeTor()
	cfg := testConfig(newClock())
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} // not us
	b, udp, tcp := startBridge(t, cfg, tor)
	defer b.Close()
	for _, tc := range []struct{ net, addr string }{{"udp", udp}, {"tcp", tcp}} {
		c := &dns.Client{Net: tc.net, Timeout: 5 * time.Second}
		for _, qt := range []uint16{dns.TypeA, dns.TypeMX} {
			q := new(dns.Msg)
			q.SetQuestion("example.test.", qt)
			m, _, err := c.Exchange(q, tc.addr)
			if err != nil {
				t.Fatalf("%s: %v", tc.net, err)
			}
			if m.Rcode != dns.RcodeRefused || len(m.Question) != 0 || len(m.Answer) != 0 {
				t.Fatalf("%s %d: %v, want a bare REFUSED", tc.net, qt, m)
			}
		}
	}
	if len(tor.callLog()) != 0 {
		t.Fatal("a refused client caused a MAPADDRESS")
	}
	b.Close()
	waitGoroutines(t, before)
}

func TestListenAndServe(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(newClock())
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.StateDir = t.TempDir()
	b, err := New(cfg, newFakeTor(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.ListenAndServe(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ListenAndServe did not return")
	}
	waitGoroutines(t, before)

	// A busy port is an error from Start, and nothing is left listening.
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg.Listen = []string{ln.LocalAddr().String()}
	b2, err := New(cfg, newFakeTor(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Start(); err == nil {
		t.Fatal("Start on a busy port succeeded")
	}
	b2.Close()
}

// The bridge never sends a DNS packet anywhere: its non-test code has no DNS
// client, no exchange and no dialer. (The e2e canary test proves it on the
// wire; this keeps the code honest between runs.)
func TestNoOutboundDNSInSource(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	banned := []string{"dns.Client", "Exchange(", "dns.Dial", "net.Dial", "DialContext", "net.Resolver", "LookupHost", "LookupIP", "LookupAddr", "ExchangeContext"}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, b := range banned {
			if strings.Contains(string(src), b) {
				t.Errorf("%s contains %q: the bridge must never send a DNS query", f, b)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked only %d files", checked)
	}
}
