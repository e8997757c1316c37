package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// userReport is what socksbench user writes (user.json) and renders
// (user.md).
type userReport struct {
	Profile            string
	Settings           userSettings
	LoadStart, LoadEnd string
	NetworkUp          float64 // seconds to bring the network up
	Measured, Elapsed  float64 // seconds: the workload; the whole run
	CutShort           bool    // the workload hit its budget or a signal
	Samples            map[string]map[string][]float64
	Errors             map[string]map[string]int
	FirstErr           map[string]string
	Circuits           map[string]circCounts     // by target, over the measured period
	Hours              float64                   // the period the circuit counts cover
	CPU                map[string]float64        // socksd's CPU seconds over that period
	TorCPU             map[string]float64        // each target's client tor's
	PoolMetrics        []string                  // socksd's metric lines about its circuit pool, at the end
	PoolMax            map[string]float64        // the highest value of each pool gauge, sampled every 2 s
	Unused             map[string]map[string]int // after Idle: built, never used, by purpose
	IdleCPU            map[string]float64        // during Idle: CPU seconds per minute, by process
	Isolation          map[string]isoResult      // the isolation check, by target
}

// isoResult is one target's isolation check, from its tor's STREAM events.
type isoResult struct {
	Streams, Errors int                 // streams that got an answer; that failed
	Circuits        int                 // circuits that carried them
	Mixed           map[string][]string // circuit → identities, where more than one
}

// spread is a sample's summary.
type spread struct {
	n                  int
	p25, p50, p75, p95 float64
}

func spreadOf(v []float64) spread {
	return spread{n: len(v), p25: pctF(v, 25), p50: pctF(v, 50), p75: pctF(v, 75), p95: pctF(v, 95)}
}

func (s spread) String() string {
	if s.n == 0 {
		return "–"
	}
	return fmt.Sprintf("%s [%s–%s] p95 %s (n=%d)", num(s.p50), num(s.p25), num(s.p75), num(s.p95), s.n)
}

// num prints a figure with 3 significant digits or so.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

// target is one of issue-style goals: a measured ratio against a bound.
type userGoal struct {
	what   string
	value  float64 // NaN: not measured
	bound  float64
	atMost bool // value must be <= bound (else >=)
	unit   string
	detail string
}

func (g userGoal) verdict() string {
	if math.IsNaN(g.value) {
		return "not measured"
	}
	if g.atMost == (g.value <= g.bound) {
		return "**met**"
	}
	if g.atMost {
		return fmt.Sprintf("missed by %s%s", num(g.value-g.bound), g.unit)
	}
	return fmt.Sprintf("missed by %s%s", num(g.bound-g.value), g.unit)
}

func (r *userReport) spreadOf(measure, target string) spread {
	return spreadOf(r.Samples[measure][target])
}

func (r *userReport) perHour(target string) float64 {
	if r.Hours == 0 {
		return math.NaN()
	}
	return float64(r.Circuits[target].BuiltTotal()) / r.Hours
}

