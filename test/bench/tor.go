package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"socksd/test/tornet"
)

// Virtual address ranges of the two DNS servers measured: Tor's own
// automapping (VirtualAddrNetworkIPv4 in the client torrc) and socksd's
// bridge. They must not overlap: both map into the same tor, and each
// answer is checked to lie in its server's range.
var (
	torVirtualNet    = netip.MustParsePrefix("10.192.0.0/10")
	bridgeVirtualNet = netip.MustParsePrefix("127.192.0.0/10")
)

// torKind is how a target reaches Tor.
type torKind int

const (
	kindTor     torKind = iota // Tor's SocksPort (and DNSPort) directly
	kindProduct                // socksd with the control port: attacher, DNS bridge
	kindPlain                  // socksd chained to the SocksPort, control = "none"
)

type torTarget struct {
	name string
	kind torKind
	bin  string
	tag  string // short name for DNS query names
	tcp  bool   // product configuration over Tor's TCP ControlPort and SocksPort
}

// torEnv is the Tor side of a run: the private network or one given by
// flags.
type torEnv struct {
	socks, control, cookie, dnsPort string
	dest                            netip.AddrPort
	// productSocks/productControl are what socksd's product configuration
	// uses: Unix sockets, as deploy/torrc.socksd gives the system tor (no
	// loopback TCP hop, no Nagle/delayed-ACK stalls on the control
	// connection), when the bench runs its own network; else socks/control.
	productSocks, productControl string
}

