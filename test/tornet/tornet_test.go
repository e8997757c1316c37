package tornet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNetwork brings up a whole network (SOCKSD_TORNET=1) and checks what
// the e2e suite relies on, through the client tor directly (no socksd). It
// runs on the real profile unless $TORNET_PROFILE says otherwise, so the
// link injector is proven here while the e2e suite keeps the zero profile.
func TestNetwork(t *testing.T) {
	if os.Getenv("SOCKSD_TORNET") != "1" {
		t.Skip("real-Tor test: set SOCKSD_TORNET=1 (make test does) to bring up a private Tor network")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	profile := os.Getenv("TORNET_PROFILE")
	if profile == "" {
		profile = "real"
	}
	n, err := Start(ctx, Options{Logf: t.Logf, Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			n.cfg.keep = true
			t.Logf("keeping %s", n.Dir)
		}
		n.Close()
	})
	var total int64
	for name, b := range n.RSS() {
		total += b
		t.Logf("rss %s %.1f MiB", name, float64(b)/(1<<20))
	}
	t.Logf("timings %+v; rss total %.1f MiB", n.Timings, float64(total)/(1<<20))

	t.Run("TwoExitsTwoSources", func(t *testing.T) {
		// Streams pinned to different exits must reach the test server
		// from different exits — the outside view isolation tests use.
		seen := map[string]bool{}
		for _, e := range n.Exits[:2] {
			host := "pin-" + e.Nickname + ".tornet.test"
			if err := n.PinToExit(ctx, host, "127.0.0.1", e); err != nil {
				t.Fatal(err)
			}
			url := "http://" + host + ":" + strconv.Itoa(n.HTTPPort) + "/via"
			for range 2 {
				via, err := Get(ctx, n.SOCKSAddr(), url)
				if err != nil {
					t.Fatalf("%s: %v", url, err)
				}
				if via != e.Nickname {
					t.Fatalf("pinned to %s, arrived via %q", e.Nickname, via)
				}
			}
			seen[e.Nickname] = true
		}
		var vias []string
		for _, h := range n.HTTPLog() {
			if strings.HasPrefix(h.Host, "pin-") {
				vias = append(vias, h.Via)
			}
		}
		if !slices.Equal(vias, []string{"exit0", "exit0", "exit1", "exit1"}) {
			t.Fatalf("server log vias %v", vias)
		}
	})

	t.Run("NameResolvesAtExitOnly", func(t *testing.T) {
		body, err := Get(ctx, n.SOCKSAddr(), n.NameURL("/"))
		if err != nil || body != HelloBody {
			t.Fatalf("GET %s = %q, %v", n.NameURL("/"), body, err)
		}
		found := false
		for _, q := range n.DNSLog() {
			found = found || (strings.EqualFold(q.Name, HostName) && q.Type == "A" && q.Rcode == "NOERROR")
		}
		if !found {
			t.Fatalf("the test DNS server never saw %s: %+v", HostName, n.DNSLog())
		}
	})

	t.Run("Failures", func(t *testing.T) {
		for _, tc := range []struct {
			proxy, host string
			port        int
			code        byte
		}{
			// Exit connect() from 127.0.0.N to a non-loopback address: EINVAL,
			// END INTERNAL → general failure. By IP and via a name.
			{n.SOCKSAddrExt(), RevAddr, 80, 0x01},
			{n.SOCKSAddrExt(), RevName, 80, 0x01},
			// REFUSED/NXDOMAIN at the exit → host unreachable.
			{n.SOCKSAddrExt(), NXName, 80, 0x04},
			{n.SOCKSAddrExt(), "www.torproject.org", 80, 0x04},
			// Onion with a bad checksum → Tor's extended 0xF6.
			{n.SOCKSAddrExt(), badOnion(n.OnionHost), 80, 0xF6},
			{n.SOCKSAddr(), badOnion(n.OnionHost), 80, 0x01},
		} {
			c, err := DialSOCKS5(ctx, tc.proxy, tc.host, tc.port, "", "")
			if err == nil {
				c.Close()
				t.Errorf("%s:%d via %s: connected", tc.host, tc.port, tc.proxy)
				continue
			}
			var se *SOCKSError
			if !errors.As(err, &se) || se.Code != tc.code {
				t.Errorf("%s:%d via %s: %v, want reply 0x%02x", tc.host, tc.port, tc.proxy, err, tc.code)
			}
		}
	})

	t.Run("NonLoopbackThroughEachExit", func(t *testing.T) {
		// Pinned, so each exit's own EINVAL protection is checked, not
		// only the client's choice.
		for _, e := range n.Exits {
			host := "out-" + e.Nickname + ".tornet.test"
			if err := n.PinToExit(ctx, host, RevAddr, e); err != nil {
				t.Fatal(err)
			}
			c, err := DialSOCKS5(ctx, n.SOCKSAddrExt(), host, 80, "", "")
			var se *SOCKSError
			if err == nil {
				c.Close()
			}
			if !errors.As(err, &se) || se.Code != 0x01 {
				t.Errorf("%s to %s: %v, want reply 0x01", e.Nickname, RevAddr, err)
			}
		}
	})

	t.Run("Onion", func(t *testing.T) {
		via, err := Get(ctx, n.SOCKSAddr(), n.OnionURL("/via"))
		if err != nil || via != "hs" {
			t.Fatalf("onion /via = %q, %v", via, err)
		}
	})

	t.Run("Links", func(t *testing.T) {
		if n.cfg.profile.Direct {
			t.Skipf("profile %s has no links", n.Profile)
		}
		// Every relay was reached through its link, and the least a
		// link delays one way bounds a page's time from below.
		least := time.Hour
		for _, l := range n.Links() {
			if l.Name != "dns" && l.Stats().Conns == 0 {
				t.Errorf("link %s carried no connection", l.Name)
			}
			sh := l.Shape()
			least = min(least, max(sh.Latency-sh.Jitter, 0))
		}
		// On an open circuit: BEGIN crosses 3 links and CONNECTED 3 back,
		// the request 3 and the exit's link to the server, the answer the
		// same back: 14 crossings.
		t0 := time.Now()
		if via, err := Get(ctx, n.SOCKSAddr(), n.HTTPURL("/via")); err != nil || !strings.HasPrefix(via, "exit") {
			t.Fatalf("/via = %q, %v", via, err)
		}
		if d := time.Since(t0); d < 14*least {
			t.Errorf("a page took %v, less than 14 link crossings of at least %v", d, least)
		}

		// A stalled destination link holds the page.
		n.Link("http").Stall(time.Second)
		t0 = time.Now()
		if _, err := Get(ctx, n.SOCKSAddr(), n.HTTPURL("/")); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d < time.Second {
			t.Errorf("a page through a link stalled for 1 s took %v", d)
		}

		// Resetting every relay's connections breaks every circuit; Tor
		// builds new ones and a page goes through again.
		resets := 0
		for _, l := range n.Links() {
			resets += l.Reset()
		}
		if resets == 0 {
			t.Fatal("no connection to reset")
		}
		var last error
		for i := 0; i < 10; i++ {
			cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
			_, last = Get(cctx, n.SOCKSAddr(), n.HTTPURL("/"))
			ccancel()
			if last == nil {
				break
			}
		}
		if last != nil {
			t.Fatalf("after resetting %d connections: %v", resets, last)
		}
	})

	t.Run("ClientTorrc", func(t *testing.T) {
		// What socksd's managed-tor mode does: a fresh tor with only
		// ClientTorrc + its own DataDirectory/SocksPort joins the network.
		tc := n.ClientTorrc()
		if strings.Count(tc, "DirAuthority ") != 3 || !strings.Contains(tc, "TestingTorNetwork 1") {
			t.Fatalf("ClientTorrc:\n%s", tc)
		}
		dir := t.TempDir()
		socks := addr(n.cfg.ports.port(offSpare)) // reserved with the block
		torrc := filepath.Join(dir, "torrc")
		os.WriteFile(torrc, []byte(tc+"DataDirectory "+dir+"/data\nSocksPort "+socks+
			"\nLog notice file "+dir+"/notice.log\n__OwningControllerProcess "+strconv.Itoa(os.Getpid())+"\n"), 0o600)
		os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
		p, err := n.Spawn("managed", filepath.Join(dir, "stdout.log"), n.cfg.tor, "-f", torrc, "--defaults-torrc", filepath.Join(dir, "empty"))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop(5 * time.Second)
		var via string
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			if p.Exited() {
				t.Fatalf("tor exited: %v\n%s", p.Err(), tail(filepath.Join(dir, "stdout.log"), 20))
			}
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			via, err = Get(cctx, socks, n.HTTPURL("/via"))
			ccancel()
			if err == nil {
				break
			}
			select {
			case <-p.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		if _, ok := n.ExitByName(via); !ok {
			t.Fatalf("through a ClientTorrc tor: via %q, %v\n%s", via, err, tail(filepath.Join(dir, "notice.log"), 20))
		}
	})
}

// badOnion flips the checksum bytes of a v3 onion address.
func badOnion(h string) string {
	if len(h) != 62 {
		return "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaad.onion"
	}
	b := []byte(h)
	if b[52] == 'a' {
		b[52] = 'b'
	} else {
		b[52] = 'a'
	}
	return string(b)
}