// goals evaluates the targets socksd is held to against Tor alone.
func (r *userReport) goals() []userGoal {
	sd, tor := "socksd", "tor"
	q := func(m string, p func(spread) float64) float64 {
		return ratio(p(r.spreadOf(m, sd)), p(r.spreadOf(m, tor)))
	}
	med := func(s spread) float64 { return s.p50 }
	p95 := func(s spread) float64 { return s.p95 }
	g := []userGoal{
		{what: "new identity, first stream, sequential: median socksd/Tor", value: q(mNewSeq, med), bound: 0.8, atMost: true, unit: "×"},
		{what: "new identity, first stream, bursts: p95 socksd/Tor", value: q(mNewBurst, p95), bound: 0.8, atMost: true, unit: "×"},
		{what: "known identity, later stream: median socksd/Tor", value: q(mKnown, med), bound: 1.02, atMost: true, unit: "×"},
		{what: "bulk, 1 stream: median socksd/Tor", value: q(mBulk1, med), bound: 0.98, unit: "×"},
		{what: "bulk, 8 parallel streams: median socksd/Tor", value: q(mBulkPar, med), bound: 0.98, unit: "×"},
	}
	hwm := math.NaN()
	if v, ok := r.PoolMax[poolGauge]; ok {
		hwm = v
	}
	extra := r.perHour(sd) - r.perHour(tor)
	detail := fmt.Sprintf("socksd's tor %s/h, Tor alone %s/h", num(r.perHour(sd)), num(r.perHour(tor)))
	if !math.IsNaN(hwm) {
		detail += fmt.Sprintf("; pool high-water mark %s", num(hwm))
	} else {
		hwm = 0
		detail += "; no pool metric found (bound taken as Tor alone's)"
	}
	g = append(g, userGoal{what: "circuits built per hour: socksd's tor minus Tor alone's, at most the pool's high-water mark",
		value: extra - hwm, bound: 0, atMost: true, unit: "/h", detail: detail})
	cpu := math.NaN()
	if t := r.TorCPU[sd]; t > 0 {
		cpu = r.CPU[sd] / t * 100
	}
	g = append(g, userGoal{what: "socksd CPU / its client tor's CPU, same workload", value: cpu, bound: 5, atMost: true, unit: "%",
		detail: fmt.Sprintf("socksd %.2f s, its tor %.2f s (Tor alone's tor %.2f s)", r.CPU[sd], r.TorCPU[sd], r.TorCPU[tor])})
	if iso, ok := r.Isolation[sd]; ok {
		g = append(g, userGoal{what: "isolation: circuits carrying streams of two identities (Tor's STREAM events)", value: float64(len(iso.Mixed)), bound: 0, atMost: true,
			detail: fmt.Sprintf("%d streams answered (%d failed) from %d identities on %d circuits", iso.Streams, iso.Errors, r.Settings.IsoIDs, iso.Circuits)})
	}
	if r.Unused != nil {
		extra := float64(sumMap(r.Unused[sd]) - sumMap(r.Unused[tor]))
		g = append(g, userGoal{what: fmt.Sprintf("after %s idle, unused circuits socksd's tor holds beyond Tor alone's", r.Settings.Idle), value: max(extra, 0), bound: 0, atMost: true,
			detail: fmt.Sprintf("socksd's tor %v, Tor alone %v", r.Unused[sd], r.Unused[tor])})
	}
	return g
}

