package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"socksd/test/tornet"
)

// socksbench user measures what a user feels, on a private network whose
// links have latency (test/tornet profiles, "real" by default): socksd in
// its product configuration against Tor alone, each with a client tor of
// its own on the same network, started from the same torrc:
//
//   - tor-a is Tor alone: the bench's client speaks SOCKS5 to its SocksPort
//     with a username per identity (IsolateSOCKSAuth), and no controller
//     but a passive event listener is attached to it;
//   - tor-b is socksd's tor: socksd reaches its control port and SocksPort
//     over Unix sockets (as deploy/ sets it up), attaches streams, runs the
//     DNS bridge; the bench speaks SOCKS5 to socksd with the same usernames.
//
// With a tor each, neither controller can touch the other's streams, both
// run the whole time (socksd keeps what it learns, as a user's does), and
// the circuits and CPU of each are counted apart. The targets take turns
// unit by unit (one identity, one burst, one bulk round), in a random order
// within each turn, so a change in the shared machine's load moves both.
type userTarget struct {
	name    string // "tor", "socksd", "tor-nocfx"
	torName string // its client tor
	proxy   string // where the bench's client speaks SOCKS5
	pid     int    // socksd's pid; 0 for Tor alone
	obs     *circObserver
	torPID  int     // its client tor's pid
	cpu0    float64 // CPU seconds at the start of the measured period
	torCPU0 float64
}

// userSettings are the workload's sizes.
type userSettings struct {
	IDs, Later, Bursts, BurstN int
	BurstSpan                  time.Duration
	BulkRounds, BulkBytes      int
	Parallel, ParallelBytes    int
	OnionIDs                   int
	IsoStreams, IsoIDs         int
	IsoWorkers                 int
	Idle                       time.Duration
}

// Measures, in the order of the report.
const (
	mNewSeq     = "new identity, first stream (sequential)"
	mNewBurst   = "new identity, first stream (bursts)"
	mKnown      = "known identity, later stream"
	mBulk1      = "bulk, 1 stream (MB/s)"
	mBulkPar    = "bulk, 8 parallel streams (MB/s)"
	mOnionFirst = "onion, first stream of an identity"
	mOnionLater = "onion, later stream"
	mIsolation  = "isolation check streams"
)

var userMeasures = []string{mNewSeq, mNewBurst, mKnown, mBulk1, mBulkPar, mOnionFirst, mOnionLater}

// userResults holds every sample: measure → target → values (ms, or MB/s
// for bulk).
type userResults struct {
	mu       sync.Mutex
	Samples  map[string]map[string][]float64
	Errors   map[string]map[string]int
	FirstErr map[string]string
}

func newUserResults() *userResults {
	return &userResults{Samples: map[string]map[string][]float64{}, Errors: map[string]map[string]int{}, FirstErr: map[string]string{}}
}

func (r *userResults) add(measure, target string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Samples[measure] == nil {
		r.Samples[measure] = map[string][]float64{}
	}
	r.Samples[measure][target] = append(r.Samples[measure][target], v)
}

func (r *userResults) fail(measure, target string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Errors[measure] == nil {
		r.Errors[measure] = map[string]int{}
	}
	r.Errors[measure][target]++
	if r.FirstErr[target] == "" {
		r.FirstErr[target] = measure + ": " + err.Error()
	}
}

