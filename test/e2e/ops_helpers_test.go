package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"socksd/internal/testutil"
	"socksd/test/tornet"
)

// OpsConfig is socksd as a user runs it: the own tor's control
// port with stream attaching, the DNS bridge, metrics/status listener,
// debug logging with safe_logging from Extra. Extra "listen2" adds
// listeners (`, "127.0.0.1:P"`) for the reload test.
const OpsConfig = `
state_dir = "{{.StateDir}}"

[socks]
listen = ["{{.Listen}}"{{index .Extra "listen2"}}]

[tor]
control = "{{.TorControl}}"
socks = "{{.TorSOCKS}}"
launch = "never"
attach_streams = true

[log]
level = "debug"
format = "{{index .Extra "format"}}"
safe_logging = {{index .Extra "safe_logging"}}

[metrics]
listen = "{{.Metrics}}"

[dns]
listen = ["{{.DNS}}"]
virtual_network_ipv4 = "{{index .Extra "v4"}}"
virtual_network_ipv6 = "{{index .Extra "v6"}}"
`

func opsExtra(k int) map[string]string {
	ex := bridgeExtra(k)
	ex["listen2"] = ""
	ex["format"] = "json"
	ex["safe_logging"] = "true"
	return ex
}

// secrets are the private strings one traffic session used.
type secrets struct {
	Nonce      string
	Users      []string // SOCKS5 user, SOCKS4 userid, HTTP proxy user
	Passwords  []string
	Hosts      []string // destination hostnames
	IPs        []string // destination addresses that are not ours anyway
	ClientAddr string   // the client's source address
}

func (s secrets) all() []string {
	out := []string{s.Nonce, s.ClientAddr}
	out = append(out, s.Users...)
	out = append(out, s.Passwords...)
	out = append(out, s.Hosts...)
	return append(out, s.IPs...)
}

