package resolve

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/proxy"

	"socksd/internal/testutil"
	"socksd/torctl"
)

// Real-tor tests run only against a running tor, e.g. a tornet client:
//
//	go run ./cmd/tornet up /tmp/tnG &  # wait for its env lines
//	set -a; . /tmp/tnG/env; set +a
//	SOCKSD_TOR_CONTROL=127.0.0.1:$CONTROL_PORT SOCKSD_TOR_COOKIE=$COOKIE_PATH \
//	SOCKSD_TOR_SOCKS=127.0.0.1:$SOCKS_PORT SOCKSD_TOR_HTTP_PORT=$HTTP_PORT \
//	SOCKSD_TOR_ONION=$ONION_HOST go test ./resolve -run Real -v
//
// They prove the bridge's contract with Tor: explicit MAPADDRESS of our own
// virtual addresses (IPv4, and IPv6 in brackets) is what makes an IP-only
// SOCKS request reach the name, and MAPADDRESS a=a removes it.
type realEnv = testutil.RealTor

func realTorEnv(t *testing.T) realEnv {
	t.Helper()
	return testutil.NeedRealTor(t, testutil.EnvControl, testutil.EnvCookie, testutil.EnvSOCKS, testutil.EnvHTTPPort)
}

// ctlTor is a test-only Tor: MAPADDRESS and RESOLVE+ADDRMAP over one
// control connection (the daemon's wiring lives in torup / cmd/socksd).
type ctlTor struct {
	c       *torctl.Conn
	mu      sync.Mutex
	waiters map[string][]chan torctl.AddrMapEvent
}

