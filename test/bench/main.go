// Command socksbench is socksd's benchmark suite: a loopback
// sink, SOCKS5/SOCKS4a load clients, and a runner that measures socksd
// side by side with direct TCP and peer SOCKS servers, alternating
// targets within each repetition, and writes a Markdown table and a PNG
// chart.
//
//	socksbench sink                   the sink process (started by run)
//	socksbench run [flags]            the suite; see -h
//	socksbench report -in FILE.json   redraw table and chart from samples
//	socksbench tor -socksd BIN        through a real Tor (own private network):
//	                                  TTFB, bulk, attach latency, DNS bridge
//	socksbench user -socksd BIN       what a user feels on a network with link
//	                                  latency (-profile real): new identities,
//	                                  bursts, bulk, onion, circuits, CPU
//
// Every load loop is bounded in count and time; every address is loopback.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: socksbench sink | run [flags] | report -in samples.json -out DIR | tor [flags] | user [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "sink":
		err = runSink(os.Args[2:])
	case "run":
		err = runSuite(os.Args[2:])
	case "report":
		err = runReport(os.Args[2:])
	case "tor":
		err = runTor(os.Args[2:])
	case "user":
		err = runUser(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "socksbench:", err)
		os.Exit(1)
	}
}

type sinkAddrs struct {
	echo, discard, source netip.AddrPort
	cmd                   *exec.Cmd
	stdin                 io.WriteCloser
}

// bench holds one run's settings and shared state.
type bench struct {
	socksd       string   // socksd binary; "" = peers only
	socksdB      string   // optional candidate socksd build, measured as socksdB>U
	unixUpstream bool     // also measure socksd reaching U over a Unix socket
	peersBin     string   // directory holding the armon and thingsgo peers
	microsocks   string   // microsocks binary
	danted       string   // dante-server binary
	upstreams    []string // Go peers socksd is chained to
	danteIdleMax int
	pprof        string // socksd's pprof address (test/bench/prof), "" = none
	out          string

	reps      int
	rateDur   time.Duration
	rateMax   int
	bulkTotal int64
	idleN     int
	only      []string
	logf      func(format string, args ...any)

	sink *sinkAddrs
}

// sample is one target's figures in one repetition; M is keyed by metric
// id (see metrics in report.go).
type sample struct {
	Target string
	Rep    int
	M      map[string]float64
	Notes  []string `json:",omitempty"`
}

// runFile is what run writes next to the report, so report can redraw it.
type runFile struct {
	Machine   machine
	Mode      string
	Settings  string
	LoadStart string
	LoadEnd   string
	Started   time.Time
	Elapsed   string
	Samples   []sample
}

func runSuite(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	mode := fs.String("mode", "quick", "quick (seconds, for development) or full (about 10 minutes)")
	out := fs.String("out", "results", "output directory")
	socksd := fs.String("socksd", "", "socksd binary (empty: peers only)")
	socksdB := fs.String("socksd-b", "", "a candidate socksd build measured in the same run as socksdB>U (A/B test of a change)")
	peersBin := fs.String("peers", "", "directory with the armon and thingsgo peer binaries")
	reps := fs.Int("reps", 0, "repetitions (default: quick 1, full 3)")
	total := fs.Int64("bulk-bytes", 0, "bytes per bulk run (default: quick 256 MiB, full 2 GiB)")
	idleN := fs.Int("idle", 0, "idle proxied connections held (default: quick 1000, full 3000: 6 descriptors per connection for the splicing Go servers × 3000 fits the 20,000-descriptor limit)")
	rateDur := fs.Duration("rate-time", 0, "duration of each connection-rate run (default: quick 1s, full 3s)")
	only := fs.String("only", "", "comma-separated target names to run (default all)")
	unixUp := fs.Bool("unix-upstream", false, "also measure socksd>U/unix: socksd reaching U over a Unix socket")
	ups := fs.String("upstreams", "armon,thingsgo", "Go peers to chain socksd to")
	pprofAddr := fs.String("pprof", "", "with -socksd pointing at test/bench/prof: its pprof address; CPU, heap and goroutine profiles of socksd are saved in -out")
	fs.Parse(args)

	b := &bench{
		socksd: *socksd, socksdB: *socksdB, unixUpstream: *unixUp, peersBin: *peersBin, upstreams: strings.Split(*ups, ","),
		microsocks: lookPath("microsocks"), danted: lookPath("danted"),
		pprof: *pprofAddr, out: *out,
		reps: 1, rateDur: time.Second, rateMax: 200000, bulkTotal: 256 << 20, idleN: 1000, danteIdleMax: 500,
	}
	if *mode == "full" {
		b.reps, b.rateDur, b.bulkTotal, b.idleN, b.danteIdleMax = 3, 3*time.Second, 2<<30, 3000, 1000
	}
	if *reps > 0 {
		b.reps = *reps
	}
	if *total > 0 {
		b.bulkTotal = *total
	}
	if *idleN > 0 {
		b.idleN = *idleN
	}
	if *rateDur > 0 {
		b.rateDur = *rateDur
	}
	if *only != "" {
		b.only = strings.Split(*only, ",")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(*out, "run.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	b.logf = func(format string, args ...any) {
		line := stampLine(format, args...)
		os.Stderr.WriteString(line)
		logFile.WriteString(line)
	}

	if b.pprof != "" {
		// test/bench/prof reads its pprof address from the environment.
		os.Setenv("SOCKSD_PPROF", b.pprof)
	}
	if err := b.startSink(); err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	defer b.stopSink()

	rf := runFile{
		Machine: thisMachine(), Mode: *mode, LoadStart: loadAvg(), Started: time.Now().UTC(),
		Settings: fmt.Sprintf("reps=%d rate-time=%s bulk=%d MiB idle N=%d (dante %d)", b.reps, b.rateDur, b.bulkTotal>>20, b.idleN, b.danteIdleMax),
	}
	specs := b.specs()
	if len(b.only) > 0 {
		specs = slices.DeleteFunc(specs, func(s spec) bool { return !slices.Contains(b.only, s.name) })
	}
	b.logf("suite %s: %s; targets %d; load %s", *mode, rf.Settings, len(specs), rf.LoadStart)
	for rep := range b.reps {
		// Alternate: each repetition starts one target later, so no
		// target always runs first (cold machine) or last.
		for k := range specs {
			s := specs[(k+rep)%len(specs)]
			rf.Samples = append(rf.Samples, b.runTarget(s, rep))
		}
	}
	rf.LoadEnd = loadAvg()
	rf.Elapsed = time.Since(rf.Started).Round(time.Second).String()
	js, _ := json.MarshalIndent(rf, "", " ")
	if err := os.WriteFile(filepath.Join(*out, "samples.json"), js, 0o644); err != nil {
		return err
	}
	return writeReport(&rf, *out)
}

func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("in", "results/samples.json", "samples written by run")
	out := fs.String("out", "results", "output directory")
	fs.Parse(args)
	js, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	var rf runFile
	if err := json.Unmarshal(js, &rf); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	return writeReport(&rf, *out)
}

