package run

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"socksd/internal/sockstest"
	"socksd/internal/testutil"
	"socksd/test/tornet"
)

// The benchmarks measure what socksd run adds on loopback: the same client
// (fetcher) against the same socksd, once through socksd's SOCKS port
// (socks5h://, the name sent to the proxy) and once inside socksd run
// with no proxy setting (name from the run's resolver, connection
// redirected to the forwarder, then socksd's Unix socket). socksd chains
// to a local SOCKS5 server (internal/sockstest) that connects to a local
// HTTP server, so Tor's latency does not drown the difference.
//
//	SOCKSD_TORNET=1 go test -run XXX -bench . -benchtime 2000x ./test/run/

// benchEnv is the loopback setup shared by the benchmarks.
type benchEnv struct {
	addr, socket string // socksd's TCP and Unix listeners
	small, bulk  string // URLs by name
}

const bulkSize = 16 << 20

var (
	benchOnce sync.Once
	bench     *benchEnv
	benchErr  error
)

const benchConfig = `
state_dir = %q

[socks]
listen = [%q, "unix:%s"]

[tor]
control = "none"
socks = %q
launch = "never"

[log]
level = "warn"

[metrics]
listen = ""
`

func setupBench(b *testing.B) *benchEnv {
	b.Helper()
	if tn == nil {
		b.Skip(skipReason)
	}
	benchOnce.Do(func() { bench, benchErr = startBench() })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return bench
}

func startBench() (*benchEnv, error) {
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	payload := tornet.Pattern(bulkSize)
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/bulk", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		w.Write(payload)
	})
	go http.Serve(hl, mux) // lives as long as the test process
	up := &sockstest.Server{Hosts: map[string]netip.Addr{"bench.test": netip.MustParseAddr("127.0.0.1")}}
	if err := up.Start(); err != nil {
		return nil, err
	}
	dir := filepath.Join(binDir, "bench")
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o755); err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	e := &benchEnv{addr: addr, socket: filepath.Join(dir, "socks.sock")}
	port := strconv.Itoa(hl.Addr().(*net.TCPAddr).Port)
	e.small = "http://bench.test:" + port + "/small"
	e.bulk = "http://bench.test:" + port + "/bulk"
	cfg := filepath.Join(dir, "socksd.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, benchConfig, filepath.Join(dir, "state"), addr, e.socket, up.Addr()), 0o644); err != nil {
		return nil, err
	}
	p, err := tn.Spawn("socksd-bench", filepath.Join(dir, "socksd.log"), socksdBin, "-config", cfg)
	if err != nil {
		return nil, err
	}
	ready := testutil.Poll(30*time.Second, 20*time.Millisecond, func() bool {
		c, err := net.Dial("unix", e.socket)
		if err == nil {
			c.Close()
		}
		return err == nil || p.Exited()
	})
	if !ready || p.Exited() {
		return nil, fmt.Errorf("bench socksd did not come up: %v", p.Err())
	}
	return e, nil
}

// stats is fetcher's STATS line.
type stats struct {
	p50, p90 float64 // µs
	bytes    float64
	seconds  float64
}

func runFetcher(b *testing.B, argv []string) stats {
	b.Helper()
	r := commandFor(b, 20*time.Minute, argv...)
	line := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(line, "STATS ") {
		b.Fatalf("%v: %v", argv, r)
	}
	var s stats
	for _, kv := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(kv, "=")
		f, _ := strconv.ParseFloat(v, 64)
		switch k {
		case "ttfb_p50_us":
			s.p50 = f
		case "ttfb_p90_us":
			s.p90 = f
		case "bytes":
			s.bytes = f
		case "seconds":
			s.seconds = f
		}
	}
	return s
}

// both measures n GETs of u directly through socksd's SOCKS port and
// inside socksd run.
func (e *benchEnv) both(b *testing.B, u string, n int) (direct, jailed stats) {
	b.Helper()
	direct = runFetcher(b, []string{fetcherBin, "-n", strconv.Itoa(n), "-proxy", "socks5h://" + e.addr, u})
	jailed = runFetcher(b, []string{socksdBin, "run", "-socket", e.socket, "--", fetcherBin, "-n", strconv.Itoa(n), u})
	return direct, jailed
}

