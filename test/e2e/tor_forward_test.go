package e2e

import (
	"crypto/ed25519"
	"crypto/sha3"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"socksd/test/tornet"
)

// Tor-upstream proofs against real tor: socksd is the controller of a private
// client tor (attach_streams = true); the tests' own control connection
// (torObserver) reports which circuit each stream used.

// torWantCircuitExit fails unless the exit the destination saw (/via) is the
// last isoHop of circuit c as Tor reported it.
func torWantCircuitExit(t *testing.T, n *tornet.Network, c torCircEv, via string) {
	t.Helper()
	e, ok := n.ExitByName(via)
	if !ok {
		t.Fatalf("stream arrived via %q, want one of the exits", via)
	}
	if fp := c.exitFP(); !strings.EqualFold(fp, e.Fingerprint) {
		t.Fatalf("destination saw %s (%s) but Tor says circuit %s ends at %s (path %s)", via, e.Fingerprint, c.ID, fp, c.Path)
	}
}

// TestTorAttachCurl: every client form reaches the test server through an
// exit, on a circuit socksd built (PURPOSE=CONTROLLER, launched while the
// test watched), and the exit the server saw is that circuit's last isoHop.
func TestTorAttachCurl(t *testing.T) {
	t.Parallel()
	n := needTornet(t)
	ct := startClientTor(t, "attach")
	obs := ct.observer(t)
	s := startSocksd(t, attachConfig(ct, attachOpts{})) // SocksPort discovered (GETINFO net/listeners/socks)
	torWaitController(t, obs, s)

	byIP, byName := n.HTTPURL("/via"), n.NameURL("/via")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"socks4", []string{"--socks4", s.Addr, byIP}},
		{"socks4a", []string{"--socks4a", s.Addr, byName}},
		{"socks5", []string{"--socks5", s.Addr, byIP}},
		{"socks5-hostname", []string{"--socks5-hostname", s.Addr, byName}},
		{"http-connect", []string{"-p", "-x", "http://" + s.Addr, byName}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := obs.mark()
			r := curl(t, tc.args...)
			r.wantOK(t)
			circs := obs.streamsSince(t, mark, 1)
			c := obs.wantSocksdCircuit(t, circs[0])
			torWantCircuitExit(t, n, c, r.Stdout)
			ids := obs.userStreams(mark)
			ev := obs.streamEvents(ids[0])
			// chain sends the isolation key as <torS0X>0 credentials
			// (proposal 351 format 0): Tor reports them on NEW.
			if u := ev[0].KV["SOCKS_USERNAME"]; u != "<torS0X>0" {
				t.Errorf("stream %s NEW SOCKS_USERNAME=%q, want <torS0X>0", ids[0], u)
			}
			if !slices.ContainsFunc(ev, func(e torStreamEv) bool { return e.Status == "SENTCONNECT" && e.Circ == c.ID }) {
				t.Errorf("stream %s never SENTCONNECT on %s: %+v", ids[0], c.ID, ev)
			}
			t.Logf("%s: stream %s on socksd circuit %s, exit %s", tc.name, ids[0], c.ID, r.Stdout)
		})
	}
	t.Run("status-json", func(t *testing.T) {
		// While a stream is open, socksd's /status lists its identity
		// with the circuit Tor says the stream is on, under the key Tor
		// received as the <torS0X>0 password.
		mark := obs.mark()
		res := torSOCKS5(t, s.Addr, "status-user", "pw", torCmdConnect, "127.0.0.1", n.HTTPPort, nil)
		if res.Code != 0 {
			t.Fatalf("reply %#x", res.Code)
		}
		circ := obs.streamsSince(t, mark, 1)[0]
		obs.wantSocksdCircuit(t, circ)
		key := obs.streamEvents(obs.userStreams(mark)[0])[0].KV["SOCKS_PASSWORD"]
		code, body := torAdminGet(t, s, "/status")
		var st struct {
			Identities []struct {
				Key      string
				Streams  int
				Circuits []string
			}
		}
		if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
			t.Fatalf("GET /status: %d %v\n%s", code, err, body)
		}
		found := false
		for _, id := range st.Identities {
			if id.Key == key && slices.Contains(id.Circuits, circ) && id.Streams >= 1 {
				found = true
			}
		}
		if !found {
			t.Fatalf("/status has no identity %q with circuit %s:\n%s", key, circ, body)
		}
		if via := torTunnelGet(t, res.Conn, nil, "x", "/via"); via == "" {
			t.Fatal("no page over the listed stream")
		}
	})
}