func dialCtlTor(t *testing.T, ctx context.Context, e realEnv) *ctlTor {
	t.Helper()
	c, err := torctl.Dial(ctx, e.Control)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(ctx, torctl.AuthOptions{CookieFile: e.Cookie}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEvents(ctx, "ADDRMAP"); err != nil {
		t.Fatal(err)
	}
	ct := &ctlTor{c: c, waiters: map[string][]chan torctl.AddrMapEvent{}}
	go func() {
		for ev := range c.Events() {
			a, err := torctl.ParseAddrMapEvent(ev)
			if err != nil || a.StreamID == "" { // only RESOLVE answers carry STREAMID
				continue
			}
			ct.mu.Lock()
			key := strings.ToLower(a.Address)
			ws := ct.waiters[key]
			delete(ct.waiters, key)
			ct.mu.Unlock()
			for _, w := range ws {
				w <- a
			}
		}
	}()
	return ct
}

func (ct *ctlTor) MapAddress(ctx context.Context, from, to string) (string, error) {
	return ct.c.MapAddress(ctx, from, to)
}

func (ct *ctlTor) Resolve(ctx context.Context, name string, reverse bool) (string, error) {
	ch := make(chan torctl.AddrMapEvent, 1)
	ct.mu.Lock()
	ct.waiters[strings.ToLower(name)] = append(ct.waiters[strings.ToLower(name)], ch)
	ct.mu.Unlock()
	if err := ct.c.Resolve(ctx, name, reverse); err != nil {
		return "", err
	}
	select {
	case a := <-ch:
		if a.Failed() {
			return "", ErrNoAnswer
		}
		return a.NewAddress, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (ct *ctlTor) controlMappings(t *testing.T, ctx context.Context) string {
	t.Helper()
	info, err := ct.c.GetInfo(ctx, "address-mappings/control")
	if err != nil {
		t.Fatal(err)
	}
	return info["address-mappings/control"]
}

// socks4Get fetches http://ip:port/ through a SOCKS4 proxy (IP only: the
// kind of client the bridge exists for).
func socks4Get(ctx context.Context, socksAddr string, ip netip.Addr, port int) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", socksAddr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	req := []byte{4, 1, 0, 0}
	binary.BigEndian.PutUint16(req[2:], uint16(port))
	req = append(req, ip.AsSlice()...)
	req = append(req, 0) // empty userid
	if _, err := c.Write(req); err != nil {
		return "", err
	}
	rep := make([]byte, 8)
	if _, err := io.ReadFull(c, rep); err != nil {
		return "", err
	}
	if rep[1] != 0x5a {
		return "", fmt.Errorf("SOCKS4 reply %#x", rep[1])
	}
	return httpGet(c)
}

func httpGet(c net.Conn) (string, error) {
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

func TestRealTorMapAddress(t *testing.T) {
	e := realTorEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	tor := dialCtlTor(t, ctx, e)
	clk := newClock()
	cfg := testConfig(clk)
	cfg.Now = clk.Now
	cfg.StateDir = t.TempDir()
	b, udp, _ := startBridge(t, cfg, tor)
	defer b.Close()
	client := &dns.Client{Net: "udp", Timeout: 10 * time.Second}
	query := func(name string, qt uint16) *dns.Msg {
		q := new(dns.Msg)
		q.SetQuestion(name, qt)
		m, _, err := client.Exchange(q, udp)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	v4 := onlyAddr(t, query("example.test.", dns.TypeA))
	v6 := onlyAddr(t, query("example.test.", dns.TypeAAAA))
	maps := tor.controlMappings(t, ctx)
	for _, want := range []string{v4.String() + " example.test", "[" + v6.String() + "] example.test"} {
		if !strings.Contains(maps, want) {
			t.Fatalf("address-mappings/control %q lacks %q", maps, want)
		}
	}
	t.Logf("example.test → %v and %v; Tor: %q", v4, v6, maps)

	// Tor's own SocksPort, SOCKS4 to the virtual address: MAPADDRESS carries it.
	body, err := socks4Get(ctx, e.SOCKS, v4, int(e.HTTPPort))
	if err != nil || !strings.Contains(body, "hello from tornet") {
		t.Fatalf("SOCKS4 to %v: %q %v", v4, body, err)
	}
	// SOCKS5 with an IPv6 address (ATYP 4).
	d, err := proxy.SOCKS5("tcp", e.SOCKS, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	c6, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", net.JoinHostPort(v6.String(), strconv.Itoa(int(e.HTTPPort))))
	if err != nil {
		t.Fatalf("SOCKS5 to [%v]: %v", v6, err)
	}
	_ = c6.SetDeadline(time.Now().Add(30 * time.Second))
	body, err = httpGet(c6)
	c6.Close()
	if err != nil || !strings.Contains(body, "hello from tornet") {
		t.Fatalf("SOCKS5 to [%v]: %q %v", v6, body, err)
	}

	// PTR of our own address.
	rev, _ := dns.ReverseAddr(v4.String())
	if m := query(rev, dns.TypePTR); len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != "example.test." {
		t.Fatalf("PTR %s: %v", rev, m)
	}

	if e.Onion != "" {
		o := onlyAddr(t, query(e.Onion+".", dns.TypeA))
		body, err := socks4Get(ctx, e.SOCKS, o, 80)
		if err != nil || !strings.Contains(body, "hello from tornet") {
			t.Fatalf("SOCKS4 to the onion's %v: %q %v", o, body, err)
		}
	}

	// Tor forgets (as after a restart); RepushAll puts everything back.
	for _, a := range []string{v4.String(), "[" + v6.String() + "]"} {
		if _, err := tor.MapAddress(ctx, a, a); err != nil {
			t.Fatal(err)
		}
	}
	if maps := tor.controlMappings(t, ctx); strings.Contains(maps, v4.String()+" ") {
		t.Fatalf("manual unmap failed: %q", maps)
	}
	if err := b.RepushAll(ctx); err != nil {
		t.Fatal(err)
	}
	maps = tor.controlMappings(t, ctx)
	if !strings.Contains(maps, v4.String()+" example.test") || !strings.Contains(maps, "["+v6.String()+"] example.test") {
		t.Fatalf("after RepushAll: %q", maps)
	}

	// Expiry removes them from Tor: "MAPADDRESS a=a", also for [v6].
	clk.Advance(2 * time.Hour)
	if n := b.Expire(ctx); n < 2 {
		t.Fatalf("expired %d", n)
	}
	maps = tor.controlMappings(t, ctx)
	if strings.Contains(maps, v4.String()+" ") || strings.Contains(maps, v6.String()) {
		t.Fatalf("after expiry Tor still has %q", maps)
	}
	// And the address no longer reaches anything through Tor's SocksPort.
	short, cancelShort := context.WithTimeout(ctx, 20*time.Second)
	defer cancelShort()
	// (tornet's client has ClientRejectInternalAddresses 0, so Tor sends the
	// bare 127.192.x.y to an exit, whose loopback refuses it; a real client
	// refuses it itself. Either way: no page.)
	body, err = socks4Get(short, e.SOCKS, v4, int(e.HTTPPort))
	if err == nil {
		t.Fatalf("expired address still reaches a page: %q", body)
	}
	t.Logf("expired %v through Tor: %v", v4, err)
}

func TestRealTorSuffixes(t *testing.T) {
	e := realTorEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tor := dialCtlTor(t, ctx, e)
	cfg := testConfig(newClock())
	cfg.Automap = AutomapSuffixes
	b := newTestBridge(t, cfg, tor)
	if a := onlyAddr(t, ask(t, b, "example.test.", dns.TypeA)); a != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("example.test through Tor = %v, want 127.0.0.1 (tornet dnsmasq)", a)
	}
	m := ask(t, b, "7.100.51.198.in-addr.arpa.", dns.TypePTR)
	if len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != "rev.example.test." {
		t.Fatalf("PTR 198.51.100.7 through Tor: %v", m)
	}
	if m := ask(t, b, "nx.invalid.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("unknown name: %s, want NXDOMAIN", dns.RcodeToString[m.Rcode])
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
}
