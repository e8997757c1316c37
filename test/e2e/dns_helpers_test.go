package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"socksd/internal/daemontest"
	"socksd/test/tornet"
)

// Helpers for the DNS bridge and operations tests:
//
//   - ownTor: a second client tor of the package's network that these tests
//     control-connect socksd to. It can be restarted (the Tor-restart proof)
//     and socksd may set __LeaveStreamsUnattached on it without touching the
//     network's shared client tor. Tests using it are sequential.
//   - daemon: a socksd process like startSocksd's, but restartable with the
//     same state_dir and ports, and started inside a private mount namespace
//     whose /etc/resolv.conf names the canary (below).
//   - canary: a DNS server on loopback:53 that counts every query. socksd's
//     resolv.conf names it, so any name socksd resolved locally would show
//     up there (the no-local-DNS proof). Every daemon checks it at stop.

// ---------------------------------------------------------------- own tor

type ownTor struct {
	n          *tornet.Network
	dir        string
	torrc      string
	SOCKS      string // SocksPort "127.0.0.1:P"
	Control    string // ControlPort "127.0.0.1:P"
	CookiePath string
	proc       *tornet.Process
	Bootstrap  time.Duration // first bootstrap, start to PROGRESS=100 + a circuit
}

var (
	ownTorOnce sync.Once
	ownTorVal  *ownTor
	ownTorErr  error
)

// needOwnTor returns the package's second client tor, started (and
// bootstrapped) on first use.
func needOwnTor(t *testing.T) *ownTor {
	t.Helper()
	n := needTornet(t)
	ownTorOnce.Do(func() {
		ownTorVal, ownTorErr = startOwnTor(n)
		if ownTorErr == nil {
			t.Logf("own client tor (pid %d) bootstrapped in %v", ownTorVal.proc.PID(), ownTorVal.Bootstrap.Round(time.Millisecond))
		}
	})
	if ownTorErr != nil {
		t.Fatalf("own client tor: %v", ownTorErr)
	}
	if ownTorVal.proc.Exited() {
		t.Fatalf("own client tor has exited (%v); a previous test did not restart it", ownTorVal.proc.Err())
	}
	return ownTorVal
}

func ownTorBin() string {
	if p, err := exec.LookPath("tor"); err == nil {
		return p
	}
	return "/usr/sbin/tor"
}

// ownFreePort returns "127.0.0.1:P" for a port in 10000-19999 that was
// free a moment ago: below the ephemeral range, so no outgoing connection
// (of the many tors on a busy box) takes it before tor binds it.
func ownFreePort() (string, error) { return reservePort(false) }

func startOwnTor(n *tornet.Network) (*ownTor, error) {
	var err error
	for range 3 { // a port taken between the check and tor's bind: try others
		var o *ownTor
		if o, err = startOwnTorOnce(n); err == nil {
			return o, nil
		}
	}
	return nil, err
}

func startOwnTorOnce(n *tornet.Network) (*ownTor, error) {
	dir := filepath.Join(n.Dir, "e2e-owntor")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	socks, err := ownFreePort()
	if err != nil {
		return nil, err
	}
	ctl, err := ownFreePort()
	if err != nil {
		return nil, err
	}
	o := &ownTor{n: n, dir: dir, SOCKS: socks, Control: ctl,
		CookiePath: filepath.Join(dir, "data", "control_auth_cookie")}
	// The harness's client lines (TestingTorNetwork, DirAuthority...) plus
	// our own ports. SafeLogging 0 so the notice log is readable when a
	// test fails; ShutdownWaitLength 0 so a restart is quick.
	// A fixed circuit build timeout: on loopback tor learns a timeout of a
	// few tens of ms (builds take ~40 ms), and when the box is loaded (the
	// whole suite under -race) most builds then fail with TIMEOUT, which
	// says nothing about socksd; the real network's learned timeout is
	// seconds.
	o.torrc = n.ClientTorrc() + fmt.Sprintf(`LearnCircuitBuildTimeout 0
CircuitBuildTimeout 30
DataDirectory %[1]s/data
SocksPort %[2]s
ControlPort %[3]s
CookieAuthentication 1
Log notice file %[1]s/notice.log
SafeLogging 0
LogTimeGranularity 1
ShutdownWaitLength 0
__OwningControllerProcess %[4]d
`, dir, socks, ctl, os.Getpid())
	if err := os.WriteFile(filepath.Join(dir, "torrc"), []byte(o.torrc), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "defaults.torrc"), nil, 0o644); err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := o.start(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := o.waitReady(ctx); err != nil {
		o.proc.Stop(5 * time.Second)
		b, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
		return nil, fmt.Errorf("%w\n%s", err, daemontest.Tail(string(b), 2000))
	}
	o.Bootstrap = time.Since(t0)
	return o, nil
}

