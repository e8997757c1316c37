package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat; 100
// on every Linux ABI Go supports.
const clockTicks = 100

// procUsage is a snapshot of a process tree's cost, summed over the root
// and every descendant (dante forks children; the others are one process).
type procUsage struct {
	RSSKiB  float64 // smaps_rollup Rss
	PSSKiB  float64 // smaps_rollup Pss: shared pages divided among sharers
	FDs     int     // entries in /proc/PID/fd
	Threads int
	CPU     float64 // utime+stime, seconds
	Procs   int
}

// treePIDs returns root and all its descendants, found by scanning the
// parent PID of every process (fields after the ")" of /proc/PID/stat).
func treePIDs(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := statFields(pid)
		if err != nil || len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out) && i < 4096; i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// statFields returns the fields of /proc/PID/stat after the command name,
// so f[0] is the state (field 3), f[1] the ppid, f[11] utime, f[12] stime.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("proc: malformed stat for %d", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

func usageOf(root int) (procUsage, error) {
	var u procUsage
	for _, pid := range treePIDs(root) {
		f, err := statFields(pid)
		if err != nil {
			if pid == root {
				return u, err
			}
			continue // a child exited meanwhile
		}
		u.Procs++
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		th, _ := strconv.Atoi(f[17])
		u.CPU += (ut + st) / clockTicks
		u.Threads += th
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			u.FDs += len(fds)
		}
		rss, pss := smapsRollup(pid)
		u.RSSKiB += rss
		u.PSSKiB += pss
	}
	return u, nil
}

func cpuOf(root int) float64 {
	var cpu float64
	for _, pid := range treePIDs(root) {
		if f, err := statFields(pid); err == nil {
			ut, _ := strconv.ParseFloat(f[11], 64)
			st, _ := strconv.ParseFloat(f[12], 64)
			cpu += (ut + st) / clockTicks
		}
	}
	return cpu
}

// smapsRollup reads Rss and Pss (kB) from /proc/PID/smaps_rollup.
func smapsRollup(pid int) (rss, pss float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(fs[1], 64)
		switch fs[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		}
	}
	return rss, pss
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