// secretTraffic drives real traffic through d with distinctive
// destinations and credentials: SOCKS5 with user/pass (a page and a bulk
// body), SOCKS4a with a userid, HTTP CONNECT with Proxy-Authorization, a
// name that fails at the exit (reply 0x04), an IP destination the exit
// cannot reach (0x01), the onion, RESOLVE/RESOLVE_PTR and the DNS bridge.
// Every client connects from a dedicated loopback source address.
func secretTraffic(t *testing.T, d *Socksd, n *tornet.Network) secrets {
	t.Helper()
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	s := secrets{
		Nonce:      nonce,
		Users:      []string{"s5user" + nonce, "s4user" + nonce, "httpuser" + nonce},
		Passwords:  []string{"s5pass" + nonce, "httppass" + nonce},
		Hosts:      []string{"dest" + nonce + ".example.test", "dest4a" + nonce + ".example.test", "destconnect" + nonce + ".example.test", "nxdest" + nonce + ".invalid", "resolve" + nonce + ".example.test", "dnsdest" + nonce + ".example.test", n.OnionHost},
		IPs:        []string{tornet.RevAddr},
		ClientAddr: fmt.Sprintf("127.66.%d.%d", 1+time.Now().Nanosecond()%250, 1+time.Now().Second()%250),
	}
	hp := strconv.Itoa(n.HTTPPort)
	iface := []string{"--interface", s.ClientAddr}
	c := func(args ...string) cmdResult { return curl(t, append(append([]string{}, iface...), args...)...) }

	r := c("--socks5-hostname", d.Listen, "-U", s.Users[0]+":"+s.Passwords[0], "http://"+s.Hosts[0]+":"+hp+"/via")
	r.wantOK(t)
	wantExit(t, n, r.Stdout)
	r = c("--socks5-hostname", d.Listen, "-U", s.Users[0]+":"+s.Passwords[0], "http://"+s.Hosts[0]+":"+hp+"/bytes?n=200000")
	r.wantOK(t)
	if len(r.Stdout) != 200000 {
		t.Fatalf("bulk body %d bytes", len(r.Stdout))
	}
	r = c("-x", "socks4a://"+s.Users[1]+"@"+d.Listen, "http://"+s.Hosts[1]+":"+hp+"/via")
	r.wantOK(t)
	wantExit(t, n, r.Stdout)
	r = c("-p", "-x", "http://"+s.Users[2]+":"+s.Passwords[1]+"@"+d.Listen, "http://"+s.Hosts[2]+":"+hp+"/via")
	r.wantOK(t)
	wantExit(t, n, r.Stdout)
	// A name no exit resolves: a SOCKS failure (0x04 normally; which code
	// and how fast is TestOpsAttachNXName's business).
	r = c("--max-time", "20", "--socks5-hostname", d.Listen, "-U", s.Users[0]+":"+s.Passwords[0], "http://"+s.Hosts[3]+":"+hp+"/")
	if r.Code != 97 && r.Code != 28 {
		t.Fatalf("want a SOCKS failure for a name that does not exist:\n%s", r)
	}
	r = c("--socks5", d.Listen, "-U", s.Users[0]+":"+s.Passwords[0], "http://"+tornet.RevAddr+":"+hp+"/")
	if r.Code != 97 {
		t.Fatalf("want a SOCKS5 failure for %s:\n%s", tornet.RevAddr, r)
	}
	r = c("--socks5-hostname", d.Listen, "-U", s.Users[0]+":"+s.Passwords[0], n.OnionURL("/via"))
	r.wantOK(t)
	if r.Stdout != "hs" {
		t.Fatalf("onion /via = %q", r.Stdout)
	}
	if r := runCmd(t, 60*time.Second, nil, "tor-resolve", "-5", s.Hosts[4], d.Listen); r.Stdout != "127.0.0.1\n" {
		t.Fatalf("tor-resolve:\n%s", r)
	}
	if r := runCmd(t, 60*time.Second, nil, "tor-resolve", "-x", tornet.RevAddr, d.Listen); r.Stdout != tornet.RevName+"\n" {
		t.Fatalf("tor-resolve -x:\n%s", r)
	}
	va := digOne(t, d.DNS, "-b", s.ClientAddr, s.Hosts[5], "A")
	digOne(t, d.DNS, "-b", s.ClientAddr, "-x", va)
	r = c("--socks4", d.Listen, "http://"+va+":"+hp+"/via")
	r.wantOK(t)
	wantExit(t, n, r.Stdout)
	return s
}

// waitHealthy polls GET /healthz on the metrics listener until 200.
func waitHealthy(t *testing.T, d *Socksd, timeout time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	var last string
	ok := testutil.Poll(timeout, pollEvery, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		code, body, err := httpDo(ctx, "GET", "http://"+d.Metrics+"/healthz")
		last = fmt.Sprintf("%d %q %v", code, body, err)
		return code == 200 || code == 404 // 404: no such endpoint, nothing to wait for
	})
	if !ok || strings.HasPrefix(last, "404 ") {
		t.Fatalf("/healthz not 200 after %v: %s", timeout, last)
	}
	return time.Since(t0)
}

// waitTorUsable polls /metrics until socksd reports its control
// connection up and Tor bootstrapped (socksd_tor_control_connected 1,
// socksd_tor_bootstrap_percent 100).
func waitTorUsable(t *testing.T, d *Socksd, timeout time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	var conn, boot float64
	ok := testutil.Poll(timeout, pollEvery, func() bool {
		ss := scrape(t, d.Metrics)
		conn, boot = metricSum(ss, "socksd_tor_control_connected"), metricSum(ss, "socksd_tor_bootstrap_percent")
		return conn == 1 && boot == 100
	})
	if !ok {
		t.Fatalf("tor not usable after %v: control_connected %v, bootstrap_percent %v", timeout, conn, boot)
	}
	return time.Since(t0)
}

// httpDo makes one plain HTTP request (no proxy) and returns status and body.
func httpDo(ctx context.Context, method, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