func sumMap(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// poolGauge is socksd's count of clean circuits in its warm pool; its
// highest sampled value is the pool's high-water mark.
const poolGauge = "socksd_tor_pool_circuits"

func (r *userReport) markdown(targets []string) string {
	var md strings.Builder
	s := r.Settings
	fmt.Fprintf(&md, "# What a user feels: socksd against Tor alone, `%s` profile\n\n", r.Profile)
	fmt.Fprintf(&md, "`socksbench user` on a private network (test/tornet, profile `%s`: 3 authorities, 3 exits, an onion service; "+
		"every relay link and the exits' link to the HTTP server shaped). Each target has a client tor of its own, same torrc: "+
		"**tor** is Tor alone (its SocksPort, a SOCKS username per identity, no controller but a passive event listener); "+
		"**socksd** is socksd's product configuration (control port and SocksPort over Unix sockets, attacher, DNS bridge) with the same usernames. "+
		"%s"+
		"The targets take turns unit by unit in a random order. Network up in %.0f s; workload %.0f s; run %.0f s. "+
		"Load average %s at the start, %s at the end (2 shared cores).\n\n",
		r.Profile, extraTargets(targets), r.NetworkUp, r.Measured, r.Elapsed, r.LoadStart, r.LoadEnd)
	fmt.Fprintf(&md, "Workload per target: %d sequential new identities (first stream, then %d later streams each); %d bursts of %d new identities started within %s; "+
		"%d bulk rounds (one GET of %d MiB, then %d parallel GETs of %d MiB, on one identity); %d onion identities (first stream, then %d later). "+
		"Time to first byte (TTFB) runs from the start of the dial to the first byte of the answer.\n\n",
		s.IDs, s.Later, s.Bursts, s.BurstN, s.BurstSpan, s.BulkRounds, s.BulkBytes>>20, s.Parallel, s.ParallelBytes>>20, s.OnionIDs, s.Later)

	if r.CutShort {
		md.WriteString("**The workload was cut short** (its time budget, or a signal): later phases have fewer samples or none.\n\n")
	}
	md.WriteString("## Figures\n\nMedian [p25–p75] p95 (n); TTFB in ms, bulk in MB/s. Ratios: the target's median / Tor alone's (p95 ratio in brackets).\n\n| measure |")
	for _, t := range targets {
		fmt.Fprintf(&md, " %s |", t)
	}
	others := slices.DeleteFunc(slices.Clone(targets), func(t string) bool { return t == "tor" })
	for _, t := range others {
		fmt.Fprintf(&md, " %s / tor |", t)
	}
	md.WriteString("\n|---|")
	for range len(targets) + len(others) {
		md.WriteString("---|")
	}
	md.WriteString("\n")
	for _, m := range userMeasures {
		fmt.Fprintf(&md, "| %s |", m)
		for _, t := range targets {
			fmt.Fprintf(&md, " %s |", r.spreadOf(m, t))
		}
		b := r.spreadOf(m, "tor")
		for _, t := range others {
			a := r.spreadOf(m, t)
			fmt.Fprintf(&md, " %s× [%s×] |", num(ratio(a.p50, b.p50)), num(ratio(a.p95, b.p95)))
		}
		md.WriteString("\n")
	}
	var errs []string
	for _, m := range userMeasures {
		for _, t := range targets {
			if n := r.Errors[m][t]; n > 0 {
				errs = append(errs, fmt.Sprintf("%s %s: %d", t, m, n))
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(&md, "\nErrors: %s.", strings.Join(errs, "; "))
		for _, t := range targets {
			if e := r.FirstErr[t]; e != "" {
				fmt.Fprintf(&md, " First for %s: %s.", t, e)
			}
		}
		md.WriteString("\n")
	}

	fmt.Fprintf(&md, "\n## Circuits and CPU over the workload (%s)\n\n", time.Duration(r.Hours*float64(time.Hour)).Round(time.Second))
	md.WriteString("| target | circuits built | per hour | by purpose | failed (reason) | streams | by circuit purpose | conflux legs / streams | client tor CPU (s) | socksd CPU (s) |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range targets {
		c := r.Circuits[t]
		sdCPU := "–"
		if v, ok := r.CPU[t]; ok {
			sdCPU = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(&md, "| %s | %d | %s | %s | %s | %d | %s | %d / %d | %.2f | %s |\n", t, c.BuiltTotal(), num(r.perHour(t)), fmtCounts(c.Built),
			fmtCounts(c.Failed), c.Streams, fmtCounts(c.StreamsOn), c.ConfluxLegs, c.ConfluxStream, r.TorCPU[t], sdCPU)
	}
	if len(r.PoolMetrics) > 0 {
		md.WriteString("\nsocksd's pool metrics at the end:\n\n```\n" + strings.Join(r.PoolMetrics, "\n") + "\n```\n")
		var hi []string
		for k, v := range r.PoolMax {
			hi = append(hi, fmt.Sprintf("%s %s", k, num(v)))
		}
		slices.Sort(hi)
		fmt.Fprintf(&md, "\nHighest values sampled every 2 s: %s.\n", strings.Join(hi, ", "))
	}

	if r.Isolation != nil {
		fmt.Fprintf(&md, "\nIsolation check: %d streams per target from %d identities (%d at a time), each identity to its own name, read back from each tor's STREAM events:", r.Settings.IsoStreams, r.Settings.IsoIDs, r.Settings.IsoWorkers)
		for _, t := range targets {
			iso := r.Isolation[t]
			fmt.Fprintf(&md, " %s: %d answered, %d failed, %d circuits, %d carrying two identities%s;", t, iso.Streams, iso.Errors, iso.Circuits, len(iso.Mixed), mixedExample(iso.Mixed))
		}
		md.WriteString("\n")
	}
	if r.IdleCPU != nil {
		var parts []string
		for k, v := range r.IdleCPU {
			parts = append(parts, fmt.Sprintf("%s %.3f", k, v))
		}
		slices.Sort(parts)
		fmt.Fprintf(&md, "\nAfter the workload, %s without traffic: circuits built and never used, by purpose: %v. CPU seconds per minute meanwhile: %s.\n",
			r.Settings.Idle, r.Unused, strings.Join(parts, ", "))
	}
	md.WriteString("\n## Targets\n\n| target | measured | verdict | detail |\n|---|---|---|---|\n")
	for _, g := range r.goals() {
		bound := "≤"
		if !g.atMost {
			bound = "≥"
		}
		fmt.Fprintf(&md, "| %s %s %s%s | %s%s | %s | %s |\n", g.what, bound, num(g.bound), g.unit, num(g.value), g.unit, g.verdict(), g.detail)
	}
	return md.String()
}

// mixedExample shows one offending circuit, if any.
func mixedExample(m map[string][]string) string {
	for id, hosts := range m {
		return fmt.Sprintf(" (e.g. circuit %s: %s)", id, strings.Join(hosts, ", "))
	}
	return ""
}

// extraTargets describes the optional targets present.
func extraTargets(targets []string) string {
	var s string
	if slices.Contains(targets, "socksd-base") {
		s += "**socksd-base** is another socksd build (-socksd-base), same configuration, its own client tor. "
	}
	if slices.Contains(targets, "tor-nocfx") {
		s += "**tor-nocfx** is Tor alone with ConfluxEnabled 0. "
	}
	return s
}

// fmtCounts prints "GENERAL 12, CONTROLLER 30" in a stable order.
func fmtCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		name := k
		if name == "" {
			name = "?"
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, m[k]))
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, ", ")
}