func runUser(args []string) error {
	fs := flag.NewFlagSet("user", flag.ExitOnError)
	socksd := fs.String("socksd", "", "socksd binary")
	profile := fs.String("profile", "real", "the network's link profile: "+strings.Join(tornet.ProfileNames(), ", "))
	var s userSettings
	fs.IntVar(&s.IDs, "ids", 30, "sequential new identities per target (each: a first stream, then -later streams)")
	fs.IntVar(&s.Later, "later", 2, "later streams per sequential identity")
	fs.IntVar(&s.Bursts, "bursts", 2, "bursts of new identities per target")
	fs.IntVar(&s.BurstN, "burst-n", 20, "new identities per burst")
	fs.DurationVar(&s.BurstSpan, "burst-span", time.Second, "a burst's identities start evenly spread over this time")
	fs.IntVar(&s.BulkRounds, "bulk", 3, "bulk rounds per target: one GET of -bulk-bytes, then -parallel GETs of -parallel-bytes at once, on one identity")
	fs.IntVar(&s.BulkBytes, "bulk-bytes", 4<<20, "bytes of the one-stream GET")
	fs.IntVar(&s.Parallel, "parallel", 8, "streams of the parallel GET")
	fs.IntVar(&s.ParallelBytes, "parallel-bytes", 2<<20, "bytes per stream of the parallel GET")
	fs.IntVar(&s.OnionIDs, "onion", 5, "onion identities per target (each: a first stream, then -later streams)")
	budget := fs.Duration("budget", 10*time.Minute, "bound on the workload: phases not reached by then are skipped (the report says so)")
	fs.IntVar(&s.IsoStreams, "isolation", 0, "isolation check: this many streams per target from -iso-ids identities, checked on Tor's STREAM events (0: none)")
	fs.IntVar(&s.IsoIDs, "iso-ids", 24, "identities of the isolation check")
	fs.IntVar(&s.IsoWorkers, "iso-workers", 8, "streams of the isolation check in flight at once")
	fs.DurationVar(&s.Idle, "idle", 0, "after the workload, wait this long with no traffic, then count circuits built and never used")
	socksdBase := fs.String("socksd-base", "", "a second socksd build (say the one before a change), measured in the same run as socksd-base with a client tor of its own")
	confluxOff := fs.Bool("conflux-off", false, "also measure Tor alone with ConfluxEnabled 0 (tor-nocfx): what conflux does to its figures")
	out := fs.String("out", "results", "output directory (user.md, user.json)")
	fs.Parse(args)
	if *socksd == "" {
		return fmt.Errorf("need -socksd")
	}
	logf := func(f string, a ...any) { os.Stderr.WriteString(stampLine(f, a...)) }
	t0 := time.Now()
	loadStart := loadAvg()

	// A first signal (run.sh's timeout, Ctrl-C) cancels bring-up, or ends
	// the workload early: the report then has what was measured. A second
	// one stops socksd and the network at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigc := make(chan os.Signal, 2)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigc)
	live := &liveProc{}
	var netMu sync.Mutex
	var nw *tornet.Network
	go func() {
		sig := <-sigc
		logf("%v: ending the workload; the report follows (a second signal stops at once)", sig)
		cancel()
		sig = <-sigc
		logf("%v: stopping socksd and the network", sig)
		live.stop()
		netMu.Lock()
		if nw != nil {
			nw.Close()
		}
		netMu.Unlock()
		os.Exit(1)
	}()

	startCtx, startCancel := context.WithTimeout(ctx, 5*time.Minute)
	defer startCancel()
	n, err := tornet.Start(startCtx, tornet.Options{Profile: *profile, Exits: 3, NoClient: true, Logf: logf})
	if err != nil {
		return err
	}
	netMu.Lock()
	nw = n
	netMu.Unlock()
	defer n.Close()
	upTime := time.Since(t0)
	logf("network (%s) up in %s", n.Profile, upTime.Round(100*time.Millisecond))

	sockDir, err := os.MkdirTemp("", "sbu") // short: sun_path holds 108 bytes
	if err != nil {
		return err
	}
	defer os.RemoveAll(sockDir)
	names := []string{"tor", "socksd"}
	if *socksdBase != "" {
		names = append(names, "socksd-base")
	}
	if *confluxOff {
		names = append(names, "tor-nocfx")
	}
	targets := make([]*userTarget, len(names))
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			targets[i], errs[i] = startUserClient(startCtx, n, name, sockDir)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	logf("client tors bootstrapped (+%s)", time.Since(t0).Round(100*time.Millisecond))

	b := &bench{logf: logf}
	var metricsAddr string // the measured socksd's
	for _, t := range targets {
		bin := map[string]string{"socksd": *socksd, "socksd-base": *socksdBase}[t.name]
		if bin == "" {
			continue
		}
		var bridge, maddr string
		r, err := b.startProc("socksd", func(addr, dir string) ([]string, error) {
			if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
				return nil, err
			}
			var err error
			if maddr, err = freeAddr(); err != nil {
				return nil, err
			}
			if bridge, err = freeUDP(); err != nil {
				return nil, err
			}
			env := torEnv{productControl: "unix:" + filepath.Join(sockDir, t.torName+".ctl"), productSocks: "unix:" + filepath.Join(sockDir, t.torName+".socks")}
			conf := filepath.Join(dir, "socksd.toml")
			if err := os.WriteFile(conf, []byte(socksdProductConf(addr, env, dir, maddr, bridge)), 0o644); err != nil {
				return nil, err
			}
			return []string{bin, "-config", conf}, nil
		})
		if err != nil {
			return err
		}
		defer r.stop()
		if t.name == "socksd" {
			live.set(r)
			metricsAddr = maddr
		}
		if err := waitHealthy(maddr, 60*time.Second); err != nil {
			return err
		}
		t.proxy, t.pid = r.addr, r.pid
	}

	dest := n.HTTPAddr()
	onion := n.OnionHost
	warm := func(t *userTarget) error {
		// The onion's descriptor is fetched once here, so the onion
		// measures are circuits and streams, not a directory fetch.
		var last error
		for try := range 5 {
			_, _, e1 := userGet(ctx, t.proxy, dest, "warm-"+t.name, "/", 60*time.Second)
			_, _, e2 := userGet(ctx, t.proxy, onion+":80", "warm-onion-"+t.name+strconv.Itoa(try), "/", 90*time.Second)
			if last = e1; last == nil {
				if last = e2; last == nil {
					return nil
				}
			}
		}
		return fmt.Errorf("%s: warm-up: %w", t.name, last)
	}
	for _, t := range targets {
		if err := warm(t); err != nil {
			return err
		}
	}
	for _, t := range targets {
		t.obs.reset()
		t.torPID = n.PIDs()[t.torName]
		t.torCPU0 = procCPU(t.torPID)
		if t.pid != 0 {
			t.cpu0 = procCPU(t.pid)
		}
	}
	logf("warm; measuring (+%s)", time.Since(t0).Round(100*time.Millisecond))

	// The pool's high-water mark: its gauges, sampled every 2 s (each scrape costs socksd some CPU, which its CPU figure includes).
	poolMax := map[string]float64{}
	var poolMu sync.Mutex
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		if metricsAddr == "" {
			return
		}
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			for _, l := range scrapeMatching(metricsAddr, "pool") {
				name, val, _ := strings.Cut(l, " ")
				metric, _, _ := strings.Cut(name, "{")
				if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil && !strings.HasSuffix(metric, "_total") {
					poolMu.Lock()
					poolMax[name] = max(poolMax[name], v)
					poolMu.Unlock()
				}
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	res := newUserResults()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	wctx, wcancel := context.WithTimeout(ctx, *budget)
	defer wcancel()
	w := &userWorkload{ctx: wctx, s: s, res: res, dest: dest, onion: onion + ":80", rng: rng, logf: logf}
	w.run(targets)
	cutShort := wctx.Err() != nil
	measured := time.Since(t0) - upTime
	stopSampling()
	<-sampled

	rep := userReport{
		Profile: n.Profile, Settings: s, LoadStart: loadStart, LoadEnd: loadAvg(), NetworkUp: upTime.Seconds(),
		Samples: res.Samples, Errors: res.Errors, FirstErr: res.FirstErr, CutShort: cutShort,
		Circuits: map[string]circCounts{}, CPU: map[string]float64{}, TorCPU: map[string]float64{}, PoolMax: poolMax,
	}
	if s.IsoStreams > 0 {
		rep.Isolation = map[string]isoResult{}
		for _, t := range targets {
			circs, mixed := t.obs.isolation()
			rep.Isolation[t.name] = isoResult{Streams: len(res.Samples[mIsolation][t.name]), Errors: res.Errors[mIsolation][t.name], Circuits: circs, Mixed: mixed}
		}
	}
	for _, t := range targets {
		c, d, _ := t.obs.snapshot()
		rep.Circuits[t.name] = c
		rep.Hours = d.Hours()
		rep.TorCPU[t.name] = procCPU(t.torPID) - t.torCPU0
		if t.pid != 0 {
			rep.CPU[t.name] = procCPU(t.pid) - t.cpu0
		}
	}
	if metricsAddr != "" {
		rep.PoolMetrics = scrapeMatching(metricsAddr, "pool")
	}
	if s.Idle > 0 {
		logf("idle for %s", s.Idle)
		cpu0 := map[string]float64{}
		for _, t := range targets {
			cpu0[t.name], cpu0["tor of "+t.name] = procCPU(t.pid), procCPU(t.torPID)
		}
		i0 := time.Now()
		select {
		case <-time.After(s.Idle):
		case <-ctx.Done():
		}
		rep.Unused = map[string]map[string]int{}
		rep.IdleCPU = map[string]float64{}
		for _, t := range targets {
			_, _, u := t.obs.snapshot()
			rep.Unused[t.name] = u
			// CPU seconds per minute without traffic.
			if t.pid != 0 {
				rep.IdleCPU[t.name] = (procCPU(t.pid) - cpu0[t.name]) / time.Since(i0).Minutes()
			}
			rep.IdleCPU["tor of "+t.name] = (procCPU(t.torPID) - cpu0["tor of "+t.name]) / time.Since(i0).Minutes()
		}
	}
	for _, t := range targets {
		t.obs.close()
	}
	rep.Elapsed = time.Since(t0).Seconds()
	rep.Measured = measured.Seconds()
	md := rep.markdown(names)
	os.Stdout.WriteString(md)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(rep, "", " ")
	if err := os.WriteFile(filepath.Join(*out, "user.json"), js, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*out, "user.md"), []byte(md), 0o644)
}

