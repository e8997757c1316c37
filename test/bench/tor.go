package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// runTor is issue 8 item 3 (part): time to first byte and bulk throughput
// through a real Tor (the private network of cmd/tornet), Tor's SocksPort
// directly against socksd chained to that SocksPort, alternating, same
// destination (the network's HTTP server, reached through its exits).
//
//	socksbench tor -socks 127.0.0.1:SOCKS_PORT -dest 127.0.0.1:HTTP_PORT -socksd BIN
func runTor(args []string) error {
	fs := flag.NewFlagSet("tor", flag.ExitOnError)
	torSocks := fs.String("socks", "", "Tor's SocksPort (loopback)")
	dest := fs.String("dest", "", "HTTP server ip:port the exits can reach (cmd/tornet's HTTP_PORT on 127.0.0.1)")
	socksd := fs.String("socksd", "", "socksd binary, chained to -socks")
	socksdB := fs.String("socksd-b", "", "optional candidate socksd build, measured as socksdB>tor")
	n := fs.Int("n", 100, "TTFB requests per target per repetition")
	circuits := fs.Int("circuits", 4, "isolation identities (so circuits) per target per repetition: Tor's direct client gets a new SOCKS username, socksd a new client source address (a new isolation key)")
	bulkBytes := fs.Int("bulk-bytes", 16<<20, "bytes per bulk GET (the tornet server caps at 16 MiB)")
	bulkN := fs.Int("bulk-n", 3, "bulk GETs per target per repetition")
	reps := fs.Int("reps", 3, "repetitions")
	out := fs.String("out", "results", "output directory (tor.md)")
	fs.Parse(args)
	dst, err := netip.ParseAddrPort(*dest)
	if err != nil || *torSocks == "" || *socksd == "" {
		return fmt.Errorf("need -socks, -dest ip:port and -socksd")
	}
	b := &bench{socksd: *socksd, logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }}
	targets := []struct{ name, proxy string }{{"tor", *torSocks}}
	for _, bin := range []struct{ name, path string }{{"socksd>tor", *socksd}, {"socksdB>tor", *socksdB}} {
		if bin.path == "" {
			continue
		}
		// socksd chained to Tor's SocksPort, no control port.
		sd, err := b.startProc("socksd", func(addr, dir string) ([]string, error) {
			conf := filepath.Join(dir, "socksd.toml")
			if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
				return nil, err
			}
			if err := os.WriteFile(conf, []byte(socksdConf(addr, *torSocks, dir)), 0o644); err != nil {
				return nil, err
			}
			return []string{bin.path, "-config", conf}, nil
		})
		if err != nil {
			return err
		}
		defer sd.stop()
		targets = append(targets, struct{ name, proxy string }{bin.name, sd.addr})
	}
	ttfb := map[string][]time.Duration{}
	rate := map[string][]float64{}
	errs := map[string]int{}
	for rep := range *reps {
		for k := range targets {
			t := targets[(k+rep)%len(targets)]
			d := dialer{proto: ProtoSOCKS5, proxy: t.proxy}
			for i := range *n {
				// A new identity every n/circuits requests, so both
				// targets sample the same number of fresh circuits.
				id := rep*(*circuits) + i*(*circuits) / *n
				if t.name == "tor" {
					d.user = fmt.Sprintf("bench-%d", id)
				} else {
					d.src = 1000 + id
				}
				el, _, err := httpGet(&d, dst, "/", 30*time.Second)
				if err != nil {
					errs[t.name]++
					continue
				}
				ttfb[t.name] = append(ttfb[t.name], el)
			}
			for range *bulkN {
				start := time.Now()
				_, got, err := httpGet(&d, dst, fmt.Sprintf("/bytes?n=%d", *bulkBytes), 120*time.Second)
				if err != nil || got < int64(*bulkBytes) {
					errs[t.name]++
					continue
				}
				rate[t.name] = append(rate[t.name], float64(got)/time.Since(start).Seconds()/1e6)
			}
			b.logf("rep %d %s: %d TTFB samples, %d bulk, %d errors", rep+1, t.name, len(ttfb[t.name]), len(rate[t.name]), errs[t.name])
		}
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Through a private Tor network (cmd/tornet)\n\nLoad %s. %d repetitions × %d GET / (over %d isolation identities) and %d GET of %d MiB per target, alternating.\n\n", loadAvg(), *reps, *n, *circuits, *bulkN, *bulkBytes>>20)
	md.WriteString("| target | TTFB p50 (ms) | TTFB p99 (ms) | bulk median (MB/s) | errors |\n|---|---|---|---|---|\n")
	p := func(v []time.Duration, q int) float64 {
		if len(v) == 0 {
			return 0
		}
		s := slices.Clone(v)
		slices.Sort(s)
		return s[min(len(s)-1, len(s)*q/100)].Seconds() * 1e3
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2]
	}
	for _, t := range targets {
		fmt.Fprintf(&md, "| %s | %.2f | %.2f | %.1f | %d |\n", t.name, p(ttfb[t.name], 50), p(ttfb[t.name], 99), med(rate[t.name]), errs[t.name])
	}
	md.WriteString("\n")
	for _, t := range targets[1:] {
		if a, c := p(ttfb["tor"], 50), p(ttfb[t.name], 50); a > 0 {
			fmt.Fprintf(&md, "%s: TTFB ratio to Tor at the median %.3f (goal ≤ 1.05)", t.name, c/a)
		}
		if a, c := med(rate["tor"]), med(rate[t.name]); a > 0 {
			fmt.Fprintf(&md, ", bulk ratio %.3f (goal ≥ 0.95).\n", c/a)
		}
	}
	os.Stdout.WriteString(md.String())
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*out, "tor.md"), []byte(md.String()), 0o644)
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
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, dst); err != nil {
		return 0, 0, err
	}
	br := bufio.NewReaderSize(c, 256<<10)
	if _, err := br.Peek(1); err != nil {
		return 0, 0, err
	}
	ttfb := time.Since(start)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return 0, 0, err
		}
		if line == "\r\n" {
			break
		}
	}
	n, err := io.Copy(io.Discard, br)
	return ttfb, n, err
}
