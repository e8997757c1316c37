package e2e

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"socksd/socks5"
	"socksd/socksproto"
)

// Per-stream options (README "Per-stream options") on the private
// network, circuits as the client tor reports them.

// streamOptionsRig is an isolation rig whose socksd has a second
// listener reading SOCKS credentials as pt-spec arguments, in the same
// session group as the first, so a token is comparable across them.
func streamOptionsRig(t *testing.T, name, torExtra string) (*isoRig, string) {
	t.Helper()
	n := needTornet(t)
	ct := startClientTor(t, name)
	obs := ct.observer(t)
	pt := freeTCP(t)
	cfg := attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt, TorExtra: torExtra}) + fmt.Sprintf(`
[[socks.listener]]
listen = %q
session_group = "{{.Listen}}"
pt_args = true
`, pt)
	s := startSocksd(t, cfg)
	torWaitController(t, obs, s)
	return &isoRig{n: n, ct: ct, obs: obs, s: s}, pt
}

// extSOCKS5 opens a SOCKS5 CONNECT through proxy with method 0x97 and
// pairs, sends early, and returns the reply code and the connection.
func extSOCKS5(t *testing.T, proxy string, pairs [][2]string, host string, port int, early []byte) (byte, net.Conn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(90 * time.Second))
	msg := append([]byte{5, 1, socks5.MethodTorExtended}, socks5.AppendExtAuth(nil, pairs...)...)
	msg = append(msg, 5, 1, 0, 3, byte(len(host)))
	msg = append(msg, host...)
	msg = binary.BigEndian.AppendUint16(msg, uint16(port))
	if _, err := c.Write(append(msg, early...)); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 2+4+10)
	if _, err := io.ReadFull(c, head); err != nil {
		t.Fatalf("0x97 via %s: %v (got % x)", proxy, err, head)
	}
	if string(head[:6]) != "\x05\x97\x01\x00\x00\x00" {
		t.Fatalf("0x97 via %s: method/status % x", proxy, head[:6])
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return head[7], c
}

func (r *isoRig) extVia(t *testing.T, pairs ...[2]string) string {
	t.Helper()
	code, c := extSOCKS5(t, r.s.Addr, pairs, "127.0.0.1", r.n.HTTPPort, []byte("GET /via HTTP/1.0\r\nHost: x\r\n\r\n"))
	if code != 0 {
		t.Fatalf("0x97 %v: reply %#x", pairs, code)
	}
	return torReadBody(t, c)
}