func (o *ownTor) start() error {
	p, err := o.n.Spawn("owntor", filepath.Join(o.dir, "stdout.log"), ownTorBin(),
		"-f", filepath.Join(o.dir, "torrc"), "--defaults-torrc", filepath.Join(o.dir, "defaults.torrc"))
	if err != nil {
		return err
	}
	o.proc = p
	return nil
}

// waitReady polls the control port until tor reports bootstrap 100% and an
// established circuit.
func (o *ownTor) waitReady(ctx context.Context) error {
	var last string
	for {
		if o.proc.Exited() {
			return fmt.Errorf("tor exited: %v\n%s", o.proc.Err(), o.noticeTail())
		}
		if c, err := tornet.DialControl(ctx, o.Control, o.CookiePath); err == nil {
			phase, _ := c.GetInfo(ctx, "status/bootstrap-phase")
			circ, _ := c.GetInfo(ctx, "status/circuit-established")
			c.Close()
			last = phase
			if strings.Contains(phase, "PROGRESS=100") && circ == "1" {
				return nil
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tor not ready (%s): %w\n%s", last, ctx.Err(), o.noticeTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (o *ownTor) noticeTail() string {
	b, _ := os.ReadFile(filepath.Join(o.dir, "notice.log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// restart stops tor (SIGTERM) and starts it again with the same torrc,
// ports and DataDirectory; it returns once the control port accepts
// connections again (not waiting for bootstrap).
func (o *ownTor) restart(t *testing.T) {
	t.Helper()
	o.proc.Stop(10 * time.Second)
	o.startAgain(t)
}

// startAgain starts a stopped tor (see restart).
func (o *ownTor) startAgain(t *testing.T) {
	t.Helper()
	if err := o.start(); err != nil {
		t.Fatal(err)
	}
	if err := waitAccepting(o.proc, o.Control, 30*time.Second); err != nil {
		t.Fatalf("restarted tor's control port: %v\n%s", err, o.noticeTail())
	}
}

// mappings returns tor's controller-made address mappings
// (GETINFO address-mappings/control, control-spec §3.9): from → to.
func (o *ownTor) mappings(t *testing.T) map[string]string {
	t.Helper()
	m, err := o.tryMappings()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (o *ownTor) tryMappings() (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tornet.DialControl(ctx, o.Control, o.CookiePath)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	v, err := c.GetInfo(ctx, "address-mappings/control")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(v, "\n") {
		// "FROM TO EXPIRY", EXPIRY "NEVER" or a quoted time.
		f := strings.Fields(line)
		if len(f) >= 2 {
			m[f[0]] = f[1]
		}
	}
	return m, nil
}

// ---------------------------------------------------------------- canary

// canaryDNS is a DNS server on <loopback>:53 that records every query and
// answers REFUSED.
type canaryDNS struct {
	Addr       string // "127.x.y.z:53"
	ResolvConf string
	udp, tcp   *dns.Server
	mu         sync.Mutex
	queries    []string // "name type"
}

var (
	canaryOnce sync.Once
	canaryVal  *canaryDNS
	canaryErr  error
)

// needCanary returns the package's canary resolver and the resolv.conf
// naming it, started on first use.
func needCanary(t *testing.T) *canaryDNS {
	t.Helper()
	canaryOnce.Do(func() { canaryVal, canaryErr = startCanary() })
	if canaryErr != nil {
		t.Fatalf("canary DNS server: %v", canaryErr)
	}
	return canaryVal
}

func (c *canaryDNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	c.mu.Lock()
	for _, q := range r.Question {
		c.queries = append(c.queries, strings.ToLower(q.Name)+" "+dns.TypeToString[q.Qtype])
	}
	c.mu.Unlock()
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeRefused)
	w.WriteMsg(m)
}

// Queries returns what the canary has seen so far.
func (c *canaryDNS) Queries() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.queries...)
}

// port53 finds a loopback address whose port 53 is free for UDP and TCP
// and returns the bound sockets (the caller serves on them or closes them).
func port53() (net.PacketConn, net.Listener, error) {
	for range 100 {
		ip := fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(90), 1+rand.IntN(250), 1+rand.IntN(250))
		pc, err := net.ListenPacket("udp4", ip+":53")
		if err != nil {
			continue
		}
		ln, err := net.Listen("tcp4", ip+":53")
		if err != nil {
			pc.Close()
			continue
		}
		return pc, ln, nil
	}
	return nil, nil, fmt.Errorf("no loopback address with port 53 free")
}

// free53 returns "127.x.y.z:53", free for UDP and TCP a moment ago.
func free53(t *testing.T) string {
	t.Helper()
	pc, ln, err := port53()
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	pc.Close()
	ln.Close()
	return a
}

func startCanary() (*canaryDNS, error) {
	pc, ln, err := port53()
	if err != nil {
		return nil, err
	}
	c := &canaryDNS{Addr: ln.Addr().String()}
	h := dns.HandlerFunc(c.serve)
	started := make(chan struct{}, 2)
	c.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { started <- struct{}{} }}
	c.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: func() { started <- struct{}{} }}
	go c.udp.ActivateAndServe()
	go c.tcp.ActivateAndServe()
	<-started
	<-started
	host, _, _ := net.SplitHostPort(c.Addr)
	dir, err := os.MkdirTemp("", "socksd-e2e-canary-")
	if err != nil {
		return nil, err
	}
	c.ResolvConf = filepath.Join(dir, "resolv.conf")
	// glibc's resolv.conf has no port syntax: the canary is on port 53.
	if err := os.WriteFile(c.ResolvConf, []byte("nameserver "+host+"\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		return nil, err
	}
	return c, nil
}

// inResolvNS returns argv run with /etc/resolv.conf replaced by resolvConf
// in a private mount namespace (unshare -m makes mounts private). The
// process keeps its PID (unshare and sh exec), so signals reach argv[0].
func inResolvNS(resolvConf string, argv ...string) []string {
	return append([]string{"unshare", "-m", "sh", "-c",
		`mount --bind "$0" /etc/resolv.conf && exec "$@"`, resolvConf}, argv...)
}

// ---------------------------------------------------------------- daemon

// BridgeConfig is a socksd with the control port of the own tor, stream
// attaching and the DNS bridge. safe_socks and reject_internal are ON: a
// virtual address must pass both (it is a name in disguise). Each test gives its own
// virtual networks (Extra v4, v6), so mappings from earlier tests in the
// same tor never collide with this test's.
const BridgeConfig = `
state_dir = "{{.StateDir}}"

[socks]
listen = ["{{.Listen}}"]
safe_socks = true
reject_internal = true

[tor]
control = "{{.TorControl}}"
socks = "{{.TorSOCKS}}"
launch = "never"
attach_streams = true

[log]
level = "debug"
format = "console"
safe_logging = false

[metrics]
listen = "{{.Metrics}}"

[dns]
listen = ["{{.DNS}}"]
automap = "{{index .Extra "automap"}}"
virtual_network_ipv4 = "{{index .Extra "v4"}}"
virtual_network_ipv6 = "{{index .Extra "v6"}}"
ttl = "{{index .Extra "ttl"}}"
`

// bridgeExtra returns Extra values for BridgeConfig: automap all, ttl 60s
// and per-test virtual networks inside Tor's default 127.192.0.0/10
// (127.192+k.0.0/16) and fd00:5ec5:d000::/48 (fd00:5ec5:d0kk::/48).
func bridgeExtra(k int) map[string]string {
	return map[string]string{
		"automap": "all",
		"v4":      fmt.Sprintf("127.%d.0.0/16", 192+k),
		"v6":      fmt.Sprintf("fd00:5ec5:d0%02x::/48", k),
		"ttl":     "60s",
	}
}

// startDNSDaemon renders tmpl with fresh ports (dnsAddr "" = a free
// 127.0.0.1 port) and the own tor, and starts socksd in the canary's mount
// namespace. Cleanup stops it and checks: exit 0, no data race, and the
// canary saw no query while it ran.
func startDNSDaemon(t *testing.T, tmpl string, dnsAddr string, extra map[string]string) *Socksd {
	t.Helper()
	n := needTornet(t)
	o := needOwnTor(t)
	c := needCanary(t)
	if dnsAddr == "" {
		dnsAddr = freeTCPUDP(t)
	}
	d := newSocksd(t, SocksdVars{
		Listen: freeTCP(t), Metrics: freeTCP(t), DNS: dnsAddr,
		TorSOCKS: o.SOCKS, TorControl: o.Control, HTTPPort: n.HTTPPort, Extra: extra,
	}, tmpl)
	d.wrapper = inResolvNS(c.ResolvConf)
	d.canary, d.canarySeen = c, len(c.Queries())
	t.Cleanup(func() { d.cleanup(t) })
	d.start(t)
	return d
}

// ---------------------------------------------------------------- dig

// digResult is one dig run.
type digResult struct {
	cmdResult
	Status  string   // "NOERROR", "NXDOMAIN", "NOTIMP", ...
	Answers []string // answer section RDATA, in order
}

// dig runs `dig @host -p port args...` (+tries=1: one query, no retries
// that could hide a lost answer) and parses status and answers.
func dig(t *testing.T, server string, args ...string) digResult {
	t.Helper()
	host, p, err := net.SplitHostPort(server)
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"@" + host, "-p", p, "+time=15", "+tries=1", "+noall", "+comments", "+answer"}, args...)
	r := digResult{cmdResult: runCmd(t, 30*time.Second, nil, "dig", all...)}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if _, rest, ok := strings.Cut(line, "status: "); ok {
			r.Status, _, _ = strings.Cut(rest, ",")
		}
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		// "name. TTL IN TYPE RDATA"
		f := strings.Fields(line)
		if len(f) >= 5 {
			r.Answers = append(r.Answers, f[4])
		}
	}
	return r
}

