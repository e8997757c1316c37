// Package tornet runs a private Tor network on loopback for socksd's
// end-to-end tests, the way Tor's own chutney does: 3 directory
// authorities, N exit relays (each sending its exit traffic from its own
// loopback address 127.0.0.2, .3, ...), a v3 onion service, a client tor with
// SocksPorts, an HTTPTunnelPort and a cookie-authenticated ControlPort,
// plus, in this process, a test HTTP server (the exits' target and the
// onion's backend) and the exits' only DNS server (a fixed zone, no
// upstream).
//
// Everything listens on 127.0.0.1 in a block of ports reserved with a lock
// file, so several networks (say two test packages) can run at once. Start
// waits for real readiness; Close stops every process it started, by PID.
//
//	n, err := tornet.Start(ctx, tornet.Options{})
//	defer n.Close()
//	body, err := tornet.Get(ctx, n.SOCKSAddr(), n.HTTPURL("/via")) // "exit0" (or exit1, exit2)
//
// Tools: Debian's tor and tor-gencert (scripts/install-deps.sh installs them).
package tornet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	initialVotingInterval = 10 // seconds; schedules the first consensus
	// firstVoteLead: the first consensus is aimed this many seconds after
	// the authorities start (vote at -4 s). 8 s suffices on an idle 2-core
	// box (tors up in ~0.5 s, descriptors at the authorities by ~2.5 s).
	// Tried: a load-dependent lead of up to 17 s (initial interval 20) did
	// not help at load 20-30 — later consensuses missed relays too — so it
	// stays simple.
	firstVoteLead  = 8
	defaultExits   = 3
	defaultTimeout = 120 * time.Second
	stopGrace      = 5 * time.Second
)

// Options configure Start. The zero value is a full network.
type Options struct {
	// Dir holds torrcs, data directories and logs. "" = a new temp dir,
	// removed by Close unless Keep. A given Dir must be empty or absent.
	Dir string
	// Keep leaves Dir on disk after Close (logs for a failed test run).
	Keep bool
	// Exits is the number of exit relays (default 3, at most 20).
	Exits int
	// NoClient: do not start the client tor. Tests then run their own
	// (socksd's managed-tor mode) with Network.ClientTorrc(). The exit
	// circuit and onion reachability checks are skipped.
	NoClient bool
	// NoOnion: no onion service.
	NoOnion bool
	// KeyCache keeps authority keys between runs (saves the seconds
	// tor-gencert takes). Default: $TORNET_KEYCACHE; "" = no cache.
	KeyCache string
	// Timeout bounds Start (default 120 s, or $TORNET_TIMEOUT seconds).
	Timeout time.Duration
	// VotingInterval after the first consensus, seconds (default 20; must be
	// >= 10 and divide 86400).
	VotingInterval int
	// LogLevel adds a per-node log file at this level ("info", "debug").
	LogLevel string
	// ExtraExitTorrc / ExtraClientTorrc are appended to those torrcs.
	ExtraExitTorrc, ExtraClientTorrc string
	// Profile names the links' shape (profile.go): "zero" (no injector),
	// "flat", "real", "lossy". "" = $TORNET_PROFILE, else "zero".
	Profile string
	// Tor is the tor binary (default "tor" on PATH, else /usr/sbin/tor).
	Tor string
	// Logf receives progress lines (t.Logf, log.Printf); nil = silent.
	Logf func(format string, args ...any)
}

// Exit is one exit relay.
type Exit struct {
	Nickname    string // exit0, exit1, ...
	Fingerprint string // 40 hex digits
	ORPort      int
	// BindAddr is its OutboundBindAddressExit (127.0.0.2, .3, ...). Tor
	// binds it only for non-loopback destinations, where Linux then fails
	// connect() with EINVAL: that is what keeps the exits on loopback. Its
	// connections to 127.0.0.1 come from 127.0.0.1 (see sockowner.go); the
	// test HTTP server tells exits apart by socket owner instead (/via).
	BindAddr string
}

// Relay is one directory authority.
type Relay struct {
	Nickname    string
	Fingerprint string
	ORPort      int
	DirPort     int
}

// Timings measured by Start, each from Start's beginning.
type Timings struct {
	Keys        time.Duration // authority keys ready
	Consensus   time.Duration // all authorities serve a consensus listing every relay
	Bootstrap   time.Duration // client tor Bootstrapped 100%
	ExitCircuit time.Duration // a page fetched through an exit
	OnionReady  time.Duration // the onion service answered through the client
	Total       time.Duration
}