// procCPU is one process's CPU seconds (utime+stime), NaN when pid is 0 or
// gone (so a figure never silently covers another process).
func procCPU(pid int) float64 {
	if pid <= 0 {
		return math.NaN()
	}
	f, err := statFields(pid)
	if err != nil || len(f) < 13 {
		return math.NaN()
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// startUserClient starts the client tor of one target: the same torrc for
// all (tornet's client torrc), a TCP SocksPort, and a SocksPort and control
// socket on Unix sockets in sockDir.
func startUserClient(ctx context.Context, n *tornet.Network, name, sockDir string) (*userTarget, error) {
	t := &userTarget{name: name, torName: "c" + strings.ReplaceAll(name, "-", "")} // a nickname: letters and digits
	socks, err := freeAddr()
	if err != nil {
		return nil, err
	}
	ctl := filepath.Join(sockDir, t.torName+".ctl")
	extra := fmt.Sprintf("SocksPort %s\nSocksPort unix:%s ExtendedErrors\nControlSocket %s\nCookieAuthentication 1\n",
		socks, filepath.Join(sockDir, t.torName+".socks"), ctl)
	if name == "tor-nocfx" {
		extra += "ConfluxEnabled 0\n"
	}
	dir, err := n.StartClient(ctx, t.torName, extra)
	if err != nil {
		return nil, err
	}
	t.proxy = socks
	if t.obs, err = observeCircuits(ctx, "unix:"+ctl, filepath.Join(dir, "control_auth_cookie")); err != nil {
		return nil, fmt.Errorf("%s: %w", t.torName, err)
	}
	return t, nil
}

// userGet fetches path from addr ("host:port"; the name goes to the proxy)
// through the SOCKS5 proxy with username user (password "x"), HTTP/1.0 so
// the server closes. It returns the time from the start of the dial to the
// first byte of the answer, and the body's length.
func userGet(ctx context.Context, proxy, addr, user, path string, timeout time.Duration) (time.Duration, int64, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, 0, err
	}
	port, _ := strconv.Atoi(ps)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	c, err := tornet.DialSOCKS5(ctx, proxy, host, port, user, "x")
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	return httpGetOn(c, start, host, path, true)
}

// scrapeMatching returns socksd's metric lines whose name contains sub
// (comments left out), for the report.
func scrapeMatching(addr, sub string) []string {
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return []string{"metrics: " + err.Error()}
	}
	defer resp.Body.Close()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		name, _, _ := strings.Cut(l, " ")
		name, _, _ = strings.Cut(name, "{")
		if !strings.HasPrefix(l, "#") && strings.Contains(name, sub) && !strings.Contains(name, "dns") {
			lines = append(lines, l)
		}
	}
	return lines
}
