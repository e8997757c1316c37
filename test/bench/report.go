package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// metric is one figure of the report.
type metric struct {
	ID, Label, Unit string
	Higher          bool // higher is better
	Format          string
}

var metrics = []metric{
	{"rate_c1", "conn rate C=1", "conn/s", true, "%.0f"},
	{"p50_c1", "latency p50 C=1", "ms", false, "%.3f"},
	{"p99_c1", "latency p99 C=1", "ms", false, "%.3f"},
	{"rate_c64", "conn rate C=64", "conn/s", true, "%.0f"},
	{"p50_c64", "latency p50 C=64", "ms", false, "%.2f"},
	{"p99_c64", "latency p99 C=64", "ms", false, "%.2f"},
	{"rate_c64_4a", "conn rate C=64 SOCKS4a", "conn/s", true, "%.0f"},
	{"cpu_conn_c64", "CPU per conn (C=64)", "us", false, "%.1f"},
	{"cpuall_conn_c64", "CPU per conn, all processes (C=64)", "us", false, "%.1f"},
	{"bulk1_down", "bulk 1 stream down", "GB/s", true, "%.2f"},
	{"bulk16_down", "bulk 16 streams down", "GB/s", true, "%.2f"},
	{"bulk1_up", "bulk 1 stream up", "GB/s", true, "%.2f"},
	{"bulk16_up", "bulk 16 streams up", "GB/s", true, "%.2f"},
	{"cpu_gb", "CPU per GB relayed", "s/GB", false, "%.3f"},
	{"cpuall_gb", "CPU per GB, all processes", "s/GB", false, "%.3f"},
	{"rss_conn", "RSS per idle conn", "KiB", false, "%.1f"},
	{"pss_conn", "PSS per idle conn", "KiB", false, "%.1f"},
	{"fd_conn", "fds per idle conn", "fd", false, "%.2f"},
	{"thr_conn", "threads per idle conn", "thr", false, "%.2f"},
	{"idle_n", "idle conns held (N)", "conns", true, "%.0f"},
	{"idle_cap", "idle conns the fd limit allows", "conns", true, "%.0f"},
}

// stat is the median and range of one metric over repetitions.
type stat struct {
	Med, Min, Max float64
	N             int
}

func stats(samples []sample, target, id string) (stat, bool) {
	var v []float64
	for _, s := range samples {
		if s.Target == target {
			if x, ok := s.M[id]; ok {
				v = append(v, x)
			}
		}
	}
	if len(v) == 0 {
		return stat{}, false
	}
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return stat{Med: med, Min: v[0], Max: v[len(v)-1], N: len(v)}, true
}

func targetsOf(samples []sample) []string {
	var t []string
	for _, s := range samples {
		if !slices.Contains(t, s.Target) {
			t = append(t, s.Target)
		}
	}
	// Keep the suite's order: direct, peers, then socksd front ends.
	order := func(n string) int {
		switch {
		case n == "direct":
			return 0
		case strings.HasPrefix(n, "socksdB"):
			return 3
		case strings.HasPrefix(n, "socksd"):
			return 2
		}
		return 1
	}
	slices.SortStableFunc(t, func(a, b string) int { return order(a) - order(b) })
	return t
}

// machine describes where the figures come from.
type machine struct {
	NProc              int
	CPU, Kernel, GoVer string
	MemTotal, FDLimit  string
	Socksd             string
}

func thisMachine() machine {
	m := machine{NProc: runtime.NumCPU(), GoVer: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemTotal = strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"))
	}
	if out, err := exec.Command("sh", "-c", "ulimit -n").Output(); err == nil {
		m.FDLimit = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "log", "-1", "--format=%h %s").Output(); err == nil {
		m.Socksd = strings.TrimSpace(string(out))
	}
	return m
}

// fastestU picks U: the upstream-capable peer with the best median
// single-stream download: socksd in front of U is compared with the
// fastest peer of the same run, the hardest fair baseline.
func fastestU(rf *runFile) string {
	best, bestV := "", -1.0
	for _, t := range targetsOf(rf.Samples) {
		if !slices.Contains(targetsOf(rf.Samples), "socksd>"+t) {
			continue
		}
		if st, ok := stats(rf.Samples, t, "bulk1_down"); ok && st.Med > bestV {
			best, bestV = t, st.Med
		}
	}
	return best
}