// Network is a running private Tor network. Fields are read-only.
type Network struct {
	Dir            string
	SOCKSPort      int    // client SocksPort (plain); 0 with NoClient
	SOCKSPortExt   int    // client SocksPort with ExtendedErrors; 0 with NoClient
	HTTPTunnelPort int    // client HTTPTunnelPort (HTTP CONNECT); 0 with NoClient
	ControlPort    int    // client ControlPort; 0 with NoClient
	CookiePath     string // client control_auth_cookie
	HSControlPort  int    // the onion service tor's ControlPort
	HTTPPort       int    // test HTTP server on 127.0.0.1
	DNSPort        int    // test DNS server on 127.0.0.1 (UDP+TCP)
	OnionHost      string // "<56 chars>.onion"; "" with NoOnion
	Exits          []Exit
	Authorities    []Relay
	Profile        string // the links' profile ("zero", "real", ...)
	Timings        Timings

	links   []*Link // empty with a Direct profile
	cfg     *config
	dns     *dnsServer
	http    *httpServer
	spawn   *spawner
	mu      sync.Mutex
	procs   []*proc // the network's tors
	extra   []*proc // Spawn's processes
	closed  bool
	closeMu sync.Mutex // held by Close; guards closed
}

// config is what the torrc templates need.
type config struct {
	dir, emptyTorrc, resolvConf string
	tor                         string
	keyCache                    string
	logLevel                    string
	extraExit, extraClient      string
	ownerPID                    int
	votingInterval, voteOffset  int
	ports                       *portLease
	profile                     Profile
	innerOR                     map[string]int // relay -> the port it listens on behind its Link
	auths                       []authority
	exits                       []Exit
	keep, ownDir                bool
	logf                        func(string, ...any)
}

func (c *config) exitNames() []string {
	var names []string
	for _, e := range c.exits {
		names = append(names, e.Nickname)
	}
	return names
}

// Start brings a network up and returns once it is ready (see Options). On
// error everything started so far is stopped again, and the error names
// the log to read (Dir is kept on failure).
func Start(ctx context.Context, opt Options) (*Network, error) {
	t0 := time.Now()
	cfg, err := newConfig(opt)
	if err != nil {
		return nil, err
	}
	timeout := opt.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
		if s, err := strconv.Atoi(os.Getenv("TORNET_TIMEOUT")); err == nil && s > 0 {
			timeout = time.Duration(s) * time.Second
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	n := &Network{Dir: cfg.dir, cfg: cfg, spawn: newSpawner()}
	if err := n.start(ctx, opt, t0); err != nil {
		cfg.keep = true // the logs explain the failure
		n.Close()
		return nil, fmt.Errorf("%w (logs in %s)", err, cfg.dir)
	}
	n.Timings.Total = time.Since(t0)
	n.logf("network ready in %.1fs", n.Timings.Total.Seconds())
	return n, nil
}

func newConfig(opt Options) (*config, error) {
	cfg := &config{
		keep:        opt.Keep,
		logLevel:    opt.LogLevel,
		extraExit:   opt.ExtraExitTorrc,
		extraClient: opt.ExtraClientTorrc,
		ownerPID:    os.Getpid(),
		logf:        opt.Logf,
		keyCache:    opt.KeyCache,
	}
	if cfg.keyCache == "" {
		cfg.keyCache = os.Getenv("TORNET_KEYCACHE")
	}
	prof, err := ProfileByName(opt.Profile)
	if err != nil {
		return nil, err
	}
	cfg.profile = prof
	cfg.innerOR = map[string]int{}
	cfg.votingInterval = opt.VotingInterval
	if cfg.votingInterval == 0 {
		cfg.votingInterval = 20
	}
	if cfg.votingInterval < 10 || 86400%cfg.votingInterval != 0 {
		return nil, fmt.Errorf("tornet: VotingInterval %d must be >= 10 and divide 86400", cfg.votingInterval)
	}
	nexits := opt.Exits
	if nexits == 0 {
		nexits = defaultExits
	}
	if nexits < 1 || nexits > maxExits {
		return nil, fmt.Errorf("tornet: Exits must be 1..%d", maxExits)
	}
	cfg.tor = opt.Tor
	if cfg.tor == "" {
		cfg.tor = "tor"
		if _, err := exec.LookPath("tor"); err != nil {
			cfg.tor = "/usr/sbin/tor" // Debian puts tor in sbin, often not on a user's PATH
		}
	}
	for _, bin := range []string{cfg.tor, "tor-gencert"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("tornet: %s not found (scripts/install-deps.sh installs it): %w", bin, err)
		}
	}
	if opt.Dir == "" {
		d, err := os.MkdirTemp("", "tornet-")
		if err != nil {
			return nil, err
		}
		cfg.dir, cfg.ownDir = d, true
	} else {
		d, err := filepath.Abs(opt.Dir)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		if ents, err := os.ReadDir(d); err != nil || len(ents) > 0 {
			return nil, fmt.Errorf("tornet: %s must be empty (err %v): a fresh dir can never clobber a running network", d, err)
		}
		cfg.dir = d
	}
	for j := 0; j < nexits; j++ {
		cfg.exits = append(cfg.exits, Exit{
			Nickname: "exit" + strconv.Itoa(j),
			BindAddr: "127.0.0." + strconv.Itoa(2+j),
		})
	}
	return cfg, nil
}