// TestStreamOptionsTokens: two tokens never share a circuit, whichever
// form carried them, and one token is one circuit across all forms: SOCKS5
// method 0x97, pt-spec arguments (SOCKS5, curl's and SOCKS4), the <torS0X>0
// username and HTTP CONNECT's Tor-Stream-Isolation and Tor-Stream-Options
// (real curl).
func TestStreamOptionsTokens(t *testing.T) {
	t.Parallel()
	r, pt := streamOptionsRig(t, "opt-tokens", "")
	ptSOCKS5 := func(args string) func() string {
		return func() string {
			u, p := socksproto.SplitArgs([]byte(args))
			res := torSOCKS5(t, pt, string(u), string(p), torCmdConnect, "127.0.0.1", r.n.HTTPPort, []byte("GET /via HTTP/1.0\r\nHost: x\r\n\r\n"))
			if res.Code != 0 {
				t.Fatalf("pt-spec %q: reply %#x", args, res.Code)
			}
			return torReadBody(t, res.Conn)
		}
	}
	hops := map[string][]isoHop{}
	for _, tok := range []string{"A", "B"} {
		hops[tok] = append(hops[tok],
			r.one(t, tok+" 0x97", func() string { return r.extVia(t, [2]string{"isolation", tok}) }),
			r.one(t, tok+" pt-spec socks5", ptSOCKS5("isolation="+tok)),
			r.one(t, tok+" pt-spec curl", func() string {
				// The README's example: curl sends an empty password.
				res := curl(t, "--socks5-hostname", pt, "--proxy-user", "isolation="+tok+";keep_alive=1:", r.n.HTTPURL("/via"))
				res.wantOK(t)
				return res.Stdout
			}),
			r.one(t, tok+" pt-spec socks4", func() string {
				code, c := torSOCKS4(t, pt, "isolation="+tok, "127.0.0.1", r.n.HTTPPort)
				if code != 0x5A {
					t.Fatalf("SOCKS4 pt-spec: %#x", code)
				}
				return torTunnelGet(t, c, nil, "x", "/via")
			}),
			r.one(t, tok+" <torS0X>0", func() string { return r.socks5Via(t, socksproto.TorIsolationUsername, tok, r.n.HTTPPort) }),
			r.one(t, tok+" Tor-Stream-Isolation", func() string {
				res := curl(t, "-p", "-x", "http://"+r.s.Addr, "--proxy-header", "Tor-Stream-Isolation: "+tok, r.n.HTTPURL("/via"))
				res.wantOK(t)
				return res.Stdout
			}),
			r.one(t, tok+" Tor-Stream-Options", func() string {
				res := curl(t, "-p", "-x", "http://"+r.s.Addr, "--proxy-header", "Tor-Stream-Options: isolation="+tok, r.n.HTTPURL("/via"))
				res.wantOK(t)
				return res.Stdout
			}))
	}
	for tok, hs := range hops {
		for _, h := range hs[1:] {
			if h.circ != hs[0].circ {
				t.Errorf("token %s on circuits %s and %s: one token, one circuit", tok, hs[0].circ, h.circ)
			}
		}
	}
	for _, a := range hops["A"] {
		for _, b := range hops["B"] {
			if a.circ == b.circ {
				t.Errorf("tokens A and B share circuit %s", a.circ)
			}
		}
	}
}

// TestStreamOptionsFreshOnion: fresh streams each get a circuit of their
// own; onion_only refuses an exit destination with 0x02 and reaches the
// onion service.
func TestStreamOptionsFreshOnion(t *testing.T) {
	t.Parallel()
	r, _ := streamOptionsRig(t, "opt-fresh", "")
	plain := r.one(t, "token F", func() string { return r.extVia(t, [2]string{"isolation", "F"}) })
	seen := map[string]bool{plain.circ: true}
	for i := range 3 {
		h := r.one(t, fmt.Sprintf("token F fresh #%d", i), func() string {
			return r.extVia(t, [2]string{"isolation", "F"}, [2]string{"fresh", "1"})
		})
		if seen[h.circ] {
			t.Errorf("fresh stream %d on circuit %s, already used", i, h.circ)
		}
		seen[h.circ] = true
	}
	again := r.one(t, "token F again", func() string { return r.extVia(t, [2]string{"isolation", "F"}) })
	if again.circ != plain.circ {
		t.Errorf("token F moved from circuit %s to %s after fresh streams", plain.circ, again.circ)
	}

	oo := [][2]string{{"onion_only", "1"}}
	if code, _ := extSOCKS5(t, r.s.Addr, oo, "127.0.0.1", r.n.HTTPPort, nil); code != 0x02 {
		t.Errorf("onion_only to an exit destination: reply %#x, want 0x02", code)
	}
	code, c := extSOCKS5(t, r.s.Addr, oo, r.n.OnionHost, 80, []byte("GET /via HTTP/1.0\r\nHost: x\r\n\r\n"))
	if code != 0 {
		t.Fatalf("onion_only to the onion service: reply %#x", code)
	}
	if body := torReadBody(t, c); body != "hs" {
		t.Errorf("onion service /via answered %q, want hs", body)
	}
}

