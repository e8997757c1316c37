package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

// Event lines as tor 0.4.9 writes them (control-spec §4.1.1, §4.1.2,
// §4.1.13), abridged paths.
var circEvents = []string{
	"650 CIRC 5 LAUNCHED BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=2026-12-07T21:47:16.000000",
	"650 CIRC 5 EXTENDED $AAAA~auth0 BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL",
	"650 CIRC 5 BUILT $AAAA~auth0,$BBBB~auth1,$CCCC~exit0 BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL",
	"650 CIRC 6 LAUNCHED BUILD_FLAGS=NEED_CAPACITY,NEED_UPTIME PURPOSE=CONFLUX_UNLINKED",
	"650 CIRC 6 BUILT $AAAA~auth0,$CCCC~exit0 PURPOSE=CONFLUX_UNLINKED CONFLUX_ID=0a1b",
	"650 CIRC_MINOR 6 PURPOSE_CHANGED $AAAA~auth0,$CCCC~exit0 PURPOSE=CONFLUX_LINKED OLD_PURPOSE=CONFLUX_UNLINKED",
	"650 CIRC 7 LAUNCHED PURPOSE=CONTROLLER",
	"650 CIRC 7 FAILED $AAAA~auth0 PURPOSE=CONTROLLER REASON=TIMEOUT",
	"650 CIRC 9 LAUNCHED PURPOSE=GENERAL",
	"650 CIRC 9 FAILED $AAAA~auth0 PURPOSE=GENERAL REASON=DESTROYED REMOTE_REASON=CHANNEL_CLOSED",
	"650 CIRC 8 LAUNCHED PURPOSE=CONTROLLER",
	"650 CIRC 8 BUILT $AAAA~auth0,$BBBB~auth1,$CCCC~exit0 PURPOSE=CONTROLLER",
	"650 STREAM 11 NEW 0 127.0.0.1:80 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER",
	"650 STREAM 11 SENTCONNECT 6 127.0.0.1:80",
	"650 STREAM 11 SUCCEEDED 6 127.0.0.1:80",
	"650 STREAM 12 SUCCEEDED 5 127.0.0.1:80",
	"650 STREAM 13 SUCCEEDED 99 127.0.0.1:80",
	"650 CIRC 5 CLOSED $AAAA~auth0,$BBBB~auth1,$CCCC~exit0 PURPOSE=GENERAL REASON=FINISHED",
}

func TestCircObserverCounts(t *testing.T) {
	o := &circObserver{circs: map[string]*circInfo{}, counts: newCircCounts(), started: time.Now()}
	for _, l := range circEvents {
		o.handle(l)
	}
	c, _, unused := o.snapshot()
	if c.Launched["GENERAL"] != 2 || c.Launched["CONFLUX_UNLINKED"] != 1 || c.Launched["CONTROLLER"] != 2 {
		t.Errorf("launched %v", c.Launched)
	}
	if c.BuiltTotal() != 3 || c.Built["CONTROLLER"] != 1 || c.Built["CONFLUX_UNLINKED"] != 1 {
		t.Errorf("built %v", c.Built)
	}
	if c.Failed["CONTROLLER TIMEOUT"] != 1 || c.Failed["GENERAL DESTROYED/CHANNEL_CLOSED"] != 1 {
		t.Errorf("failed %v", c.Failed)
	}
	if c.Streams != 3 || c.StreamsOn["CONFLUX_LINKED"] != 1 || c.StreamsOn["GENERAL"] != 1 || c.StreamsOn["?"] != 1 {
		t.Errorf("streams %d %v", c.Streams, c.StreamsOn)
	}
	if c.ConfluxLegs != 1 || c.ConfluxStream != 1 {
		t.Errorf("conflux legs %d streams %d", c.ConfluxLegs, c.ConfluxStream)
	}
	// Open now: 6 (carried a stream) and 8 (never did).
	if len(unused) != 1 || unused["CONTROLLER"] != 1 {
		t.Errorf("unused %v", unused)
	}
	o.reset()
	if c, _, _ := o.snapshot(); c.BuiltTotal() != 0 || c.Streams != 0 {
		t.Errorf("after reset %+v", c)
	}
}