func (n *Network) logf(format string, args ...any) {
	if n.cfg.logf != nil {
		n.cfg.logf("tornet: "+format, args...)
	}
}

func (n *Network) start(ctx context.Context, opt Options, t0 time.Time) error {
	cfg := n.cfg
	ports, err := leasePorts()
	if err != nil {
		return err
	}
	cfg.ports = ports
	n.HTTPPort = ports.port(offHTTP)
	n.DNSPort = ports.port(offDNS)
	if !opt.NoClient {
		n.SOCKSPort = ports.port(offSocks)
		n.SOCKSPortExt = ports.port(offSocksExt)
		n.HTTPTunnelPort = ports.port(offHTTPTun)
		n.ControlPort = ports.port(offControl)
		n.CookiePath = filepath.Join(cfg.dir, "client", "control_auth_cookie")
	}
	if !opt.NoOnion {
		n.HSControlPort = ports.port(offHSControl)
	}
	n.Profile = cfg.profile.Name
	n.logf("dir %s, ports %d-%d, profile %s", cfg.dir, ports.base, ports.base+portBlock-1, n.Profile)

	cfg.emptyTorrc = filepath.Join(cfg.dir, "empty.torrc") // tor refuses -f /dev/null
	cfg.resolvConf = filepath.Join(cfg.dir, "resolv.conf")
	if err := os.WriteFile(cfg.emptyTorrc, nil, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(cfg.resolvConf, fmt.Appendf(nil, "nameserver 127.0.0.1:%d\n", n.DNSPort), 0o644); err != nil {
		return err
	}
	dnsAddr, httpAddr := n.DNSAddr(), n.HTTPAddr()
	if !cfg.profile.Direct {
		dnsAddr, httpAddr = addr(ports.port(offInnerDNS)), addr(ports.port(offInnerHTTP))
	}
	if n.dns, err = startDNS(dnsAddr); err != nil {
		return err
	}
	if n.http, err = startHTTP(httpAddr, n.peerTor); err != nil {
		return err
	}
	if !cfg.profile.Direct {
		if err := n.addLink("dns", n.DNSAddr(), dnsAddr, true); err != nil {
			return err
		}
		if err := n.addLink("http", n.HTTPAddr(), httpAddr, false); err != nil {
			return err
		}
	}

	for i := 0; i < 3; i++ {
		cfg.auths = append(cfg.auths, authority{
			name:    "auth" + strconv.Itoa(i),
			orPort:  ports.port(offAuthOR + i),
			dirPort: ports.port(offAuthDir + i),
		})
	}
	if err := makeAuthorityKeys(ctx, cfg, cfg.auths); err != nil {
		return err
	}
	n.Timings.Keys = time.Since(t0)
	n.logf("authority keys ready (+%.1fs)", n.Timings.Keys.Seconds())
	for i := range cfg.exits {
		cfg.exits[i].ORPort = ports.port(offExitOR + i)
	}
	if !cfg.profile.Direct {
		for i, a := range cfg.auths {
			cfg.innerOR[a.name] = ports.port(offInnerOR + i)
			if err := n.addLink(a.name, addr(a.orPort), addr(cfg.innerOR[a.name]), false); err != nil {
				return err
			}
		}
		for i, e := range cfg.exits {
			cfg.innerOR[e.Nickname] = ports.port(offInnerOR + len(cfg.auths) + i)
			if err := n.addLink(e.Nickname, addr(e.ORPort), addr(cfg.innerOR[e.Nickname]), false); err != nil {
				return err
			}
		}
	}

	// The first consensus's valid-after is the next second s with
	// s % initialVotingInterval == offset; the vote happens 4 s before
	// (vote + dist delay). Every relay's descriptor must have reached the
	// authorities by then, or the next consensus comes a whole voting
	// interval later.
	cfg.voteOffset = int((time.Now().Unix() + 1 + firstVoteLead) % initialVotingInterval)
	var fps []string
	for _, a := range cfg.auths {
		fps = append(fps, a.fp)
	}
	if err := cfg.writeBandwidths(fps); err != nil {
		return err
	}
	for i, a := range cfg.auths {
		if err := n.startTor(a.name, cfg.authorityTorrc(i)); err != nil {
			return err
		}
	}
	for _, a := range cfg.auths {
		if err := n.waitListening(ctx, a.dirPort); err != nil {
			return fmt.Errorf("tornet: %s DirPort: %w", a.name, err)
		}
	}
	for _, e := range cfg.exits {
		if err := n.startTor(e.Nickname, cfg.exitTorrc(e)); err != nil {
			return err
		}
	}
	n.logf("authorities and %d exits started", len(cfg.exits))

	for i := range cfg.exits {
		fp, err := waitFingerprint(ctx, filepath.Join(cfg.dir, cfg.exits[i].Nickname))
		if err != nil {
			return err
		}
		cfg.exits[i].Fingerprint = fp
		fps = append(fps, fp)
	}
	if err := cfg.writeBandwidths(fps); err != nil {
		return err
	}
	n.Exits = append([]Exit(nil), cfg.exits...)
	for _, a := range cfg.auths {
		n.Authorities = append(n.Authorities, Relay{Nickname: a.name, Fingerprint: a.fp, ORPort: a.orPort, DirPort: a.dirPort})
	}

	if err := n.waitConsensus(ctx); err != nil {
		return err
	}
	n.Timings.Consensus = time.Since(t0)
	n.logf("consensus lists all %d relays (+%.1fs)", 3+len(cfg.exits), n.Timings.Consensus.Seconds())

	// Exits are directory caches too. Still backing off after the 404s they
	// got before the first consensus existed, they would answer the client's
	// microdescriptor fetch "outdated" and cost it a 10 s retry; SIGHUP makes
	// tor reset its download schedules and fetch the consensus now.
	n.hupExits()
	n.waitExitsHaveConsensus(ctx)
	n.logf("exits have the consensus (+%.1fs)", time.Since(t0).Seconds())

	if !opt.NoClient {
		if err := n.startTor("client", cfg.clientTorrc(n)); err != nil {
			return err
		}
	}
	if !opt.NoOnion {
		if err := os.MkdirAll(filepath.Join(cfg.dir, "hs", "hs_web"), 0o700); err != nil {
			return err
		}
		if err := n.startTor("hs", cfg.onionTorrc(n)); err != nil {
			return err
		}
	}
	if !opt.NoClient {
		if err := n.waitLog(ctx, "client", "notice.log", "Bootstrapped 100%"); err != nil {
			return err
		}
		n.Timings.Bootstrap = time.Since(t0)
		n.logf("client bootstrapped (+%.1fs)", n.Timings.Bootstrap.Seconds())
		if err := n.waitExitCircuit(ctx); err != nil {
			return err
		}
		n.Timings.ExitCircuit = time.Since(t0)
		n.logf("exit circuit works (+%.1fs)", n.Timings.ExitCircuit.Seconds())
	}
	if !opt.NoOnion {
		if err := n.waitOnion(ctx, !opt.NoClient); err != nil {
			return err
		}
		n.Timings.OnionReady = time.Since(t0)
		n.logf("onion service %s ready (+%.1fs)", n.OnionHost, n.Timings.OnionReady.Seconds())
	}
	return n.writeEnv()
}

func (n *Network) startTor(name, torrc string) error {
	dir := filepath.Join(n.cfg.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, "torrc")
	if err := os.WriteFile(path, []byte(torrc), 0o644); err != nil {
		return err
	}
	p, err := n.spawn.startProc(name, filepath.Join(dir, "stdout.log"),
		n.cfg.tor, "-f", path, "--defaults-torrc", n.cfg.emptyTorrc)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.mu.Unlock()
	return nil
}

// StartClient starts one more client tor on the network, configured like
// the network's own client (the same torrc but for its ports: extraTorrc
// gives those, e.g. "SocksPort 127.0.0.1:P\nControlSocket /path\n
// CookieAuthentication 1"). It returns once the tor has bootstrapped, with
// its data directory (Dir/name: logs, control_auth_cookie). Close stops it.
// Benchmarks use it to give two clients the same tor each (Tor alone, and
// Tor behind socksd) so neither controller's work touches the other. name
// is also the tor's Nickname: 1-19 letters and digits.
func (n *Network) StartClient(ctx context.Context, name, extraTorrc string) (string, error) {
	dir := filepath.Join(n.cfg.dir, name)
	if _, err := os.Stat(dir); err == nil {
		return "", fmt.Errorf("tornet: a node named %s exists", name)
	}
	if err := n.startTor(name, n.cfg.commonTorrc(name)+clientBuildTimeout+extraTorrc+"\n"); err != nil {
		return "", err
	}
	if err := n.waitLog(ctx, name, "notice.log", "Bootstrapped 100%"); err != nil {
		return "", err
	}
	return dir, nil
}

func (n *Network) hupExits() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.procs {
		if strings.HasPrefix(p.name, "exit") {
			p.Signal(sighup)
		}
	}
}