// TestStreamOptionsLifetime: a stream's lifetime (6 s) shortens its
// identity's circuit lifetime (circuit_lifetime is 10 minutes here): within
// it the identity keeps its circuit, after it a new stream gets a new one.
func TestStreamOptionsLifetime(t *testing.T) {
	t.Parallel()
	r, _ := streamOptionsRig(t, "opt-lifetime", `circuit_lifetime = "10m"`)
	const lifetime = 6 * time.Second
	opts := [][2]string{{"isolation", "L"}, {"lifetime", "6"}}
	start := time.Now()
	first := r.one(t, "L first", func() string { return r.extVia(t, opts...) })
	// The lifetime counts from the circuit's first stream, which began
	// after start and was attached before r.one returned.
	firstDone := time.Now()
	if time.Since(start) < lifetime/2 {
		second := r.one(t, "L within lifetime", func() string { return r.extVia(t, opts...) })
		if second.circ != first.circ {
			t.Errorf("within its lifetime the identity moved from circuit %s to %s", first.circ, second.circ)
		}
	} else {
		t.Logf("first stream took %v: the within-lifetime check is skipped", time.Since(start))
	}
	time.Sleep(time.Until(firstDone.Add(lifetime + time.Second)))
	third := r.one(t, "L after lifetime", func() string { return r.extVia(t, opts...) })
	if third.circ == first.circ {
		t.Errorf("after its %v lifetime the identity still used circuit %s", lifetime, first.circ)
	}
}

// TestStreamOptionsHTTP: HTTP CONNECT's Tor-Stream-Options header, sent
// by real curl: fresh streams each get a circuit of their own; onion_only
// refuses an exit destination (403, Tor-Request-Failed 0x02) and reaches
// the onion service; an unknown key is a 400 that says why.
func TestStreamOptionsHTTP(t *testing.T) {
	t.Parallel()
	r := newIsoRig(t, "opt-http", "")
	proxy := "http://" + r.s.Addr
	curlVia := func(args ...string) func() string {
		return func() string {
			res := curl(t, append(append([]string{"-p", "-x", proxy}, args...), r.n.HTTPURL("/via"))...)
			res.wantOK(t)
			return res.Stdout
		}
	}
	fresh := []string{"--proxy-header", "Tor-Stream-Options: fresh=1"}
	plain := r.one(t, "no options", curlVia())
	seen := map[string]bool{plain.circ: true}
	for i := range 3 {
		h := r.one(t, fmt.Sprintf("fresh=1 #%d", i), curlVia(fresh...))
		if seen[h.circ] {
			t.Errorf("fresh stream %d on circuit %s, already used", i, h.circ)
		}
		seen[h.circ] = true
	}
	if again := r.one(t, "no options again", curlVia()); again.circ != plain.circ {
		t.Errorf("the plain identity moved from circuit %s to %s after fresh streams", plain.circ, again.circ)
	}

	// refused runs curl -v and returns the CONNECT status and the
	// Tor-Request-Failed header curl printed.
	refused := func(header, url string) (string, string) {
		t.Helper()
		res := curl(t, "-v", "-p", "-x", proxy, "-w", "%{http_connect}", "--proxy-header", header, url)
		if res.Code == 0 {
			t.Fatalf("%s: curl succeeded:\n%s", header, res)
		}
		var failed string
		for _, l := range strings.Split(res.Stderr, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "< Tor-Request-Failed: "); ok {
				failed = v
			}
		}
		return strings.TrimSpace(res.Stdout), failed
	}
	oo := "Tor-Stream-Options: onion_only=1"
	if status, failed := refused(oo, r.n.HTTPURL("/via")); status != "403" || !strings.HasPrefix(failed, "0x02 ") {
		t.Errorf("onion_only to an exit destination: status %s, Tor-Request-Failed %q; want 403, 0x02", status, failed)
	}
	res := curl(t, "-p", "-x", proxy, "--proxy-header", oo, r.n.OnionURL("/via"))
	res.wantOK(t)
	if res.Stdout != "hs" {
		t.Errorf("onion_only to the onion service: /via answered %q, want hs", res.Stdout)
	}
	status, failed := refused("Tor-Stream-Options: colour=red", r.n.HTTPURL("/via"))
	if status != "400" || !strings.HasPrefix(failed, "0x01 Tor-Stream-Options") || !strings.Contains(failed, "colour") {
		t.Errorf("unknown key: status %s, Tor-Request-Failed %q; want 400 naming the key", status, failed)
	}
}