// digOne wants status NOERROR and exactly one answer.
func digOne(t *testing.T, server string, args ...string) string {
	t.Helper()
	r := dig(t, server, args...)
	if r.Code != 0 || r.Status != "NOERROR" || len(r.Answers) != 1 {
		t.Fatalf("want NOERROR with one answer:\n%s", r.cmdResult)
	}
	return r.Answers[0]
}

// httpPortStr is the test HTTP server's port.
func httpPortStr(n *tornet.Network) string { return strconv.Itoa(n.HTTPPort) }

// pollEvery is how often the e2e tests poll a condition on socksd, tor or
// the network with testutil.Poll.
const pollEvery = 50 * time.Millisecond

// ---------------------------------------------------------------- tunnels

// dialSOCKS4IP opens a SOCKS4 CONNECT (IP-only, the kind of request a
// SOCKS4-only app makes with an address from the bridge) through proxy.
func dialSOCKS4IP(ctx context.Context, proxy string, dst netip.AddrPort, userid string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxy)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	req := []byte{4, 1, byte(dst.Port() >> 8), byte(dst.Port())}
	ip4 := dst.Addr().As4()
	req = append(append(append(req, ip4[:]...), userid...), 0)
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	var rep [8]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		c.Close()
		return nil, err
	}
	if rep[1] != 0x5a {
		c.Close()
		return nil, fmt.Errorf("socks4 reply 0x%02x", rep[1])
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// keptTunnel is a kept-alive HTTP/1.1 connection through a proxy.
type keptTunnel struct {
	c net.Conn
	r *bufio.Reader
}

func newKeptTunnel(c net.Conn) *keptTunnel { return &keptTunnel{c: c, r: bufio.NewReader(c)} }

// get sends one GET on the keptTunnel and returns the body.
func (tu *keptTunnel) get(path string) (string, error) {
	tu.c.SetDeadline(time.Now().Add(60 * time.Second))
	defer tu.c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(tu.c, "GET %s HTTP/1.1\r\nHost: keptTunnel.test\r\n\r\n", path); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(tu.r, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: %s", path, resp.Status)
	}
	return string(b), nil
}

func (tu *keptTunnel) Close() error { return tu.c.Close() }

// ---------------------------------------------------------------- metrics

// sample is one line of the Prometheus text format.
type sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// scrape fetches http://addr/metrics and parses the text format (enough
// of it for counters, gauges and histogram lines).
func scrape(t *testing.T, addr string) []sample {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	var out []sample
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		s, ok := parseSample(line)
		if !ok {
			t.Fatalf("unparsable metrics line %q", line)
		}
		out = append(out, s)
	}
	return out
}

