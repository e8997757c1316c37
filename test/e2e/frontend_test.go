package e2e

import (
	"context"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"socksd/httpguard"
	"socksd/test/tornet"
)

// Front-end tests: real clients → socksd (plain chaining,
// FrontendConfig) → the client tor → an exit or the onion service → the
// test HTTP server. Pages that answer /via prove the path: an exit's name
// (exit0..) only comes back if the stream left through the Tor network.

// wantExit fails unless via names one of the network's exits.
func wantExit(t *testing.T, n *tornet.Network, via string) {
	t.Helper()
	if _, ok := n.ExitByName(via); !ok {
		t.Fatalf("stream arrived via %q, want one of the exits", via)
	}
}

func TestCurlSOCKS(t *testing.T) {
	n := needTornet(t)
	s := startSocksd(t, FrontendConfig)
	byIP := n.HTTPURL("/via")
	byName := n.NameURL("/via")
	for _, tc := range []struct {
		name, flag, url string
	}{
		{"socks4/ip", "--socks4", byIP},
		{"socks4a/ip", "--socks4a", byIP},
		{"socks4a/name", "--socks4a", byName},
		{"socks5/ip", "--socks5", byIP},
		{"socks5-hostname/ip", "--socks5-hostname", byIP},
		{"socks5-hostname/name", "--socks5-hostname", byName},
		{"socks5h-url/name", "-x", byName}, // proxy URL form, below
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxyArg := s.Addr
			if tc.flag == "-x" {
				proxyArg = "socks5h://" + s.Addr
			}
			r := curl(t, tc.flag, proxyArg, tc.url)
			r.wantOK(t)
			wantExit(t, n, r.Stdout)
		})
	}
	t.Run("socks5/hello", func(t *testing.T) {
		r := curl(t, "--socks5-hostname", s.Addr, n.NameURL("/"))
		r.wantOK(t)
		if r.Stdout != tornet.HelloBody {
			t.Fatalf("body %q, want %q", r.Stdout, tornet.HelloBody)
		}
	})
	t.Run("socks5-hostname/onion", func(t *testing.T) {
		r := curl(t, "--socks5-hostname", s.Addr, n.OnionURL("/via"))
		r.wantOK(t)
		if r.Stdout != "hs" {
			t.Fatalf("onion /via = %q, want hs", r.Stdout)
		}
	})
	t.Run("socks4a/onion", func(t *testing.T) {
		r := curl(t, "--socks4a", s.Addr, n.OnionURL("/via"))
		r.wantOK(t)
		if r.Stdout != "hs" {
			t.Fatalf("onion /via = %q, want hs", r.Stdout)
		}
	})
	t.Run("socks5-hostname/bulk", func(t *testing.T) {
		const size = 1 << 20
		r := curl(t, "--socks5-hostname", s.Addr, n.NameURL("/bytes?n="+strconv.Itoa(size)))
		r.wantOK(t)
		if r.Stdout != string(tornet.Pattern(size)) {
			t.Fatalf("1 MiB body differs (got %d bytes)", len(r.Stdout))
		}
	})
	t.Run("socks5/nxdomain", func(t *testing.T) {
		// Name refused at the exit: Tor's 0x04 → curl's SOCKS5 error 97.
		r := curl(t, "--socks5-hostname", s.Addr, "http://"+tornet.NXName+"/")
		if r.Code != 97 || !strings.Contains(r.Stderr, "(4)") {
			t.Fatalf("want curl exit 97 with SOCKS reply 4:\n%s", r)
		}
	})
	t.Run("socks5/non-loopback", func(t *testing.T) {
		// The exit's connect() from its loopback bind address fails with
		// EINVAL → END INTERNAL → 0x01.
		r := curl(t, "--socks5", s.Addr, "http://"+tornet.RevAddr+"/")
		if r.Code != 97 || !strings.Contains(r.Stderr, "(1)") {
			t.Fatalf("want curl exit 97 with SOCKS reply 1:\n%s", r)
		}
	})
}