// BenchmarkTTFB: an iteration is one request on a new connection in each
// mode; the metrics are the median and 90th percentile time to first
// byte of each, and what socksd run adds to the median.
func BenchmarkTTFB(b *testing.B) {
	e := setupBench(b)
	b.ResetTimer()
	d, j := e.both(b, e.small, b.N)
	b.ReportMetric(d.p50, "direct-p50-µs")
	b.ReportMetric(j.p50, "run-p50-µs")
	b.ReportMetric(d.p90, "direct-p90-µs")
	b.ReportMetric(j.p90, "run-p90-µs")
	b.ReportMetric(j.p50-d.p50, "added-p50-µs")
}

// BenchmarkThroughput: an iteration is one 16 MiB body in each mode; the
// metrics are each mode's rate while the body flows, and their ratio.
func BenchmarkThroughput(b *testing.B) {
	e := setupBench(b)
	b.SetBytes(2 * bulkSize)
	b.ResetTimer()
	d, j := e.both(b, e.bulk, b.N)
	dr, jr := d.bytes/d.seconds/1e6, j.bytes/j.seconds/1e6
	b.ReportMetric(dr, "direct-MB/s")
	b.ReportMetric(jr, "run-MB/s")
	b.ReportMetric(jr/dr, "run/direct")
}

// torBoth is both for the package's socksd, which reaches the private Tor
// network: the same comparison with Tor's latency and bandwidth in the
// path, as a user sees it.
func torBoth(b *testing.B, u string, n int) (direct, jailed stats) {
	b.Helper()
	if tn == nil {
		b.Skip(skipReason)
	}
	e := &benchEnv{addr: sd.addr, socket: sd.socket}
	return e.both(b, u, n)
}

// BenchmarkTorTTFB is BenchmarkTTFB through the private Tor network.
// Each mode's streams use their identity's circuit, and circuits differ
// by several milliseconds on this network, so the iterations are spread
// over torRounds rounds, each with a fresh identity in both modes (a new
// SOCKS username for the direct client, a new run for the jail), and the
// metrics are the medians of the rounds' medians.
func BenchmarkTorTTFB(b *testing.B) {
	if tn == nil {
		b.Skip(skipReason)
	}
	const torRounds = 10
	per := max(b.N/torRounds, 1)
	var d, j []float64
	for r := range torRounds {
		proxy := fmt.Sprintf("socks5h://round%d-%d:x@%s", r, time.Now().UnixNano(), sd.addr)
		u := tn.NameURL("/")
		d = append(d, runFetcher(b, []string{fetcherBin, "-n", strconv.Itoa(per), "-proxy", proxy, u}).p50)
		j = append(j, runFetcher(b, jailArgs(nil, fetcherBin, "-n", strconv.Itoa(per), u)).p50)
	}
	slices.Sort(d)
	slices.Sort(j)
	b.ReportMetric(d[len(d)/2], "direct-p50-µs")
	b.ReportMetric(j[len(j)/2], "run-p50-µs")
	b.ReportMetric(j[len(j)/2]-d[len(d)/2], "added-p50-µs")
}

// BenchmarkTorThroughput is BenchmarkThroughput through the private Tor
// network, with 4 MiB bodies.
func BenchmarkTorThroughput(b *testing.B) {
	if tn == nil {
		b.Skip(skipReason)
	}
	b.SetBytes(2 * 4 << 20)
	d, j := torBoth(b, tn.NameURL("/bytes?n=4194304"), b.N)
	dr, jr := d.bytes/d.seconds/1e6, j.bytes/j.seconds/1e6
	b.ReportMetric(dr, "direct-MB/s")
	b.ReportMetric(jr, "run-MB/s")
	b.ReportMetric(jr/dr, "run/direct")
}