func writeReport(rf *runFile, dir string) error {
	var b strings.Builder
	targets := targetsOf(rf.Samples)
	m := rf.Machine
	fmt.Fprintf(&b, "# socksd benchmark (%s mode)\n\n", rf.Mode)
	fmt.Fprintf(&b, "Machine: %d CPUs, %s, kernel %s, %s, RAM %s, fd limit %s.  \n", m.NProc, m.CPU, m.Kernel, m.GoVer, m.MemTotal, m.FDLimit)
	fmt.Fprintf(&b, "socksd at `%s`.  \n", m.Socksd)
	fmt.Fprintf(&b, "Run %s, took %s; %s. Load average at start %s, at end %s (the machine was shared).\n\n",
		rf.Started.Format("2006-01-02 15:04 UTC"), rf.Elapsed, rf.Settings, rf.LoadStart, rf.LoadEnd)
	b.WriteString("Cells: median (min–max) over repetitions; targets alternate within each repetition. ")
	b.WriteString("Memory, descriptors and CPU are the proxy process tree's; for `socksd>U` rows they are socksd's alone (U not included), while rates and throughput are end to end through socksd and U.\n\n")

	b.WriteString("| metric |")
	for _, t := range targets {
		fmt.Fprintf(&b, " %s |", t)
	}
	b.WriteString("\n|---|")
	for range targets {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, mt := range metrics {
		fmt.Fprintf(&b, "| %s (%s) |", mt.Label, mt.Unit)
		for _, t := range targets {
			st, ok := stats(rf.Samples, t, mt.ID)
			if !ok {
				b.WriteString(" — |")
				continue
			}
			if st.N == 1 || st.Min == st.Max {
				fmt.Fprintf(&b, " "+mt.Format+" |", st.Med)
			} else {
				fmt.Fprintf(&b, " "+mt.Format+" ("+mt.Format+"–"+mt.Format+") |", st.Med, st.Min, st.Max)
			}
		}
		b.WriteString("\n")
	}

	u := fastestU(rf)
	for _, front := range []string{"socksd>" + u, "socksd>" + u + "/unix", "socksdB>" + u, "socksdB>" + u + "/unix"} {
		if u == "" || !slices.Contains(targets, front) {
			continue
		}
		fmt.Fprintf(&b, "\n## socksd as a front end: `%s` against U = `%s` alone\n\n", front, u)
		b.WriteString("| target | socksd>U | U alone | ratio | goal | met |\n|---|---|---|---|---|---|\n")
		ratio := func(label, id string, goal float64) {
			f, ok1 := stats(rf.Samples, front, id)
			g, ok2 := stats(rf.Samples, u, id)
			if !ok1 || !ok2 || g.Med == 0 {
				fmt.Fprintf(&b, "| %s | — | — | — | ≥ %.2f | ? |\n", label, goal)
				return
			}
			r := f.Med / g.Med
			fmt.Fprintf(&b, "| %s | %.3g | %.3g | %.2f | ≥ %.2f | %s |\n", label, f.Med, g.Med, r, goal, yes(r >= goal))
		}
		ratio("relay 1 stream down (GB/s)", "bulk1_down", 0.90)
		ratio("relay 16 streams down (GB/s)", "bulk16_down", 0.90)
		ratio("relay 1 stream up (GB/s)", "bulk1_up", 0.90)
		ratio("relay 16 streams up (GB/s)", "bulk16_up", 0.90)
		ratio("conn rate C=64 (conn/s)", "rate_c64", 0.80)
		abs := func(label, id string, goal float64) {
			f, ok := stats(rf.Samples, front, id)
			if !ok {
				fmt.Fprintf(&b, "| %s | — | | | ≤ %g | ? |\n", label, goal)
				return
			}
			// Compare what is shown: 4.0003 descriptors print, and count, as 4.00.
			fmt.Fprintf(&b, "| %s | %.2f | | | ≤ %g | %s |\n", label, f.Med, goal, yes(math.Round(f.Med*100)/100 <= goal))
		}
		abs("RSS per idle proxied conn (KiB)", "rss_conn", 12)
		abs("descriptors per idle proxied conn", "fd_conn", 4)
	}

	notes := false
	for _, s := range rf.Samples {
		for _, n := range s.Notes {
			if !notes {
				b.WriteString("\n## Notes from the run\n\n")
				notes = true
			}
			fmt.Fprintf(&b, "- rep %d, %s: %s\n", s.Rep+1, s.Target, n)
		}
	}
	b.WriteString("\n![chart](bench.png)\n")
	if err := os.WriteFile(filepath.Join(dir, "bench.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	return writeChart(rf, targets, filepath.Join(dir, "bench.png"))
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