func TestCurlHTTPProxy(t *testing.T) {
	n := needTornet(t)
	s := startSocksd(t, FrontendConfig)
	t.Run("plain-GET-foreign-host-closed", func(t *testing.T) {
		// -x http:// for a named site sends "GET http://name/ HTTP/1.1"
		// with "Host: name": not this machine, so socksd closes without
		// a byte (DNS-rebinding defence) and forwards nothing.
		before := len(n.HTTPLog())
		r := curl(t, "-i", "-x", "http://"+s.Addr, n.NameURL("/via"))
		if r.Code != 52 || r.Stdout != "" {
			t.Fatalf("want curl exit 52 (empty reply from server):\n%s", r)
		}
		if after := len(n.HTTPLog()); after != before {
			t.Fatalf("the test server saw %d requests", after-before)
		}
	})
	t.Run("plain-GET-gets-warning-page", func(t *testing.T) {
		// -x http:// for http://127.0.0.1:P/ sends "Host: 127.0.0.1:P", a
		// loopback address: socksd answers with the warning page, byte
		// for byte, and forwards nothing.
		before := len(n.HTTPLog())
		r := curl(t, "-i", "-x", "http://"+s.Addr, n.HTTPURL("/via"))
		r.wantOK(t)
		want := string(httpguard.WarningPage(s.Addr))
		if r.Stdout != want {
			t.Fatalf("response:\n%q\nwant:\n%q", r.Stdout, want)
		}
		if !strings.HasPrefix(r.Stdout, "HTTP/1.0 501 socksd is a SOCKS proxy, not an HTTP proxy\r\n"+
			"Tor-Capabilities: \r\nServer: tor/1.0 (socksd)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ") {
			t.Fatalf("status line / headers: %q", r.Stdout[:min(len(r.Stdout), 200)])
		}
		if after := len(n.HTTPLog()); after != before {
			t.Fatalf("the test server saw %d requests; the warning page must not forward", after-before)
		}
	})
	t.Run("CONNECT-tunnel", func(t *testing.T) {
		r := curl(t, "-p", "-x", "http://"+s.Addr, n.NameURL("/via"))
		r.wantOK(t)
		wantExit(t, n, r.Stdout)
	})
	t.Run("CONNECT-tunnel-by-ip-verbose", func(t *testing.T) {
		r := curl(t, "-v", "-p", "-x", "http://"+s.Addr, n.HTTPURL("/"))
		r.wantOK(t)
		if r.Stdout != tornet.HelloBody || !strings.Contains(r.Stderr, "HTTP/1.1 200 Connection established") {
			t.Fatalf("CONNECT:\n%s", r)
		}
	})
}

func TestTorResolve(t *testing.T) {
	n := needTornet(t)
	s := startSocksd(t, FrontendConfig)
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"socks5", []string{"-5", tornet.HostName}, "127.0.0.1\n", 0},
		{"socks4a", []string{"-4", "example.test"}, "127.0.0.1\n", 0},
		{"default", []string{tornet.RevName}, tornet.RevAddr + "\n", 0},
		{"ptr", []string{"-x", tornet.RevAddr}, tornet.RevName + "\n", 0},
		// Failures: Tor's RESOLVE failure reply (05 04 00 00 ...) has ATYP 0,
		// which tor-resolve itself cannot parse; SOCKS4a gets 91.
		{"socks5-nxdomain", []string{"-5", tornet.NXName}, "", 1},
		{"socks4a-nxdomain", []string{"-4", tornet.NXName}, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{}, tc.args...), s.Addr)
			r := runCmd(t, 60*time.Second, nil, "tor-resolve", args...)
			if r.Code != tc.code || r.Stdout != tc.want {
				t.Fatalf("want exit %d stdout %q:\n%s", tc.code, tc.want, r)
			}
		})
	}
	_ = n
}