// TestTorResolveAttached: tor-resolve through socksd as Tor's controller:
// F0 over SOCKS4a and SOCKS5, F1 (PTR); names asked fresh reach the exits'
// DNS server, so the answer came through the network.
func TestTorResolveAttached(t *testing.T) {
	t.Parallel()
	n := needTornet(t)
	ct := startClientTor(t, "resolve")
	obs := ct.observer(t)
	s := startSocksd(t, attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt}))
	torWaitController(t, obs, s)
	n4, n5 := freshName("res4"), freshName("res5")
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		asked string // a name the exits' DNS server must have seen
	}{
		{"socks4a-F0", []string{"-4", n4}, "127.0.0.1\n", n4},
		{"socks5-F0", []string{"-5", n5}, "127.0.0.1\n", n5},
		{"socks5-F0-rev", []string{"-5", tornet.RevName}, tornet.RevAddr + "\n", ""},
		{"socks5-F1", []string{"-x", tornet.RevAddr}, tornet.RevName + "\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCmd(t, 60*time.Second, nil, "tor-resolve", append(tc.args, s.Addr)...)
			if r.Code != 0 || r.Stdout != tc.want {
				t.Fatalf("want %q:\n%s", tc.want, r)
			}
			if tc.asked != "" && countDNS(n, tc.asked) == 0 {
				t.Fatalf("the exits' DNS server never saw %s", tc.asked)
			}
		})
	}
	t.Run("socks5-F0-nxdomain", func(t *testing.T) {
		// Tor's failed RESOLVE: 05 04 00 00 00000000 0000 (ATYP 0).
		res := torSOCKS5(t, s.Addr, "", "", torCmdResolve, tornet.NXName, 0, nil)
		if res.Code != 0x04 || res.ATYP != 0 || string(res.Addr) != "\x00\x00\x00\x00" {
			t.Fatalf("RESOLVE %s: code %#x ATYP %d addr % x; want 0x04, ATYP 0, 0.0.0.0", tornet.NXName, res.Code, res.ATYP, res.Addr)
		}
	})
	t.Run("socks5-F1-raw", func(t *testing.T) {
		res := torSOCKS5(t, s.Addr, "", "", torCmdResolvePTR, tornet.RevAddr, 0, nil)
		if res.Code != 0 || res.ATYP != 3 || string(res.Addr) != tornet.RevName {
			t.Fatalf("RESOLVE_PTR %s: code %#x ATYP %d %q; want 0, ATYP 3, %q", tornet.RevAddr, res.Code, res.ATYP, res.Addr, tornet.RevName)
		}
	})
	// Every resolve stream was attached by the controller: none is left
	// waiting (GETINFO stream-status lists only live streams).
	if ss := obs.getInfo(t, "stream-status"); strings.TrimSpace(ss) != "" {
		t.Errorf("streams left in tor after the resolves:\n%s", ss)
	}
}

// torAbsentOnion makes a well-formed v3 onion address for a fresh key
// (rend-spec-v3 §6: base32(PUBKEY | CHECKSUM | VERSION), CHECKSUM =
// SHA3-256(".onion checksum" | PUBKEY | VERSION)[:2]); no such service
// exists.
func torAbsentOnion(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub)
	h.Write([]byte{3})
	raw := append(append(append([]byte{}, pub...), h.Sum(nil)[:2]...), 3)
	return strings.ToLower(base32.StdEncoding.EncodeToString(raw)) + ".onion"
}

// onionHTTPStatus is the CONNECT status for each onion-service code
// (httpguard.StatusFor's documented table, restated so the test does not
// check the code against itself): the service could not be reached 503,
// client authorisation 403, a malformed address 400, a timeout 504.
var onionHTTPStatus = map[byte]int{
	0xF0: 503, 0xF1: 503, 0xF2: 503, 0xF3: 503,
	0xF4: 403, 0xF5: 403, 0xF6: 400, 0xF7: 504,
}