// runTor measures through a real Tor (a private network on
// loopback, test/tornet), alternating, same destination (the network's
// HTTP server, reached through its exits):
//
//   - time to first byte and bulk throughput, Tor's SocksPort directly
//     against socksd in its product configuration (control port, a circuit
//     per isolation key, DNS bridge) chained to that SocksPort;
//
//   - stream-attach latency, from socksd's own histogram and from outside
//     (STREAM NEW → SENTCONNECT on a control connection of our own);
//
//   - DNS: socksd's bridge against Tor's DNSPort with AutomapHostsOnResolve,
//     mapped and new names, C = 1 and 16.
//
//     socksbench tor -socksd BIN                  brings up its own network
//     socksbench tor -socks A -dest A -control A -cookie F -tor-dns A -socksd BIN
func runTor(args []string) error {
	fs := flag.NewFlagSet("tor", flag.ExitOnError)
	torSocks := fs.String("socks", "", "Tor's SocksPort (loopback); empty: start a private network (test/tornet)")
	dest := fs.String("dest", "", "with -socks: HTTP server ip:port the exits can reach")
	control := fs.String("control", "", "with -socks: the client tor's ControlPort (cookie auth)")
	cookie := fs.String("cookie", "", "with -socks: its control_auth_cookie")
	torDNS := fs.String("tor-dns", "", "with -socks: its DNSPort (AutomapHostsOnResolve 1, AutomapHostsSuffixes ., VirtualAddrNetworkIPv4 "+torVirtualNet.String()+")")
	socksd := fs.String("socksd", "", "socksd binary")
	socksdB := fs.String("socksd-b", "", "optional candidate socksd build, measured as socksdB>tor (product configuration)")
	tcpToo := fs.Bool("tcp-too", false, "also measure the product configuration over Tor's TCP ControlPort and SocksPort as socksd-tcp>tor (the product one uses Unix sockets when the bench starts the network)")
	plain := fs.Bool("plain", false, "also measure socksd with control = \"none\" (plain chaining) as socksd-plain>tor")
	n := fs.Int("n", 100, "TTFB requests per target per repetition")
	circuits := fs.Int("circuits", 4, "isolation identities (so circuits) per target per repetition: Tor's direct client gets a new SOCKS username, socksd a new client source address (a new isolation key)")
	bulkBytes := fs.Int("bulk-bytes", 4<<20, "bytes per bulk GET (the tornet server caps at 16 MiB)")
	bulkN := fs.Int("bulk-n", 8, "bulk GETs per target per repetition, each on a fresh identity (circuit)")
	dnsNames := fs.Int("dns-names", 200, "mapped names (queried over and over after a warm-up pass)")
	dnsTime := fs.Duration("dns-time", 3*time.Second, "duration bound of each DNS run")
	dnsMax := fs.Int("dns-max", 200000, "query bound of each mapped-name DNS run")
	dnsNew := fs.Int("dns-new", 20000, "query bound (so unique names) of each new-name DNS run")
	reps := fs.Int("reps", 3, "repetitions")
	out := fs.String("out", "results", "output directory (tor.md)")
	fs.Parse(args)
	if *socksd == "" {
		return fmt.Errorf("need -socksd")
	}
	logf := func(f string, a ...any) { os.Stderr.WriteString(stampLine(f, a...)) }
	loadStart := loadAvg()
	// On SIGTERM (run.sh's timeout) or SIGINT: while the network starts,
	// cancel its start (Start then stops what it started); later, stop the
	// turn's socksd and the network (neither is in this process's group).
	live := &liveProc{}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigc)
	startCtx, cancelStart := context.WithCancel(context.Background())
	defer cancelStart()
	up := make(chan func(), 1) // the network's closer, once it is up
	go func() {
		sig := <-sigc
		logf("%v: stopping socksd and the network", sig)
		cancelStart()
		closeNet, ok := <-up
		if !ok {
			return // start failed: runTor returns its error
		}
		live.stop()
		closeNet()
		os.Exit(1)
	}()
	env, closeNet, err := torNetwork(startCtx, *torSocks, *dest, *control, *cookie, *torDNS, logf)
	if err != nil {
		close(up)
		return err
	}
	up <- closeNet
	defer closeNet()

	targets := []torTarget{{name: "tor", kind: kindTor, tag: "tor"}, {name: "socksd>tor", kind: kindProduct, bin: *socksd, tag: "sd"}}
	if *socksdB != "" {
		targets = append(targets, torTarget{name: "socksdB>tor", kind: kindProduct, bin: *socksdB, tag: "sdb"})
	}
	if *tcpToo {
		targets = append(targets, torTarget{name: "socksd-tcp>tor", kind: kindProduct, bin: *socksd, tag: "sdt", tcp: true})
	}
	if *plain {
		targets = append(targets, torTarget{name: "socksd-plain>tor", kind: kindPlain, bin: *socksd})
	}
	b := &bench{logf: logf}
	res := newTorResults()
	var obs *streamObserver
	if env.control != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		obs, err = observeStreams(ctx, env.control, env.cookie, env.dest.Port())
		cancel()
		if err != nil {
			return fmt.Errorf("stream observer: %w", err)
		}
	}
	for rep := range *reps {
		for k := range targets {
			// Alternate: each repetition starts one target later.
			t := targets[(k+rep)%len(targets)]
			if err := torTurn(b, env, t, rep, obs, res, turnSettings{
				n: *n, circuits: *circuits, bulkBytes: *bulkBytes, bulkN: *bulkN,
				dnsNames: *dnsNames, dnsTime: *dnsTime, dnsMax: *dnsMax, dnsNew: *dnsNew,
			}, live); err != nil {
				res.notes = append(res.notes, fmt.Sprintf("rep %d %s: %v", rep+1, t.name, err))
				logf("rep %d %s: %v", rep+1, t.name, err)
			}
		}
	}
	if obs != nil {
		res.observed = obs.close()
	}
	md := torReport(res, targets, torReportInfo{
		loadStart: loadStart, loadEnd: loadAvg(), reps: *reps, n: *n, circuits: *circuits,
		bulkN: *bulkN, bulkBytes: *bulkBytes, dnsNames: *dnsNames, dnsTime: *dnsTime, dnsNew: *dnsNew,
		ownNetwork: *torSocks == "",
	})
	os.Stdout.WriteString(md)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*out, "tor.md"), []byte(md), 0o644)
}

