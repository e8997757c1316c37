package e2e

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"socksd/internal/daemontest"
	"socksd/internal/testutil"
	"socksd/test/tornet"
)

// DNS bridge proofs against the real private network: real dig,
// curl and proxychains4 → socksd's bridge and SOCKS port → the own client
// tor (MAPADDRESS) → an exit or the onion service → the test HTTP server.
// /via names the tor that made the last hop, so "exitN" or "hs" in a body
// proves the stream crossed the Tor network.

var torVirtualNet = netip.MustParsePrefix("127.192.0.0/10") // Tor's VirtualAddrNetworkIPv4 default

// parseVirtual parses an answer and checks it lies in the test's pool.
func parseVirtual(t *testing.T, ans, pool string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(ans)
	if err != nil {
		t.Fatalf("answer %q is not an address", ans)
	}
	if p := netip.MustParsePrefix(pool); !p.Contains(a) {
		t.Fatalf("answer %v is not in the configured virtual network %v", a, p)
	}
	return a
}

// torKey is how Tor lists a mapped address in address-mappings.
func torKey(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

func wantMapped(t *testing.T, o *ownTor, a netip.Addr, name string) {
	t.Helper()
	m := o.mappings(t)
	if got := m[torKey(a)]; got != name {
		t.Fatalf("GETINFO address-mappings/control: %s → %q, want %q (all: %v)", torKey(a), got, name, m)
	}
}

func TestDNSBridgeDig(t *testing.T) {
	n := needTornet(t)
	o := needOwnTor(t)
	ex := bridgeExtra(1)
	d := startDNSDaemon(t, BridgeConfig, "", ex)
	hp := httpPortStr(n)

	// A: a virtual address, in Tor's virtual range and the configured pool.
	t0 := time.Now()
	v4 := parseVirtual(t, digOne(t, d.DNS, tornet.ZoneName, "A"), ex["v4"])
	t.Logf("dig A %s → %v in %v", tornet.ZoneName, v4, time.Since(t0).Round(time.Millisecond))
	if !torVirtualNet.Contains(v4) {
		t.Fatalf("%v not in %v", v4, torVirtualNet)
	}
	// The answer was sent after Tor confirmed the MAPADDRESS.
	wantMapped(t, o, v4, tornet.ZoneName)

	t.Run("same-name-same-address", func(t *testing.T) {
		if a := digOne(t, d.DNS, tornet.ZoneName, "A"); a != v4.String() {
			t.Fatalf("second answer %s, want %v", a, v4)
		}
		if a := digOne(t, d.DNS, "+tcp", strings.ToUpper(tornet.ZoneName), "A"); a != v4.String() {
			t.Fatalf("TCP, upper case: %s, want %v", a, v4)
		}
	})
	t.Run("socks4-through-socksd", func(t *testing.T) {
		// safe_socks and reject_internal are on: an IP-only request to a
		// loopback address passes only because it is a virtual one.
		r := curl(t, "--socks4", d.Listen, "http://"+v4.String()+":"+hp+"/via")
		r.wantOK(t)
		wantExit(t, n, r.Stdout)
	})
	t.Run("socks4-through-tor-socksport", func(t *testing.T) {
		// Tor's own SocksPort, no socksd: only Tor's MAPADDRESS can turn
		// the virtual address into example.test.
		r := curl(t, "--socks4", o.SOCKS, "http://"+v4.String()+":"+hp+"/via")
		r.wantOK(t)
		wantExit(t, n, r.Stdout)
	})
	t.Run("safe_socks-still-refuses-real-ip", func(t *testing.T) {
		// The control for the two above: a non-virtual IP is refused
		// (SOCKS4 91, curl exit 97) by safe_socks/reject_internal.
		r := curl(t, "--socks4", d.Listen, n.HTTPURL("/via"))
		if r.Code != 97 {
			t.Fatalf("want curl exit 97 (request rejected):\n%s", r)
		}
	})
	t.Run("unmapped-virtual-fails-closed", func(t *testing.T) {
		// An address of the pool that was never handed out: socksd must
		// not send it to Tor as a bare address.
		un := netip.MustParsePrefix(ex["v4"]).Addr().Next().Next().Next().Next().Next().Next().Next().Next()
		if m := o.mappings(t); m[un.String()] != "" {
			t.Fatalf("%v unexpectedly mapped", un)
		}
		r := curl(t, "--socks4", d.Listen, "http://"+un.String()+":"+hp+"/via")
		if r.Code != 97 {
			t.Fatalf("want curl exit 97 (request rejected):\n%s", r)
		}
	})
	t.Run("PTR", func(t *testing.T) {
		if a := digOne(t, d.DNS, "-x", v4.String()); a != tornet.ZoneName+"." {
			t.Fatalf("PTR %v = %q, want %s.", v4, a, tornet.ZoneName)
		}
		// An address of the pool nobody holds: NXDOMAIN, not a guess.
		un := netip.MustParsePrefix(ex["v4"]).Addr().Next().Next().Next().Next().Next().Next().Next().Next()
		if r := dig(t, d.DNS, "-x", un.String()); r.Status != "NXDOMAIN" {
			t.Fatalf("PTR of unmapped %v: want NXDOMAIN:\n%s", un, r.cmdResult)
		}
	})
	t.Run("AAAA", func(t *testing.T) {
		v6 := parseVirtual(t, digOne(t, d.DNS, tornet.ZoneName, "AAAA"), ex["v6"])
		wantMapped(t, o, v6, tornet.ZoneName)
		if a := digOne(t, d.DNS, "-x", v6.String()); a != tornet.ZoneName+"." {
			t.Fatalf("PTR %v = %q, want %s.", v6, a, tornet.ZoneName)
		}
		// SOCKS5 ATYP 4 with the IPv6 virtual address: Tor's bracketed
		// MAPADDRESS turns it back into the name.
		r := curl(t, "--socks5", d.Listen, "http://["+v6.String()+"]:"+hp+"/via")
		r.wantOK(t)
		wantExit(t, n, r.Stdout)
	})
	t.Run("MX-NOTIMP", func(t *testing.T) {
		for _, q := range []string{"MX", "TXT", "SRV"} {
			r := dig(t, d.DNS, tornet.ZoneName, q)
			if r.Code != 0 || r.Status != "NOTIMP" || len(r.Answers) != 0 {
				t.Fatalf("%s: want NOTIMP and no answer:\n%s", q, r.cmdResult)
			}
		}
	})
	t.Run("onion", func(t *testing.T) {
		va := parseVirtual(t, digOne(t, d.DNS, n.OnionHost, "A"), ex["v4"])
		wantMapped(t, o, va, n.OnionHost)
		r := curl(t, "--socks4", d.Listen, "http://"+va.String()+"/via")
		r.wantOK(t)
		if r.Stdout != "hs" {
			t.Fatalf("onion through its virtual address: /via = %q, want hs", r.Stdout)
		}
	})
	t.Run("RFC6761-names", func(t *testing.T) {
		for _, name := range []string{"localhost", "x.localhost", "nx.invalid", "printer.local"} {
			if r := dig(t, d.DNS, name, "A"); r.Status != "NXDOMAIN" {
				t.Fatalf("%s: want NXDOMAIN:\n%s", name, r.cmdResult)
			}
		}
	})
}

// TestDNSProxychains: a SOCKS4-only app. proxychains4 (socks4, proxy_dns
// OFF) lets curl resolve through the system resolver — glibc reading
// /etc/resolv.conf, which names the bridge (port 53, in a private mount
// namespace) — and then sends the virtual address to socksd over SOCKS4.
func TestDNSProxychains(t *testing.T) {
	n := needTornet(t)
	o := needOwnTor(t)
	ex := bridgeExtra(2)
	d := startDNSDaemon(t, BridgeConfig, free53(t), ex)
	dir := t.TempDir()
	host, _, _ := strings.Cut(d.DNS, ":")
	rc := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver "+host+"\noptions timeout:15 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "proxychains.conf")
	pc := "strict_chain\nquiet_mode\ntcp_read_time_out 30000\ntcp_connect_time_out 30000\n[ProxyList]\nsocks4 127.0.0.1 " + port(d.Listen) + "\n"
	if err := os.WriteFile(conf, []byte(pc), 0o644); err != nil {
		t.Fatal(err)
	}
	app := func(url string) cmdResult {
		argv := inResolvNS(rc, "proxychains4", "-q", "-f", conf, "curl", "-4", "-sS", "--max-time", "60", url)
		return runCmd(t, 120*time.Second, nil, argv[0], argv[1:]...)
	}
	for _, tc := range []struct{ name, host, url, want string }{
		{"name", tornet.HostName, "http://" + tornet.HostName + ":" + httpPortStr(n) + "/via", ""},
		{"onion", n.OnionHost, n.OnionURL("/via"), "hs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := app(tc.url)
			r.wantOK(t)
			if tc.want != "" && r.Stdout != tc.want {
				t.Fatalf("/via = %q, want %q", r.Stdout, tc.want)
			}
			if tc.want == "" {
				wantExit(t, n, r.Stdout)
			}
			// The name went to the bridge (it is mapped in Tor now, to an
			// address of this test's pool), not to any other resolver.
			pool := netip.MustParsePrefix(ex["v4"])
			found := false
			for from, to := range o.mappings(t) {
				if a, err := netip.ParseAddr(from); err == nil && pool.Contains(a) && to == tc.host {
					found = true
				}
			}
			if !found {
				t.Fatalf("no mapping for %s in the test's pool", tc.host)
			}
		})
	}
}