// TestTorOnionReplies: the onion service is reached; an absent service
// gets the code real tor sends on an ExtendedErrors SocksPort (measured
// here first, straight from the network's client), mapped to 0x5B for
// SOCKS4a and to an HTTP status + Tor-Request-Failed for CONNECT; a
// malformed address gets F6; with extended_errors = false the code a
// plain SocksPort gives.
func TestTorOnionReplies(t *testing.T) {
	t.Parallel()
	n := needTornet(t)
	ct := startClientTor(t, "onion")
	obs := ct.observer(t)

	// What tor itself answers, with and without ExtendedErrors (before
	// socksd becomes its controller).
	absent, bad := torAbsentOnion(t), badOnion(n)
	torExtAbsent := torSOCKS5(t, ct.SOCKSExt, "", "", torCmdConnect, torAbsentOnion(t), 80, nil).Code
	torExtBad := torSOCKS5(t, ct.SOCKSExt, "", "", torCmdConnect, bad, 80, nil).Code
	torPlainAbsent := torSOCKS5(t, ct.SOCKS, "", "", torCmdConnect, torAbsentOnion(t), 80, nil).Code
	torPlainBad := torSOCKS5(t, ct.SOCKS, "", "", torCmdConnect, bad, 80, nil).Code
	t.Logf("tor itself: absent onion %#x (ExtendedErrors) / %#x (plain); malformed %#x / %#x",
		torExtAbsent, torPlainAbsent, torExtBad, torPlainBad)
	if torExtAbsent < 0xF0 || torExtAbsent > 0xF7 {
		t.Fatalf("tor's ExtendedErrors port answered an absent onion with %#x, not an F-code", torExtAbsent)
	}
	if torExtBad != 0xF6 {
		t.Fatalf("tor's ExtendedErrors port answered a malformed onion with %#x, want 0xF6", torExtBad)
	}

	t.Run("extended", func(t *testing.T) {
		s := startSocksd(t, attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt}))
		torWaitController(t, obs, s)
		mark := obs.mark()
		r := curl(t, "--socks5-hostname", s.Addr, n.OnionURL("/via"))
		r.wantOK(t)
		if r.Stdout != "hs" {
			t.Fatalf("onion /via = %q, want hs", r.Stdout)
		}
		// .onion streams go back to Tor (circuit 0), which builds the
		// rendezvous circuit itself: the stream must not be on a
		// CONTROLLER circuit.
		circs := obs.streamsSince(t, mark, 1)
		if c, _ := obs.circ(circs[0]); c.Purposes["CONTROLLER"] {
			t.Errorf("onion stream on controller circuit %+v", c)
		}

		if got := torSOCKS5(t, s.Addr, "", "", torCmdConnect, absent, 80, nil).Code; got != torExtAbsent {
			t.Errorf("SOCKS5 absent onion: %#x, want %#x as tor sends", got, torExtAbsent)
		}
		if got := torSOCKS5(t, s.Addr, "", "", torCmdConnect, bad, 80, nil).Code; got != 0xF6 {
			t.Errorf("SOCKS5 malformed onion: %#x, want 0xf6", got)
		}
		if got, _ := torSOCKS4(t, s.Addr, "", torAbsentOnion(t), 80); got != 0x5B {
			t.Errorf("SOCKS4a absent onion: %#x, want 0x5b", got)
		}
		if got, _ := torSOCKS4(t, s.Addr, "", bad, 80); got != 0x5B {
			t.Errorf("SOCKS4a malformed onion: %#x, want 0x5b", got)
		}
		for _, tc := range []struct {
			host string
			code byte
		}{{torAbsentOnion(t), torExtAbsent}, {bad, 0xF6}} {
			status, hdr, _, _ := torHTTPConnect(t, s.Addr, tc.host+":80", "", "")
			want := fmt.Sprintf("0x%02x ", tc.code)
			if status != onionHTTPStatus[tc.code] || !strings.HasPrefix(hdr.Get("Tor-Request-Failed"), want) {
				t.Errorf("CONNECT %s: %d, Tor-Request-Failed %q; want %d and %q...", tc.host, status, hdr.Get("Tor-Request-Failed"), onionHTTPStatus[tc.code], want)
			} else {
				t.Logf("CONNECT %s...: %d Tor-Request-Failed: %s", tc.host[:8], status, hdr.Get("Tor-Request-Failed"))
			}
		}
		s.Proc.Stop(10 * time.Second) // one controller per tor at a time
	})

	t.Run("extended_errors=false", func(t *testing.T) {
		s := startSocksd(t, attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt, NoExtended: true}))
		torWaitController(t, obs, s)
		// false = the code tor's own plain SocksPort answers, as measured
		// above (0x04 for an absent onion, 0x01 for a malformed one).
		for _, tc := range []struct {
			name, host string
			tor        byte
		}{{"absent", absent, torPlainAbsent}, {"malformed", bad, torPlainBad}} {
			got := torSOCKS5(t, s.Addr, "", "", torCmdConnect, tc.host, 80, nil).Code
			if got != tc.tor {
				t.Errorf("%s onion: %#x, want %#x as tor's plain SocksPort sends", tc.name, got, tc.tor)
			}
			t.Logf("%s onion, extended_errors=false: socksd %#x, tor's plain SocksPort %#x", tc.name, got, tc.tor)
		}
		if got, _ := torSOCKS4(t, s.Addr, "", absent, 80); got != 0x5B {
			t.Errorf("SOCKS4a absent onion: %#x, want 0x5b", got)
		}
		status, hdr, _, _ := torHTTPConnect(t, s.Addr, absent+":80", "", "")
		if status != 503 || !strings.HasPrefix(hdr.Get("Tor-Request-Failed"), "0x04 ") {
			t.Errorf("CONNECT absent onion: %d, Tor-Request-Failed %q; want 503 and 0x04", status, hdr.Get("Tor-Request-Failed"))
		}
	})
}

