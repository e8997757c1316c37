package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"socksd/test/tornet"
)

type turnSettings struct {
	n, circuits, bulkBytes, bulkN int
	dnsNames, dnsMax, dnsNew      int
	dnsTime                       time.Duration
}

// torResults collects every turn's figures, by target name.
type torResults struct {
	ttfb     map[string][]time.Duration
	rate     map[string][]float64 // bulk MB/s
	errs     map[string]int
	turns    map[string]map[int]turnFigures     // target → repetition → that turn's figures
	hist     map[string]map[string]*histogram   // target → circuit label → attach latency
	dns      map[string]map[dnsCase][]dnsResult // target → case → one per repetition
	observed map[obsLabel][]float64             // NEW→SENTCONNECT ms
	notes    []string
}

func newTorResults() *torResults {
	return &torResults{
		ttfb: map[string][]time.Duration{}, rate: map[string][]float64{}, errs: map[string]int{}, turns: map[string]map[int]turnFigures{},
		hist: map[string]map[string]*histogram{}, dns: map[string]map[dnsCase][]dnsResult{},
	}
}

// liveProc is the socksd of the current turn, so a signal (run.sh's
// timeout) can stop it before the bench exits: it runs in its own process
// group and would outlive the bench otherwise.
type liveProc struct {
	mu  sync.Mutex
	cur *running
}

func (l *liveProc) set(r *running) {
	l.mu.Lock()
	l.cur = r
	l.mu.Unlock()
}

// stop stops the current process, if any, once.
func (l *liveProc) stop() {
	l.mu.Lock()
	r := l.cur
	l.cur = nil
	l.mu.Unlock()
	if r != nil {
		r.stop()
	}
}

// turnFigures are one turn's medians, for ratios paired within a
// repetition (targets of one repetition ran minutes apart, so a load
// change on the shared machine moves both).
type turnFigures struct {
	ttfbMS, bulkMBps float64
}

// attachMetric is torup's histogram of STREAM NEW → ATTACHSTREAM answered.
const attachMetric = "socksd_tor_attach_latency_seconds"

