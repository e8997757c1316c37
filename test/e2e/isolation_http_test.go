package e2e

import (
	"strings"
	"testing"
)

// TestIsolationHTTPHeaders: HTTP CONNECT's isolation headers (proposal
// 365), sent by real curl, on circuits as the client tor reports them:
// Tor-Stream-Isolation A, the same token as Proxy-Authorization tor-iso:A
// and as SOCKS5 <torS0X>0/A share one circuit; token B and no token each
// get another.
func TestIsolationHTTPHeaders(t *testing.T) {
	t.Parallel()
	r := newIsoRig(t, "iso-http", "")
	url := r.n.HTTPURL("/via")
	curlVia := func(args ...string) func() string {
		return func() string {
			res := curl(t, append(append([]string{"-p", "-x", "http://" + r.s.Addr}, args...), url)...)
			res.wantOK(t)
			return res.Stdout
		}
	}
	a1 := r.one(t, "Tor-Stream-Isolation: A", curlVia("--proxy-header", "Tor-Stream-Isolation: A"))
	b := r.one(t, "Tor-Stream-Isolation: B", curlVia("--proxy-header", "Tor-Stream-Isolation: B"))
	a2 := r.one(t, "Proxy-Authorization tor-iso:A", curlVia("--proxy-user", "tor-iso:A"))
	a3 := r.one(t, "X-Tor-Stream-Isolation: A", curlVia("--proxy-header", "X-Tor-Stream-Isolation: A"))
	a4 := r.one(t, "SOCKS5 <torS0X>0/A", func() string { return r.socks5Via(t, "<torS0X>0", "A", r.n.HTTPPort) })
	none := r.one(t, "no isolation header", curlVia())
	for _, h := range []isoHop{a2, a3, a4} {
		if h.circ != a1.circ {
			t.Errorf("token A on circuits %s and %s: one token, one circuit", a1.circ, h.circ)
		}
	}
	if b.circ == a1.circ || none.circ == a1.circ || none.circ == b.circ {
		t.Errorf("circuits A %s, B %s, none %s: want three", a1.circ, b.circ, none.circ)
	}
}

// TestCurlHTTPOptions: curl's OPTIONS * to the SOCKS port gets what the
// http-connect spec asks for, and one with a foreign Host gets nothing.
func TestCurlHTTPOptions(t *testing.T) {
	s := startSocksd(t, FrontendConfig)
	r := curl(t, "-i", "-X", "OPTIONS", "--request-target", "*", "http://"+s.Addr+"/")
	r.wantOK(t)
	for _, want := range []string{"HTTP/1.1 200 OK\r\n", "\r\nAllow: CONNECT, OPTIONS\r\n", "\r\nServer: tor/1.0 (socksd)\r\n", "\r\nTor-Capabilities: \r\n"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("OPTIONS answer lacks %q:\n%s", want, r.Stdout)
		}
	}
	r = curl(t, "-i", "-X", "OPTIONS", "--request-target", "*", "-H", "Host: rebound.example", "http://"+s.Addr+"/")
	if r.Code != 52 || r.Stdout != "" {
		t.Errorf("OPTIONS with a foreign Host: want curl exit 52 (empty reply):\n%s", r)
	}
}