// TestDNSSuffixes: automap = "suffixes": .onion gets a virtual address,
// other names are resolved through Tor (at an exit) and get real answers.
func TestDNSSuffixes(t *testing.T) {
	n := needTornet(t)
	o := needOwnTor(t)
	ex := bridgeExtra(3)
	ex["automap"] = "suffixes"
	d := startDNSDaemon(t, BridgeConfig, "", ex)
	pool := netip.MustParsePrefix(ex["v4"])

	t.Run("A-through-tor", func(t *testing.T) {
		name := freshName("sfx")
		if a := digOne(t, d.DNS, name, "A"); a != "127.0.0.1" {
			t.Fatalf("%s = %s, want the real 127.0.0.1", name, a)
		}
		if countDNS(n, name) == 0 {
			t.Fatalf("the exits' DNS server never saw %s: not resolved through Tor", name)
		}
		if a := digOne(t, d.DNS, tornet.HostName, "A"); a != "127.0.0.1" {
			t.Fatalf("%s = %s, want 127.0.0.1", tornet.HostName, a)
		}
		if a := digOne(t, d.DNS, tornet.RevName, "A"); a != tornet.RevAddr {
			t.Fatalf("%s = %s, want %s", tornet.RevName, a, tornet.RevAddr)
		}
		for from, to := range o.mappings(t) {
			if a, err := netip.ParseAddr(from); err == nil && pool.Contains(a) && !strings.HasSuffix(to, ".onion") {
				t.Fatalf("non-suffix name mapped: %s → %s", from, to)
			}
		}
	})
	t.Run("PTR-through-tor", func(t *testing.T) {
		if a := digOne(t, d.DNS, "-x", tornet.RevAddr); a != tornet.RevName+"." {
			t.Fatalf("PTR %s = %q, want %s.", tornet.RevAddr, a, tornet.RevName)
		}
	})
	t.Run("nxdomain-through-tor", func(t *testing.T) {
		// The exits' zone REFUSEs names outside it; Tor reports failure.
		r := dig(t, d.DNS, "nosuch.unknown-zone.test", "A")
		if r.Status != "NXDOMAIN" && r.Status != "SERVFAIL" {
			t.Fatalf("want NXDOMAIN or SERVFAIL:\n%s", r.cmdResult)
		}
		if len(r.Answers) != 0 {
			t.Fatalf("answers for an unresolvable name: %v", r.Answers)
		}
	})
	t.Run("onion-automapped", func(t *testing.T) {
		va := parseVirtual(t, digOne(t, d.DNS, n.OnionHost, "A"), ex["v4"])
		wantMapped(t, o, va, n.OnionHost)
		r := curl(t, "--socks4", d.Listen, "http://"+va.String()+"/via")
		r.wantOK(t)
		if r.Stdout != "hs" {
			t.Fatalf("/via = %q, want hs", r.Stdout)
		}
	})
}