// torNetwork returns the Tor side: the one given by flags, or a private
// network it starts (2 exits, no onion, a DNSPort automapping every name)
// and the func that stops it.
func torNetwork(ctx context.Context, socks, dest, control, cookie, torDNS string, logf func(string, ...any)) (torEnv, func(), error) {
	if socks != "" {
		d, err := netip.ParseAddrPort(dest)
		if err != nil {
			return torEnv{}, nil, fmt.Errorf("with -socks, -dest must be ip:port: %w", err)
		}
		if (control == "") != (cookie == "") {
			return torEnv{}, nil, fmt.Errorf("-control and -cookie go together")
		}
		return torEnv{socks: socks, control: control, cookie: cookie, dnsPort: torDNS, dest: d,
			productSocks: socks, productControl: control}, func() {}, nil
	}
	dnsPort, err := freeUDP()
	if err != nil {
		return torEnv{}, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	// The client tor answers every A query on its DNSPort with a virtual
	// address (tor-manual: AutomapHostsOnResolve, AutomapHostsSuffixes "."
	// = all names) from a range apart from socksd's bridge.
	// A short private directory for the Unix sockets (sun_path holds 108
	// bytes; tor wants the directory private).
	sockDir, err := os.MkdirTemp("", "sbtor")
	if err != nil {
		return torEnv{}, nil, err
	}
	nw, err := tornet.Start(ctx, tornet.Options{
		Exits: 2, NoOnion: true, Logf: logf,
		ExtraClientTorrc: fmt.Sprintf("DNSPort %s\nAutomapHostsOnResolve 1\nAutomapHostsSuffixes .\nVirtualAddrNetworkIPv4 %s\n", dnsPort, torVirtualNet) +
			fmt.Sprintf("ControlSocket %s\nSocksPort unix:%s ExtendedErrors\n", filepath.Join(sockDir, "control"), filepath.Join(sockDir, "socks")),
	})
	if err != nil {
		os.RemoveAll(sockDir)
		return torEnv{}, nil, fmt.Errorf("tornet: %w", err)
	}
	logf("private Tor network up in %s (%s)", time.Since(t0).Round(time.Second), nw.Dir)
	d, _ := netip.ParseAddrPort(nw.HTTPAddr())
	env := torEnv{socks: nw.SOCKSAddr(), control: nw.ControlAddr(), cookie: nw.CookiePath, dnsPort: dnsPort, dest: d,
		productSocks: "unix:" + filepath.Join(sockDir, "socks"), productControl: "unix:" + filepath.Join(sockDir, "control")}
	return env, func() { nw.Close(); os.RemoveAll(sockDir) }, nil
}

// freeUDP returns a 127.0.0.1 address whose UDP and TCP ports were both
// free a moment ago (socksd's DNS bridge serves both on its address).
func freeUDP() (string, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		c, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			c.Close()
			return addr, nil
		}
	}
	return "", fmt.Errorf("no port free for both TCP and UDP on 127.0.0.1")
}

// httpGet fetches path over a SOCKS5 connection to dst (HTTP/1.0, so the
// server closes); it returns the time from dial to the first response byte
// and the body length.
func httpGet(d *dialer, dst netip.AddrPort, path string, timeout time.Duration) (time.Duration, int64, error) {
	start := time.Now()
	c, err := d.dial(dst, timeout)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	c.SetDeadline(start.Add(timeout))
	return httpGetOn(c, start, dst.String(), path, false)
}

// hasConf reports whether GETCONF reply lines ("key=value") set key to
// value.
func hasConf(lines []string, key, value string) bool {
	for _, l := range lines {
		if k, v, ok := strings.Cut(l, "="); ok && k == key {
			return v == value
		}
	}
	return false
}