// Close stops every process Start started (SIGTERM, then SIGKILL after 5 s),
// the in-process servers and the port lease, and removes Dir if Start made
// it (and neither Keep nor a failed Start asked to keep it). Safe to call
// more than once.
func (n *Network) Close() error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.mu.Lock()
	procs := append(append([]*proc(nil), n.extra...), n.procs...)
	n.mu.Unlock()
	// Spawned processes (socksd) first: they are clients of the network.
	for _, p := range n.extra {
		p.Stop(stopGrace)
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Stop(stopGrace)
		}()
	}
	wg.Wait()
	n.spawn.close()
	for _, l := range n.links {
		l.close()
	}
	if n.dns != nil {
		n.dns.close()
	}
	if n.http != nil {
		n.http.close()
	}
	if n.cfg.ports != nil {
		n.cfg.ports.release()
	}
	if n.cfg.ownDir && !n.cfg.keep {
		return os.RemoveAll(n.cfg.dir)
	}
	return nil
}

// Addresses, URLs and logs.

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// SOCKSAddr is the client's plain SocksPort, "127.0.0.1:P".
func (n *Network) SOCKSAddr() string { return addr(n.SOCKSPort) }

// SOCKSAddrExt is the client's SocksPort with ExtendedErrors.
func (n *Network) SOCKSAddrExt() string { return addr(n.SOCKSPortExt) }