// TestDNSRestart: the table survives a socksd restart (state_dir), and a
// tor restart gets every mapping pushed again.
func TestDNSRestart(t *testing.T) {
	n := needTornet(t)
	o := needOwnTor(t)
	ex := bridgeExtra(4)
	d := startDNSDaemon(t, BridgeConfig, "", ex)
	hp := httpPortStr(n)
	names := []string{freshName("restart-a"), freshName("restart-b"), n.OnionHost}
	addrs := map[string]netip.Addr{}
	for _, name := range names {
		addrs[name] = parseVirtual(t, digOne(t, d.DNS, name, "A"), ex["v4"])
	}
	fetch := func(t *testing.T, name string) {
		t.Helper()
		url := "http://" + addrs[name].String() + ":" + hp + "/via"
		if strings.HasSuffix(name, ".onion") {
			url = "http://" + addrs[name].String() + "/via"
		}
		r := curl(t, "--socks4", d.Listen, url)
		r.wantOK(t)
		if strings.HasSuffix(name, ".onion") {
			if r.Stdout != "hs" {
				t.Fatalf("/via = %q, want hs", r.Stdout)
			}
		} else {
			wantExit(t, n, r.Stdout)
		}
	}
	fetch(t, names[0])

	t.Run("socksd", func(t *testing.T) {
		t0 := time.Now()
		d.restart(t)
		t.Logf("socksd restarted in %v", time.Since(t0).Round(time.Millisecond))
		for _, name := range names {
			if a := digOne(t, d.DNS, name, "A"); a != addrs[name].String() {
				t.Fatalf("after restart %s = %s, want the old %v", name, a, addrs[name])
			}
		}
		for _, name := range names {
			fetch(t, name)
		}
	})
	t.Run("tor-down-fails-closed", func(t *testing.T) {
		o.proc.Stop(10 * time.Second)
		t.Cleanup(func() {
			if o.proc.Exited() {
				o.startAgain(t) // the next test needs it
			}
		})
		// A cached name still answers from the table (apps keep working
		// once Tor is back), a stream to it fails at once with a SOCKS
		// error instead of going anywhere, and a new name cannot be
		// mapped (SERVFAIL).
		if a := digOne(t, d.DNS, names[0], "A"); a != addrs[names[0]].String() {
			t.Fatalf("cached name while tor is down: %s, want %v", a, addrs[names[0]])
		}
		r := curl(t, "--socks4", d.Listen, "http://"+addrs[names[0]].String()+":"+hp+"/via")
		if r.Code != 97 {
			t.Fatalf("tor down: want curl exit 97 (SOCKS4 rejected):\n%s", r)
		}
		if r := dig(t, d.DNS, freshName("tordown"), "A"); r.Status != "SERVFAIL" || len(r.Answers) != 0 {
			t.Fatalf("new name while tor is down: want SERVFAIL:\n%s", r.cmdResult)
		}
	})
	t.Run("tor", func(t *testing.T) {
		before := scrape(t, d.Metrics)
		t0 := time.Now()
		if o.proc.Exited() {
			o.startAgain(t)
		} else {
			o.restart(t)
		}
		up := time.Since(t0)
		// Tor starts with no controller mappings; socksd reconnects and
		// pushes the whole table again.
		var got map[string]string
		back := testutil.Poll(30*time.Second, pollEvery, func() bool {
			m, err := o.tryMappings()
			if err != nil {
				return false
			}
			got = m
			for _, name := range names {
				if m[addrs[name].String()] != name {
					return false
				}
			}
			return true
		})
		if !back {
			t.Fatalf("mappings not back in the restarted tor within 30s: %v\n%s", got, daemontest.Tail(d.Log(), 4000))
		}
		t.Logf("tor restarted (control port up) in %v; all %d mappings back in tor %v after that",
			up.Round(time.Millisecond), len(names), (time.Since(t0) - up).Round(time.Millisecond))
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := o.waitReady(ctx); err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			fetch(t, name)
		}
		after := scrape(t, d.Metrics)
		if got := metricSum(after, "socksd_dns_tor_repushes_total") - metricSum(before, "socksd_dns_tor_repushes_total"); got < 1 {
			t.Errorf("socksd_dns_tor_repushes_total moved by %v, want >= 1", got)
		}
		if got := metricSum(after, "socksd_tor_control_reconnects_total") - metricSum(before, "socksd_tor_control_reconnects_total"); got < 1 {
			t.Errorf("socksd_tor_control_reconnects_total moved by %v, want >= 1", got)
		}
	})
}