func TestUserGoals(t *testing.T) {
	ms := func(base float64, n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = base + float64(i)
		}
		return v
	}
	r := &userReport{
		Samples: map[string]map[string][]float64{
			mNewSeq:   {"tor": ms(450, 30), "socksd": ms(300, 30)}, // 0.68×: met
			mNewBurst: {"tor": ms(450, 60), "socksd": ms(800, 60)}, // missed
			mKnown:    {"tor": ms(400, 90), "socksd": ms(404, 90)},
			mBulk1:    {"tor": {2, 2, 2}, "socksd": {1, 1, 1}},
		},
		Circuits:    map[string]circCounts{"tor": {Built: map[string]int{"GENERAL": 10}}, "socksd": {Built: map[string]int{"CONTROLLER": 16}}},
		Hours:       0.5,
		CPU:         map[string]float64{"socksd": 1},
		TorCPU:      map[string]float64{"socksd": 40, "tor": 40},
		PoolMetrics: []string{`socksd_tor_pool_circuits 2`},
		PoolMax:     map[string]float64{poolGauge: 4},
	}
	got := map[string]userGoal{}
	for _, g := range r.goals() {
		got[strings.SplitN(g.what, ":", 2)[0]] = g
	}
	check := func(key, verdict string, value float64) {
		t.Helper()
		g, ok := got[key]
		if !ok {
			t.Fatalf("no goal %q in %v", key, got)
		}
		if !strings.Contains(g.verdict(), verdict) || (!math.IsNaN(value) && math.Abs(g.value-value) > 0.01) {
			t.Errorf("%s: %v %s, want %v %s", key, g.value, g.verdict(), value, verdict)
		}
	}
	check("new identity, first stream, sequential", "met", 315.0/465)
	check("new identity, first stream, bursts", "missed by", 857.0/507)
	check("known identity, later stream", "met", 449.0/445)
	check("bulk, 1 stream", "missed by 0.48", 0.5)
	check("bulk, 8 parallel streams", "not measured", math.NaN())
	// 32/h against 20/h + a high-water mark of 4: 8 too many.
	check("circuits built per hour", "missed by 8", 8)
	check("socksd CPU / its client tor's CPU, same workload", "met", 2.5)
	md := r.markdown([]string{"tor", "socksd"})
	for _, want := range []string{"| new identity, first stream (sequential) | 465 [457–472] p95 478 (n=30) |", "0.68×", "**met**"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// The isolation check reads identities from the stream targets Tor
// reports: a circuit that carried iso1 and iso2 is mixed, whatever socksd
// thinks.
func TestCircObserverIsolation(t *testing.T) {
	o := &circObserver{circs: map[string]*circInfo{}, isoHosts: map[string]map[string]bool{}, counts: newCircCounts(), started: time.Now()}
	for _, l := range []string{
		"650 STREAM 1 SENTCONNECT 5 iso1.example.test:20030",
		"650 STREAM 1 SUCCEEDED 5 127.0.0.1:20030",
		"650 STREAM 2 SENTCONNECT 5 ISO1.example.test:20030",
		"650 STREAM 3 SENTCONNECT 6 iso2.example.test:20030",
		"650 STREAM 4 SENTCONNECT 7 iso3.example.test:20030",
		"650 STREAM 5 SENTCONNECT 7 iso4.example.test:20030",
		"650 STREAM 6 SENTCONNECT 8 127.0.0.1:20030",
	} {
		o.handle(l)
	}
	circs, mixed := o.isolation()
	if circs != 3 || len(mixed) != 1 || strings.Join(mixed["7"], ",") != "iso3.example.test,iso4.example.test" {
		t.Fatalf("circuits %d, mixed %v", circs, mixed)
	}
}