func TestTorsocks(t *testing.T) {
	n := needTornet(t)
	s := startSocksd(t, FrontendConfig)
	conf := filepath.Join(t.TempDir(), "torsocks.conf")
	if err := os.WriteFile(conf, []byte("TorAddress 127.0.0.1\nTorPort "+port(s.Addr)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"TORSOCKS_CONF_FILE=" + conf}
	t.Run("curl-onion", func(t *testing.T) {
		// torsocks maps the .onion name to a cookie address and sends the
		// name to socksd in its SOCKS5 CONNECT.
		r := runCmd(t, 90*time.Second, env, "torsocks", "curl", "-sS", "--max-time", "60", n.OnionURL("/via"))
		r.wantOK(t)
		if r.Stdout != "hs" {
			t.Fatalf("onion /via = %q:\n%s", r.Stdout, r)
		}
	})
	t.Run("curl-name-to-non-loopback", func(t *testing.T) {
		// RESOLVE (0xF0) through socksd gives 198.51.100.7; torsocks then
		// CONNECTs to it through socksd, and the exit refuses (0x01).
		r := runCmd(t, 90*time.Second, env, "torsocks", "curl", "-sS", "--max-time", "60", "http://"+tornet.RevName+"/")
		if r.Code != 7 || !strings.Contains(r.Stderr, "General SOCKS server failure") {
			t.Fatalf("want curl exit 7 after a SOCKS general failure:\n%s", r)
		}
	})
	t.Run("getaddrinfo", func(t *testing.T) {
		r := runCmd(t, 60*time.Second, env, "torsocks", "getent", "ahosts", tornet.HostName)
		r.wantOK(t)
		if f := strings.Fields(r.Stdout); len(f) < 2 || f[0] != "127.0.0.1" || f[1] != "STREAM" {
			t.Fatalf("getent ahosts through torsocks:\n%s", r)
		}
	})
	t.Run("localhost-denied", func(t *testing.T) {
		// torsocks's own rule: it never sends connections to 127/8 anywhere.
		r := runCmd(t, 60*time.Second, env, "torsocks", "curl", "-sS", "--max-time", "60", n.HTTPURL("/via"))
		if r.Code != 7 || !strings.Contains(r.Stderr, "local address are denied") {
			t.Fatalf("want torsocks to deny the loopback connect:\n%s", r)
		}
	})
}

func TestProxychainsSOCKS4(t *testing.T) {
	n := needTornet(t)
	s := startSocksd(t, FrontendConfig)
	write := func(proxyDNS bool) string {
		c := "strict_chain\nquiet_mode\ntcp_read_time_out 30000\ntcp_connect_time_out 30000\n"
		if proxyDNS {
			c += "proxy_dns\n"
		}
		c += "[ProxyList]\nsocks4 127.0.0.1 " + port(s.Addr) + "\n"
		p := filepath.Join(t.TempDir(), "proxychains.conf")
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	off, on := write(false), write(true)
	pc := func(conf string, args ...string) cmdResult {
		return runCmd(t, 90*time.Second, nil, "proxychains4", append([]string{"-q", "-f", conf, "curl", "-sS", "--max-time", "60"}, args...)...)
	}
	t.Run("proxy_dns-off/ip", func(t *testing.T) {
		r := pc(off, n.HTTPURL("/via"))
		r.wantOK(t)
		wantExit(t, n, r.Stdout)
	})
	t.Run("proxy_dns-on/ip", func(t *testing.T) {
		r := pc(on, n.HTTPURL("/via"))
		r.wantOK(t)
		wantExit(t, n, r.Stdout)
	})
	t.Run("proxy_dns-on/name", func(t *testing.T) {
		// proxychains hands curl a placeholder address and sends the name
		// as SOCKS4a; an exit resolves it. A fresh name, so no tor cache
		// answers it.
		name := freshName("proxychains")
		r := pc(on, "http://"+name+":"+strconv.Itoa(n.HTTPPort)+"/via")
		r.wantOK(t)
		wantExit(t, n, r.Stdout)
		if countDNS(n, name) == 0 {
			t.Fatalf("the exits' DNS server never saw %s", name)
		}
	})
	// proxy_dns off with a name would make curl ask the host's resolver —
	// not loopback — so it is not run.
}

func countDNS(n *tornet.Network, name string) int {
	c := 0
	for _, q := range n.DNSLog() {
		if strings.EqualFold(q.Name, name) {
			c++
		}
	}
	return c
}

func TestXNetProxy(t *testing.T) {
	n := needTornet(t)
	s := startSocksd(t, FrontendConfig)
	for _, tc := range []struct {
		name string
		auth *proxy.Auth
	}{
		{"noauth", nil},
		{"userpass", &proxy.Auth{User: "alice", Password: "pw1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := proxy.SOCKS5("tcp", s.Addr, tc.auth, proxy.Direct)
			if err != nil {
				t.Fatal(err)
			}
			cd := d.(proxy.ContextDialer)
			hc := &http.Client{Transport: &http.Transport{
				DialContext:       cd.DialContext,
				DisableKeepAlives: true,
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for _, url := range []string{n.NameURL("/via"), n.HTTPURL("/via")} {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", url, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %s", url, resp.Status)
				}
				wantExit(t, n, string(body))
			}
			// An onion with a bad checksum: the ExtendedErrors SocksPort says
			// 0xF6 and socksd passes it on; x/net/proxy reports it as an error.
			c, err := cd.DialContext(ctx, "tcp", badOnion(n)+":80")
			if err == nil {
				c.Close()
			}
			if err == nil || !strings.Contains(err.Error(), "unknown code: 246") {
				t.Fatalf("bad onion: err = %v, want the 0xF6 reply", err)
			}
		})
	}
}

func TestChromium(t *testing.T) {
	n := needTornet(t)
	s := startSocksd(t, FrontendConfig)
	for _, tc := range []struct {
		name, url, via string
	}{
		{"exit", n.HTTPURL("/page.html"), ""},
		{"onion", n.OnionURL("/page.html"), "hs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := artifactDir(t, "")
			shot := filepath.Join(dir, "screenshot.png")
			os.Remove(shot)
			r := runCmd(t, 120*time.Second, nil, "chromium",
				"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--user-data-dir="+t.TempDir(),
				"--proxy-server=socks5://"+s.Addr,
				// Chromium never proxies loopback unless told to drop that
				// implicit bypass rule.
				"--proxy-bypass-list=<-loopback>",
				"--window-size=800,600",
				"--screenshot="+shot, "--dump-dom", tc.url)
			os.WriteFile(filepath.Join(dir, "dom.html"), []byte(r.Stdout), 0o644)
			os.WriteFile(filepath.Join(dir, "chromium.stderr"), []byte(r.Stderr), 0o644)
			r.wantOK(t)
			if !strings.Contains(r.Stdout, `<h1 id="hello">hello from tornet</h1>`) {
				t.Fatalf("DOM lacks the page:\n%s", r.Stdout)
			}
			via := between(r.Stdout, `<p id="via">`, `</p>`)
			if tc.via != "" && via != tc.via {
				t.Fatalf("page via %q, want %q", via, tc.via)
			}
			if tc.via == "" {
				wantExit(t, n, via)
			}
			checkScreenshot(t, shot)
			t.Logf("screenshot: %s", shot)
		})
	}
}

// checkScreenshot decodes the PNG and checks the page's background colour
// (#7d4698) fills a corner: the page rendered, not an error page.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	r, g, bl, _ := img.At(b.Max.X-5, b.Max.Y-5).RGBA()
	near := func(v uint32, want int) bool { d := int(v>>8) - want; return d > -8 && d < 8 }
	if !near(r, 0x7d) || !near(g, 0x46) || !near(bl, 0x98) {
		t.Fatalf("screenshot corner colour %02x%02x%02x, want ~7d4698", r>>8, g>>8, bl>>8)
	}
}

func between(s, a, b string) string {
	_, rest, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, b)
	return v
}

// TestTwoExits: streams through socksd that the client tor sends out of
// two chosen exits (MAPADDRESS name → 127.0.0.1.$FP.exit) reach the test
// server from those two exits — the outside view isolation tests rely on.
func TestTwoExits(t *testing.T) {
	n := needTornet(t)
	s := startSocksd(t, FrontendConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got := map[string]string{}
	for _, e := range n.Exits[:2] {
		host := "e2e-" + e.Nickname + ".tornet.test"
		if err := n.PinToExit(ctx, host, "127.0.0.1", e); err != nil {
			t.Fatal(err)
		}
		r := curl(t, "--socks5-hostname", s.Addr, "http://"+host+":"+strconv.Itoa(n.HTTPPort)+"/via")
		r.wantOK(t)
		if r.Stdout != e.Nickname {
			t.Fatalf("pinned to %s, arrived via %q", e.Nickname, r.Stdout)
		}
		got[host] = r.Stdout
	}
	if len(got) != 2 || got["e2e-exit0.tornet.test"] == got["e2e-exit1.tornet.test"] {
		t.Fatalf("vias %v", got)
	}
}