// torTurn measures target t once: socksd is started fresh for its turn and
// stopped (SIGTERM) after it, because with the control port socksd sets
// __LeaveStreamsUnattached and would otherwise also see (and hand back)
// the direct-Tor target's streams; on a clean exit it resets that option.
func torTurn(b *bench, env torEnv, t torTarget, rep int, obs *streamObserver, res *torResults, s turnSettings, live *liveProc) error {
	proxy, dnsServer, metricsAddr := env.socks, env.dnsPort, ""
	vnet := torVirtualNet
	if t.kind == kindTor && env.control != "" {
		if err := checkAttachByTor(env); err != nil {
			return err
		}
	}
	if t.kind != kindTor {
		var bridge string
		sd, err := b.startProc("socksd", func(addr, dir string) ([]string, error) {
			conf := filepath.Join(dir, "socksd.toml")
			if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
				return nil, err
			}
			text := socksdConf(addr, env.socks, dir)
			if t.kind == kindProduct {
				if env.control == "" {
					return nil, fmt.Errorf("the product configuration needs the control port (-control, -cookie)")
				}
				var err error
				if metricsAddr, err = freeAddr(); err != nil {
					return nil, err
				}
				if bridge, err = freeUDP(); err != nil {
					return nil, err
				}
				e := env
				if t.tcp {
					e.productControl, e.productSocks = env.control, env.socks
				}
				text = socksdProductConf(addr, e, dir, metricsAddr, bridge)
			}
			if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
				return nil, err
			}
			return []string{t.bin, "-config", conf}, nil
		})
		if err != nil {
			return err
		}
		live.set(sd)
		defer live.stop()
		if metricsAddr != "" {
			if err := waitHealthy(metricsAddr, 60*time.Second); err != nil {
				return err
			}
		}
		proxy, dnsServer, vnet = sd.addr, bridge, bridgeVirtualNet
	}

	// TTFB: a new identity every n/circuits requests, so both targets
	// sample the same number of fresh circuits.
	nT, nR, nE := len(res.ttfb[t.name]), len(res.rate[t.name]), res.errs[t.name]
	d := dialer{proto: ProtoSOCKS5, proxy: proxy}
	prevID := -1
	for i := range s.n {
		id := rep*s.circuits + i*s.circuits/s.n
		if t.kind == kindTor {
			d.user = fmt.Sprintf("bench-%d", id)
		} else {
			d.src = 1000 + id
		}
		if obs != nil {
			obs.setLabel(obsLabel{target: t.name, fresh: id != prevID})
		}
		prevID = id
		el, _, err := httpGet(&d, env.dest, "/", 30*time.Second)
		if err != nil {
			res.errs[t.name]++
			continue
		}
		res.ttfb[t.name] = append(res.ttfb[t.name], el)
	}
	// Bulk: each GET on a fresh identity, so a turn samples bulkN circuits
	// rather than one (throughput through this network varies several-fold
	// between circuits, more than between targets). A small GET first
	// builds (socksd) or picks (Tor) the circuit, so the timed GET does not
	// include a circuit build that only one of the targets would pay.
	for j := range s.bulkN {
		id := 1_000_000 + rep*s.bulkN + j
		if t.kind == kindTor {
			d.user = fmt.Sprintf("bench-bulk-%d", id)
		} else {
			d.src = 20_000 + rep*s.bulkN + j // apart from the TTFB identities' 1000+
		}
		if obs != nil {
			obs.setLabel(obsLabel{target: t.name, fresh: true})
		}
		if _, _, err := httpGet(&d, env.dest, "/", 30*time.Second); err != nil {
			res.errs[t.name]++
			continue
		}
		if obs != nil {
			obs.setLabel(obsLabel{target: t.name})
		}
		start := time.Now()
		_, got, err := httpGet(&d, env.dest, fmt.Sprintf("/bytes?n=%d", s.bulkBytes), 120*time.Second)
		if err != nil || got < int64(s.bulkBytes) {
			res.errs[t.name]++
			continue
		}
		res.rate[t.name] = append(res.rate[t.name], float64(got)/time.Since(start).Seconds()/1e6)
	}
	if obs != nil {
		obs.setLabel(obsLabel{target: "other"})
	}
	if res.turns[t.name] == nil {
		res.turns[t.name] = map[int]turnFigures{}
	}
	res.turns[t.name][rep] = turnFigures{ttfbMS: durPct(res.ttfb[t.name][nT:], 50), bulkMBps: medianF(res.rate[t.name][nR:])}
	if metricsAddr != "" {
		if res.hist[t.name] == nil {
			res.hist[t.name] = map[string]*histogram{}
		}
		if err := scrapeHistogram(metricsAddr, attachMetric, res.hist[t.name]); err != nil {
			res.notes = append(res.notes, fmt.Sprintf("rep %d %s: metrics: %v", rep+1, t.name, err))
		}
	}
	b.logf("rep %d %s: %d TTFB samples (p50 %s ms), %d bulk (%s MB/s), %d errors", rep+1, t.name, len(res.ttfb[t.name])-nT,
		fmtMS(durPct(res.ttfb[t.name][nT:], 50)), len(res.rate[t.name])-nR, fmt.Sprintf("%.1f", res.rate[t.name][nR:]), res.errs[t.name]-nE)

	if dnsServer == "" {
		return nil
	}
	dr, err := dnsTurn(dnsServer, fmt.Sprintf("%s-r%d", t.tag, rep), vnet, s.dnsNames, s.dnsMax, s.dnsNew, s.dnsTime)
	if err != nil {
		return err
	}
	if res.dns[t.name] == nil {
		res.dns[t.name] = map[dnsCase][]dnsResult{}
	}
	for _, c := range dnsCases {
		r := dr[c]
		res.dns[t.name][c] = append(res.dns[t.name][c], r)
		b.logf("  DNS %s: %.0f q/s p50 %.3f ms p99 %.3f ms, %d errors%s", c, r.qps(), durPct(r.Lat, 50), durPct(r.Lat, 99), r.Errors, firstErr(r))
	}
	return nil
}

func firstErr(r dnsResult) string {
	if r.FirstErr == "" {
		return ""
	}
	return " (first: " + r.FirstErr + ")"
}

// checkAttachByTor makes sure Tor attaches streams itself before the
// direct-Tor turn (control-spec §3.3 GETCONF): a socksd left over from the
// previous turn must have reset __LeaveStreamsUnattached on exit.
func checkAttachByTor(env torEnv) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tornet.DialControl(ctx, env.control, env.cookie)
	if err != nil {
		return err
	}
	defer c.Close()
	lines, err := c.Do(ctx, "GETCONF __LeaveStreamsUnattached")
	if err != nil {
		return err
	}
	if hasConf(lines, "__LeaveStreamsUnattached", "1") {
		return fmt.Errorf("__LeaveStreamsUnattached is still 1 after socksd stopped: Tor's own attaching cannot be measured")
	}
	return nil
}

// socksdProductConf is socksd as a user runs it: Tor's control port with
// cookie authentication (what PROTOCOLINFO offers), a circuit per isolation
// key (attach_streams), the DNS bridge and the metrics listener. The
// bench's HTTP server is on 127.0.0.1, so reject_internal is off.
func socksdProductConf(addr string, env torEnv, dir, metricsAddr, bridge string) string {
	return fmt.Sprintf(`state_dir = %q
[socks]
listen = [%q]
max_connections = 19000
reject_internal = false
[tor]
control = %q
socks = %q
launch = "never"
attach_streams = true
[log]
level = "error"
[metrics]
listen = %q
[dns]
listen = [%q]
automap = "all"
virtual_network_ipv4 = %q
`, filepath.Join(dir, "state"), addr, env.productControl, env.productSocks, metricsAddr, bridge, bridgeVirtualNet)
}