// TestTorOptimisticData: a client that writes greeting, request and an
// HTTP GET in ONE write gets its page through socksd; the time to the
// first response byte through socksd is compared with a client talking
// straight to the SocksPort of an identical tor nobody controls,
// interleaved, on warm circuits.
func TestTorOptimisticData(t *testing.T) {
	t.Parallel()
	n := needTornet(t)
	ct := startClientTor(t, "ttfb")
	plain := startClientTor(t, "ttfb-direct")
	obs := ct.observer(t)
	s := startSocksd(t, attachConfig(ct, attachOpts{SOCKS: ct.SOCKS}))
	torWaitController(t, obs, s)

	get := []byte("GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
	ttfb := func(proxy string) time.Duration {
		t.Helper()
		r, err := torSOCKS5Try(proxy, "", "", torCmdConnect, "127.0.0.1", n.HTTPPort, get, 60*time.Second)
		if err != nil || r.Code != 0 {
			t.Fatalf("via %s: code %#x, %v", proxy, r.Code, err)
		}
		defer r.Conn.Close()
		t0 := r.Sent // the single write
		var b [1]byte
		if _, err := io.ReadFull(r.Conn, b[:]); err != nil {
			t.Fatalf("via %s: no response: %v", proxy, err)
		}
		d := time.Since(t0)
		rest, _ := io.ReadAll(r.Conn)
		if body := string(b[:]) + string(rest); !strings.HasPrefix(body, "HTTP/1.") || !strings.HasSuffix(body, tornet.HelloBody) {
			t.Fatalf("via %s: response %q", proxy, body)
		}
		return d
	}
	// Warm up: socksd's circuit for this key, tor's own circuit.
	ttfb(s.Addr)
	ttfb(plain.SOCKS)
	const samples = 21
	var viaSocksd, direct []time.Duration
	for i := range samples {
		if i%2 == 0 {
			viaSocksd = append(viaSocksd, ttfb(s.Addr))
			direct = append(direct, ttfb(plain.SOCKS))
		} else {
			direct = append(direct, ttfb(plain.SOCKS))
			viaSocksd = append(viaSocksd, ttfb(s.Addr))
		}
	}
	slices.Sort(viaSocksd)
	slices.Sort(direct)
	ms, md := viaSocksd[samples/2], direct[samples/2]
	ratio := float64(ms) / float64(md)
	t.Logf("TTFB median: via socksd %v, tor SocksPort directly %v, ratio %.3f (target <= 1.05); p10/p90 socksd %v/%v direct %v/%v",
		ms, md, ratio, viaSocksd[samples/10], viaSocksd[samples*9/10], direct[samples/10], direct[samples*9/10])
	if ratio > 3 {
		t.Errorf("socksd's median time to first byte is %.2f times tor's (sanity bound 3)", ratio)
	}
}