// HTTPTunnelAddr is the client's HTTPTunnelPort, "127.0.0.1:P": tor's own
// HTTP CONNECT, for tests that compare socksd's answers with tor's.
func (n *Network) HTTPTunnelAddr() string { return addr(n.HTTPTunnelPort) }

// ControlAddr is the client's ControlPort (cookie auth, CookiePath).
func (n *Network) ControlAddr() string { return addr(n.ControlPort) }

// HTTPAddr is the test HTTP server.
func (n *Network) HTTPAddr() string { return addr(n.HTTPPort) }

// DNSAddr is the test DNS server (the exits' resolver).
func (n *Network) DNSAddr() string { return addr(n.DNSPort) }

// HTTPURL is the test HTTP server reached by IP, e.g. HTTPURL("/whoami").
func (n *Network) HTTPURL(path string) string { return "http://" + n.HTTPAddr() + path }

// NameURL is the test HTTP server reached by a name the exits resolve
// (host.example.test → 127.0.0.1).
func (n *Network) NameURL(path string) string {
	return "http://" + HostName + ":" + strconv.Itoa(n.HTTPPort) + path
}

// OnionURL is the test HTTP server behind the onion service (port 80).
func (n *Network) OnionURL(path string) string { return "http://" + n.OnionHost + path }

// Control opens an authenticated control connection to the client tor.
func (n *Network) Control(ctx context.Context) (*Control, error) {
	if n.ControlPort == 0 {
		return nil, errors.New("tornet: network has no client tor")
	}
	return DialControl(ctx, n.ControlAddr(), n.CookiePath)
}

// ExitByName returns the exit with this nickname ("exit1").
func (n *Network) ExitByName(nick string) (Exit, bool) {
	for _, e := range n.Exits {
		if e.Nickname == nick {
			return e, true
		}
	}
	return Exit{}, false
}

// Links returns the network's links (none with the zero profile): one per
// relay, named after it, then "dns" and "http" for the test destinations.
func (n *Network) Links() []*Link { return append([]*Link(nil), n.links...) }

// Link returns the link named name ("exit1", "auth2", "http", "dns"), or nil.
func (n *Network) Link(name string) *Link {
	for _, l := range n.links {
		if l.Name == name {
			return l
		}
	}
	return nil
}