func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// startSink runs `socksbench sink` as a child process; closing its stdin
// stops it.
func (b *bench) startSink() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	c := exec.Command(self, "sink")
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the load tool
	stdin, err := c.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		return err
	}
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		return err
	}
	var line [256]byte
	n, _ := io.ReadAtLeast(stdout, line[:], 1)
	f := strings.Fields(string(line[:n]))
	if len(f) != 4 || f[0] != "ready" {
		stdin.Close()
		c.Wait()
		return fmt.Errorf("unexpected sink greeting %q", line[:n])
	}
	s := &sinkAddrs{cmd: c, stdin: stdin}
	for i, p := range []*netip.AddrPort{&s.echo, &s.discard, &s.source} {
		if *p, err = netip.ParseAddrPort(f[i+1]); err != nil {
			stdin.Close()
			c.Wait()
			return err
		}
	}
	b.sink = s
	return nil
}

func (b *bench) stopSink() {
	if b.sink == nil {
		return
	}
	b.sink.stdin.Close()
	done := make(chan struct{})
	go func() { b.sink.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		b.sink.cmd.Process.Kill()
		<-done
	}
}

// runTarget starts s fresh, measures idle cost first (fresh process),
// then connection rate, then bulk throughput, and stops it.
func (b *bench) runTarget(s spec, rep int) sample {
	smp := sample{Target: s.name, Rep: rep, M: map[string]float64{}}
	note := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		smp.Notes = append(smp.Notes, msg)
		b.logf("  %s: %s", s.name, msg)
	}
	b.logf("rep %d: %s", rep+1, s.name)
	r, err := s.start(b)
	if err != nil {
		note("start failed: %v", err)
		return smp
	}
	defer r.stop()

	if r.pid != 0 {
		n := b.idleN
		if s.idleMax > 0 && n > s.idleMax {
			n = s.idleMax
		}
		base, _ := r.usage()
		baseRSS := base.RSSKiB
		ir := idle(r, s.proto, b.sink.echo, n, 90*time.Second, func() {
			if s.upstream != "" {
				b.profile(s.name, rep, "heap", "heap")
				b.profile(s.name, rep, "goroutine", "goroutine")
				// Text form: ends with runtime.MemStats (StackInuse, HeapInuse).
				b.profile(s.name, rep, "heap-debug1.txt", "heap?debug=1")
				// Diagnostic: two forced GCs (gc=1) let the runtime shrink
				// idle goroutine stacks; how much RSS would that give back?
				b.profile(s.name, rep, "heap-gc1.pprof", "heap?gc=1")
				b.profile(s.name, rep, "heap-gc2.pprof", "heap?gc=1")
				b.profile(s.name, rep, "heap-debug1-aftergc.txt", "heap?debug=1")
				if u, err := r.usage(); err == nil {
					b.logf("  after two forced GCs: RSS %.0f KiB (%.1f KiB/conn over the baseline)", u.RSSKiB, (u.RSSKiB-baseRSS)/float64(n))
				}
			}
		})
		if ir.Err != nil {
			note("idle: %v", ir.Err)
		}
		if ir.Opened > 0 {
			smp.M["idle_n"] = float64(ir.Opened)
			smp.M["rss_conn"] = ir.RSSPer
			smp.M["pss_conn"] = ir.PSSPer
			smp.M["fd_conn"] = ir.FDPer
			smp.M["thr_conn"] = ir.ThreadsPer
			smp.M["rss_base"] = ir.Before.RSSKiB
			if ir.FDPer > 0 {
				var lim syscall.Rlimit
				if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
					smp.M["idle_cap"] = float64(lim.Cur-uint64(ir.Before.FDs)) / ir.FDPer
				}
			}
		}
		b.logf("  idle N=%d: RSS %.1f KiB/conn, PSS %.1f KiB/conn, %.2f fd/conn, %.2f threads/conn (procs %d)",
			ir.Opened, ir.RSSPer, ir.PSSPer, ir.FDPer, ir.ThreadsPer, ir.After.Procs)
	}

	rate := func(key string, proto Proto, workers int) {
		if s.upstream != "" && key == "c64" {
			defer b.profileAsync(s.name, rep, "cpu-"+key, fmt.Sprintf("profile?seconds=%d", max(1, int(b.rateDur.Seconds())-1)))()
		}
		rr := connRate(r, proto, b.sink.echo, workers, b.rateDur, b.rateMax)
		if rr.Errors > 0 && rr.Errors*100 > rr.Conns+rr.Errors {
			note("%s: %d errors of %d", key, rr.Errors, rr.Conns+rr.Errors)
		}
		if rr.Conns == 0 {
			return
		}
		smp.M["rate_"+key] = rr.PerSec()
		smp.M["p50_"+key] = rr.P50.Seconds() * 1e3
		smp.M["p99_"+key] = rr.P99.Seconds() * 1e3
		if r.pid != 0 {
			smp.M["cpu_conn_"+key] = rr.CPU / float64(rr.Conns) * 1e6
		}
		smp.M["cpuall_conn_"+key] = rr.CPUAll / float64(rr.Conns) * 1e6
		b.logf("  rate %s: %.0f conn/s p50 %.3f ms p99 %.3f ms cpu %.1f us/conn, all processes %.1f us/conn (errors %d)",
			key, rr.PerSec(), rr.P50.Seconds()*1e3, rr.P99.Seconds()*1e3, rr.CPU/float64(rr.Conns)*1e6, rr.CPUAll/float64(rr.Conns)*1e6, rr.Errors)
	}
	rate("c1", s.proto, 1)
	rate("c64", s.proto, 64)
	if s.upstream != "" {
		rate("c64_4a", ProtoSOCKS4a, 64)
	}

	var cpu, all float64
	var moved int64
	for _, streams := range []int{1, 16} {
		for _, up := range []bool{false, true} {
			dir := "down"
			if up {
				dir = "up"
			}
			key := fmt.Sprintf("bulk%d_%s", streams, dir)
			if s.upstream != "" && key == "bulk1_down" {
				defer b.profileAsync(s.name, rep, "cpu-"+key, "profile?seconds=1")()
			}
			br := bulk(r, s.proto, b.sink, streams, b.bulkTotal, up, 120*time.Second)
			if br.Err != nil {
				note("%s: %v", key, br.Err)
				continue
			}
			cpu += br.CPU
			all += br.CPUAll
			moved += br.Bytes
			smp.M[key] = br.GBps()
			b.logf("  %s: %.2f GB/s (%d MiB in %s) cpu %.2f s", key, br.GBps(), br.Bytes>>20, br.Elapsed.Round(time.Millisecond), br.CPU)
		}
	}
	if moved > 0 && r.pid != 0 {
		smp.M["cpu_gb"] = cpu / float64(moved) * 1e9
	}
	if moved > 0 {
		smp.M["cpuall_gb"] = all / float64(moved) * 1e9
	}
	return smp
}

// profile saves socksd's pprof profile path into the output directory.
func (b *bench) profile(target string, rep int, name, path string) {
	if b.pprof == "" {
		return
	}
	if !strings.Contains(name, ".") {
		name += ".pprof"
	}
	file := filepath.Join(b.out, fmt.Sprintf("%s-rep%d-%s", strings.ReplaceAll(target, ">", "-"), rep+1, name))
	cl := http.Client{Timeout: 30 * time.Second}
	resp, err := cl.Get("http://" + b.pprof + "/debug/pprof/" + path)
	if err != nil {
		b.logf("  pprof %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}

// profileAsync starts profile in the background; the returned func waits.
func (b *bench) profileAsync(target string, rep int, name, path string) func() {
	if b.pprof == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() { defer close(done); b.profile(target, rep, name, path) }()
	return func() { <-done }
}

// stampLine is a progress line of the bench's log: the UTC time of day,
// then the message.
func stampLine(format string, args ...any) string {
	return fmt.Sprintf("%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}
