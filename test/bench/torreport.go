package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

type torReportInfo struct {
	loadStart, loadEnd                  string
	reps, n, circuits, bulkN, bulkBytes int
	dnsNames, dnsNew                    int
	dnsTime                             time.Duration
	ownNetwork                          bool
}

func pctF(v []float64, q int) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*q/100)]
}

func medianF(v []float64) float64 { return pctF(v, 50) }

func minMaxF(v []float64) (float64, float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(v), slices.Max(v)
}

// fmtMS prints milliseconds; "–" when there is no figure.
func fmtMS(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if math.IsInf(v, 1) {
		return "> 5000"
	}
	if v < 10 {
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// torReport renders results/tor.md.
func torReport(r *torResults, targets []torTarget, in torReportInfo) string {
	var md strings.Builder
	net := "a network given by flags"
	if in.ownNetwork {
		net = "its own private network (test/tornet: 3 authorities, 2 exits, no onion; client tor with a DNSPort, AutomapHostsOnResolve, VirtualAddrNetworkIPv4 " + torVirtualNet.String() + ")"
	}
	fmt.Fprintf(&md, "# Through a private Tor network\n\n`socksbench tor` on %s. Load average %s at the start, %s at the end "+
		"(other work shared this 2-core machine: figures are relative within this run). Per repetition and target, alternating: "+
		"%d GET / over %d isolation identities, %d GET of %d MiB (each on a fresh identity, after one GET / on it, so bulk samples as many circuits), then the DNS runs; %d repetitions. "+
		"socksd>tor is socksd's product configuration: control port with cookie auth, a circuit per isolation key (attach_streams), "+
		"DNS bridge on %s, over Unix sockets (as deploy/ configures it) when the bench runs its own network; "+
		"socksd-tcp>tor the same over Tor's TCP ports; socksd-plain>tor chains to the SocksPort with control = \"none\". Each socksd is started fresh for each of its turns and stopped after it.\n\n",
		net, in.loadStart, in.loadEnd, in.n, in.circuits, in.bulkN, in.bulkBytes>>20, in.reps, bridgeVirtualNet)

	md.WriteString("## Time to first byte and bulk\n\n| target | TTFB p50 (ms) | TTFB p99 (ms) | bulk median (MB/s) | bulk min–max | errors |\n|---|---|---|---|---|---|\n")
	ttfbMS := func(name string) []float64 {
		v := make([]float64, len(r.ttfb[name]))
		for i, d := range r.ttfb[name] {
			v[i] = d.Seconds() * 1e3
		}
		return v
	}
	for _, t := range targets {
		lo, hi := minMaxF(r.rate[t.name])
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s–%s | %d |\n", t.name, fmtMS(pctF(ttfbMS(t.name), 50)), fmtMS(pctF(ttfbMS(t.name), 99)),
			fmtRate(medianF(r.rate[t.name])), fmtRate(lo), fmtRate(hi), r.errs[t.name])
	}

	md.WriteString("\n")
	for _, t := range targets[1:] {
		a, c := pctF(ttfbMS("tor"), 50), pctF(ttfbMS(t.name), 50)
		x, y := medianF(r.rate["tor"]), medianF(r.rate[t.name])
		pt, pb := pairedRatios(r, t.name)
		fmt.Fprintf(&md, "%s against Tor: TTFB ratio at the median %.3f, bulk ratio %.3f; paired within each repetition: TTFB %s, bulk %s.\n",
			t.name, c/a, y/x, fmtRatios(pt), fmtRatios(pb))
	}
	md.WriteString("\n## Stream attach latency\n\nsocksd's own histogram `" + attachMetric + "` (STREAM NEW → ATTACHSTREAM answered), " +
		"summed over its turns; quantiles are bucket upper bounds (≤).\n\n| target | circuit | count | p50 ≤ (ms) | p90 ≤ (ms) | p99 ≤ (ms) |\n|---|---|---|---|---|---|\n")
	for _, t := range targets {
		for _, c := range []string{"existing", "new"} {
			h := r.hist[t.name][c]
			if h == nil {
				continue
			}
			fmt.Fprintf(&md, "| %s | %s | %.0f | %s | %s | %s |\n", t.name, c, h.count, fmtMS(h.quantile(.5)*1e3), fmtMS(h.quantile(.9)*1e3), fmtMS(h.quantile(.99)*1e3))
		}
	}
	md.WriteString("\nFrom outside: a control connection of the bench's own (SETEVENTS STREAM), STREAM NEW → SENTCONNECT as read, exact per stream. " +
		"For socksd this includes its ATTACHSTREAM and Tor acting on it; for Tor alone it is Tor attaching by itself. " +
		"\"first\" = the first stream of an isolation identity (a circuit is picked or built for it), \"later\" = the rest (TTFB and bulk GETs).\n\n" +
		"| target | streams | n | p50 (ms) | p90 (ms) | p99 (ms) |\n|---|---|---|---|---|---|\n")
	for _, t := range targets {
		for _, fresh := range []bool{true, false} {
			v := r.observed[obsLabel{target: t.name, fresh: fresh}]
			if len(v) == 0 {
				continue
			}
			kind := "later"
			if fresh {
				kind = "first"
			}
			fmt.Fprintf(&md, "| %s | %s | %d | %s | %s | %s |\n", t.name, kind, len(v), fmtMS(pctF(v, 50)), fmtMS(pctF(v, 90)), fmtMS(pctF(v, 99)))
		}
	}

	fmt.Fprintf(&md, "\n## DNS: socksd's bridge against Tor's DNSPort\n\nUDP A queries (miekg/dns), one in flight per worker, each run bounded by %s "+
		"(mapped) / %d queries (new). mapped = %d names queried over and over after one warm-up pass; new = a unique name per query. "+
		"An answer counts only if it is an A record in the server's virtual range (Tor %s, bridge %s). "+
		"q/s: median of the repetitions (min–max); p50/p99 over every query of every repetition. "+
		"A new name costs the bridge a MAPADDRESS round trip to Tor and a journal write (resolve/), Tor's automap only its own table. "+
		"Client and servers share the machine: at C=16 the p99 includes the client's own scheduling.\n\n"+
		"| target | names | C | q/s | min–max | p50 (ms) | p99 (ms) | errors |\n|---|---|---|---|---|---|---|---|\n",
		in.dnsTime, in.dnsNew, in.dnsNames, torVirtualNet, bridgeVirtualNet)
	dnsQPS := map[string]map[dnsCase]float64{}
	dnsP99 := map[string]map[dnsCase]float64{}
	for _, t := range targets {
		cases := r.dns[t.name]
		if cases == nil {
			continue
		}
		dnsQPS[t.name], dnsP99[t.name] = map[dnsCase]float64{}, map[dnsCase]float64{}
		for _, c := range dnsCases {
			var qps []float64
			var lat []time.Duration
			errs := 0
			for _, x := range cases[c] {
				qps = append(qps, x.qps())
				lat = append(lat, x.Lat...)
				errs += x.Errors
			}
			lo, hi := minMaxF(qps)
			dnsQPS[t.name][c], dnsP99[t.name][c] = medianF(qps), durPct(lat, 99)
			fmt.Fprintf(&md, "| %s | %s | %d | %.0f | %.0f–%.0f | %s | %s | %d |\n", dnsName(t), c.kind, c.workers, medianF(qps), lo, hi,
				fmtMS(durPct(lat, 50)), fmtMS(durPct(lat, 99)), errs)
		}
	}

	md.WriteString("\n## Targets\n\n| goal | measured | met |\n|---|---|---|\n")
	row := func(goal, measured string, ok bool) {
		met := "no"
		if ok {
			met = "yes"
		}
		fmt.Fprintf(&md, "| %s | %s | %s |\n", goal, measured, met)
	}
	const sd = "socksd>tor"
	if a, c := pctF(ttfbMS("tor"), 50), pctF(ttfbMS(sd), 50); !math.IsNaN(a) && !math.IsNaN(c) {
		row("TTFB socksd/Tor ≤ 1.05 at the median", fmt.Sprintf("%.3f (%s / %s ms)", c/a, fmtMS(c), fmtMS(a)), c/a <= 1.05)
	}
	if a, c := medianF(r.rate["tor"]), medianF(r.rate[sd]); a > 0 && c > 0 {
		row("bulk socksd/Tor ≥ 0.95 (median)", fmt.Sprintf("%.3f (%.1f / %.1f MB/s)", c/a, c, a), c/a >= 0.95)
	}
	if pt, pb := pairedRatios(r, sd); len(pt) > 0 {
		row("TTFB socksd/Tor ≤ 1.05, paired per repetition", fmtRatios(pt), medianF(pt) <= 1.05)
		if len(pb) > 0 {
			row("bulk socksd/Tor ≥ 0.95, paired per repetition", fmtRatios(pb), medianF(pb) >= 0.95)
		}
	}
	if h := r.hist[sd]["existing"]; h != nil && h.count > 0 {
		p := h.quantile(.99) * 1e3
		row("attach p99 ≤ 2 ms (histogram, circuit=existing)", "≤ "+fmtMS(p)+" ms", p <= 2)
	}
	if h := r.hist[sd]["new"]; h != nil && h.count > 0 {
		p := h.quantile(.99) * 1e3
		row("attach p99 ≤ 2 ms (histogram, circuit=new: includes building the circuit)", "≤ "+fmtMS(p)+" ms", p <= 2)
	}
	if v := r.observed[obsLabel{target: sd}]; len(v) > 0 {
		p := pctF(v, 99)
		tor := pctF(r.observed[obsLabel{target: "tor"}], 99)
		row("attach p99 ≤ 2 ms (observed NEW → SENTCONNECT, later streams)", fmt.Sprintf("%s ms (Tor alone %s ms)", fmtMS(p), fmtMS(tor)), p <= 2)
	}
	for _, w := range []int{1, 16} {
		c := dnsCase{"mapped", w}
		a, okA := dnsQPS["tor"][c]
		b, okB := dnsQPS[sd][c]
		if okA && okB && a > 0 {
			row(fmt.Sprintf("DNS bridge q/s ≥ Tor's DNSPort, mapped names, C=%d", w), fmt.Sprintf("%.0f vs %.0f (%.2f×)", b, a, b/a), b >= a)
		}
		if p, ok := dnsP99[sd][c]; ok {
			row(fmt.Sprintf("DNS bridge p99 ≤ 1 ms, mapped names, C=%d", w), fmtMS(p)+" ms", p <= 1)
		}
	}
	if len(r.notes) > 0 {
		md.WriteString("\n## Notes\n\n")
		for _, n := range r.notes {
			md.WriteString("- " + n + "\n")
		}
	}
	return md.String()
}

// pairedRatios are target/Tor per repetition: TTFB medians and bulk
// medians of the two turns of the same repetition.
func pairedRatios(r *torResults, target string) (ttfb, bulk []float64) {
	for rep, f := range r.turns[target] {
		g, ok := r.turns["tor"][rep]
		if !ok {
			continue
		}
		if f.ttfbMS > 0 && g.ttfbMS > 0 {
			ttfb = append(ttfb, f.ttfbMS/g.ttfbMS)
		}
		if f.bulkMBps > 0 && g.bulkMBps > 0 {
			bulk = append(bulk, f.bulkMBps/g.bulkMBps)
		}
	}
	return ttfb, bulk
}

// fmtRatios prints the median and range of ratios.
func fmtRatios(v []float64) string {
	if len(v) == 0 {
		return "–"
	}
	lo, hi := minMaxF(v)
	return fmt.Sprintf("median %.3f (%.2f–%.2f over %d)", medianF(v), lo, hi, len(v))
}

func fmtRate(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

func dnsName(t torTarget) string {
	if t.kind == kindTor {
		return "Tor DNSPort"
	}
	return t.name + " bridge"
}