func parseSample(line string) (sample, bool) {
	s := sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, false
	}
	s.Name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if rest == "" {
				return s, false
			}
			if rest[0] == '}' {
				rest = rest[1:]
				break
			}
			if rest[0] == ',' {
				rest = rest[1:]
				continue
			}
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return s, false
			}
			k := rest[:eq]
			rest = rest[eq+2:]
			var v strings.Builder
			for {
				if rest == "" {
					return s, false
				}
				c := rest[0]
				rest = rest[1:]
				if c == '\\' && rest != "" {
					switch rest[0] {
					case 'n':
						v.WriteByte('\n')
					default:
						v.WriteByte(rest[0])
					}
					rest = rest[1:]
					continue
				}
				if c == '"' {
					break
				}
				v.WriteByte(c)
			}
			s.Labels[k] = v.String()
		}
	}
	f := strings.Fields(rest)
	if len(f) < 1 {
		return s, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, false
	}
	s.Value = v
	return s, true
}

// metricSum adds the values of name's samples whose labels include want
// ("k", "v" pairs).
func metricSum(ss []sample, name string, want ...string) float64 {
	var total float64
next:
	for _, s := range ss {
		if s.Name != name {
			continue
		}
		for i := 0; i+1 < len(want); i += 2 {
			if s.Labels[want[i]] != want[i+1] {
				continue next
			}
		}
		total += s.Value
	}
	return total
}

// metricHas reports whether name has any sample.
func metricHas(ss []sample, name string) bool {
	for _, s := range ss {
		if s.Name == name {
			return true
		}
	}
	return false
}