func (n *Network) addLink(name, listen, target string, udp bool) error {
	l, err := newLink(name, listen, target, n.cfg.profile.shapeFor(name), udp)
	if err != nil {
		return fmt.Errorf("tornet: link %s on %s: %w", name, listen, err)
	}
	n.links = append(n.links, l)
	return nil
}

// HTTPLog returns every request the test HTTP server has handled so far.
func (n *Network) HTTPLog() []HTTPHit { return n.http.log() }

// DNSLog returns every question the test DNS server has received so far.
func (n *Network) DNSLog() []DNSQuery { return n.dns.log() }

// PIDs maps each running tor's name (auth0, exit1, client, hs) to its PID.
func (n *Network) PIDs() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := map[string]int{}
	for _, p := range n.procs {
		if !p.Exited() {
			m[p.name] = p.PID()
		}
	}
	return m
}

// RSS returns the resident set size of each running tor, in bytes
// (VmRSS from /proc/PID/status).
func (n *Network) RSS() map[string]int64 {
	m := map[string]int64{}
	for name, pid := range n.PIDs() {
		if kb, err := fieldAfter(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:"); err == nil {
			if v, err := strconv.ParseInt(kb, 10, 64); err == nil {
				m[name] = v * 1024
			}
		}
	}
	return m
}

// Env returns KEY=VALUE lines describing the network (written to Dir/env;
// the names are the SOCKSD_TOR_* tests' and cmd/tornet's: CONTROL_PORT,
// SOCKS_PORT, COOKIE_PATH, ...).
func (n *Network) Env() []string {
	var fps, srcs, names []string
	for _, e := range n.Exits {
		fps = append(fps, e.Fingerprint)
		srcs = append(srcs, e.BindAddr)
		names = append(names, e.Nickname)
	}
	var dirports []string
	for _, a := range n.Authorities {
		dirports = append(dirports, strconv.Itoa(a.DirPort))
	}
	env := []string{
		"TORNET_DIR=" + n.Dir,
		"TORNET_PROFILE=" + n.Profile,
		"HTTP_PORT=" + strconv.Itoa(n.HTTPPort),
		"DNS_PORT=" + strconv.Itoa(n.DNSPort),
		"DNS_NAME=" + ZoneName,
		"EXIT_NICKNAMES=" + strings.Join(names, ","),
		"EXIT_FINGERPRINTS=" + strings.Join(fps, ","),
		"EXIT_BIND_ADDRS=" + strings.Join(srcs, ","),
		"AUTH_DIRPORTS=" + strings.Join(dirports, ","),
	}
	if n.SOCKSPort != 0 {
		env = append(env,
			"SOCKS_PORT="+strconv.Itoa(n.SOCKSPort),
			"SOCKS_PORT_EXT="+strconv.Itoa(n.SOCKSPortExt),
			"HTTP_TUNNEL_PORT="+strconv.Itoa(n.HTTPTunnelPort),
			"CONTROL_PORT="+strconv.Itoa(n.ControlPort),
			"COOKIE_PATH="+n.CookiePath)
	}
	if n.OnionHost != "" {
		env = append(env, "ONION_HOST="+n.OnionHost, "HS_CONTROL_PORT="+strconv.Itoa(n.HSControlPort))
	}
	t := n.Timings
	env = append(env,
		fmt.Sprintf("CONSENSUS_SECONDS=%.1f", t.Consensus.Seconds()),
		fmt.Sprintf("BOOTSTRAP_SECONDS=%.1f", t.Bootstrap.Seconds()),
		fmt.Sprintf("ONION_READY_SECONDS=%.1f", t.OnionReady.Seconds()))
	sort.Strings(env)
	return env
}

func (n *Network) writeEnv() error {
	return os.WriteFile(filepath.Join(n.Dir, "env"), []byte(strings.Join(n.Env(), "\n")+"\n"), 0o644)
}

// CopyLogs copies every node's torrc and log files (notice.log, rend.log,
// stdout.log, ...) to dst/<node>/, for keeping as artifacts of a failed run.
func (n *Network) CopyLogs(dst string) error {
	ents, err := os.ReadDir(n.Dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(n.Dir, e.Name(), "*.log"))
		files = append(files, filepath.Join(n.Dir, e.Name(), "torrc"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if err := os.MkdirAll(filepath.Join(dst, e.Name()), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dst, e.Name(), filepath.Base(f)), b, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
