package main

import (
	"bufio"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// metricsText is what socksd's /metrics serves for the attach histogram
// (abridged to a few buckets), after 10 existing and 2 new attaches.
const metricsText = `# HELP socksd_tor_attach_latency_seconds Time from STREAM NEW to the answer of ATTACHSTREAM.
# TYPE socksd_tor_attach_latency_seconds histogram
socksd_tor_attach_latency_seconds_bucket{circuit="existing",le="0.0005"} 5
socksd_tor_attach_latency_seconds_bucket{circuit="existing",le="0.001"} 9
socksd_tor_attach_latency_seconds_bucket{circuit="existing",le="0.002"} 10
socksd_tor_attach_latency_seconds_bucket{circuit="existing",le="+Inf"} 10
socksd_tor_attach_latency_seconds_sum{circuit="existing"} 0.006
socksd_tor_attach_latency_seconds_count{circuit="existing"} 10
socksd_tor_attach_latency_seconds_bucket{circuit="new",le="0.0005"} 0
socksd_tor_attach_latency_seconds_bucket{circuit="new",le="0.001"} 0
socksd_tor_attach_latency_seconds_bucket{circuit="new",le="0.002"} 0
socksd_tor_attach_latency_seconds_bucket{circuit="new",le="+Inf"} 2
socksd_tor_attach_latency_seconds_count{circuit="new"} 2
socksd_tor_streams_attached_total{outcome="attached"} 12
`

func TestParseHistogram(t *testing.T) {
	h := map[string]*histogram{}
	// Twice: scrapes of successive socksd runs add up.
	for range 2 {
		if err := parseHistogram(strings.NewReader(metricsText), attachMetric, h); err != nil {
			t.Fatal(err)
		}
	}
	ex, nw := h["existing"], h["new"]
	if ex == nil || nw == nil || ex.count != 20 || nw.count != 4 {
		t.Fatalf("histograms %+v %+v", ex, nw)
	}
	for _, c := range []struct {
		h    *histogram
		q    float64
		want float64
	}{
		{ex, .5, .0005}, // 10 of 20 in the first bucket
		{ex, .9, .001},  // 18 of 20
		{ex, .99, .002}, // 20 of 20
		{nw, .5, math.Inf(1)},
	} {
		if got := c.h.quantile(c.q); got != c.want {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if q := (&histogram{buckets: map[float64]float64{}}).quantile(.5); !math.IsNaN(q) {
		t.Errorf("empty histogram quantile = %v, want NaN", q)
	}
	if err := parseHistogram(strings.NewReader("up 1\n"), attachMetric, map[string]*histogram{}); err == nil {
		t.Error("a scrape without the histogram must fail")
	}
	if err := parseHistogram(strings.NewReader(attachMetric+`_count{circuit="new"} x`+"\n"), attachMetric, map[string]*histogram{}); err == nil {
		t.Error("an unparsable value must fail")
	}
}

func FuzzParseHistogram(f *testing.F) {
	f.Add(metricsText)
	f.Add(attachMetric + `_bucket{le="1"} 1`)
	f.Add(attachMetric + `_bucket{circuit="new",le="x"} 1`)
	f.Fuzz(func(t *testing.T, s string) {
		h := map[string]*histogram{}
		if parseHistogram(strings.NewReader(s), attachMetric, h) != nil {
			return
		}
		for _, x := range h {
			if q := x.quantile(.99); x.count > 0 && math.IsNaN(q) {
				t.Fatalf("quantile NaN with count %v", x.count)
			}
		}
	})
}

func TestCheckVirtualA(t *testing.T) {
	vnet := netip.MustParsePrefix("10.192.0.0/10")
	a := func(ip string) dns.RR {
		rr, err := dns.NewRR("x.test. 60 IN A " + ip)
		if err != nil {
			t.Fatal(err)
		}
		return rr
	}
	for _, c := range []struct {
		name string
		m    dns.Msg
		ok   bool
	}{
		{"inside", dns.Msg{Answer: []dns.RR{a("10.200.1.2")}}, true},
		{"outside", dns.Msg{Answer: []dns.RR{a("127.192.0.1")}}, false},
		{"empty", dns.Msg{}, false},
		{"refused", dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeRefused}, Answer: []dns.RR{a("10.200.1.2")}}, false},
	} {
		if got := checkVirtualA(&c.m, vnet); (got == "") != c.ok {
			t.Errorf("%s: %q, want ok=%v", c.name, got, c.ok)
		}
	}
}

// TestStreamObserver feeds the observer a transcript of STREAM events
// (control-spec §4.1.2) and checks what it attributes to whom.
func TestStreamObserver(t *testing.T) {
	client, server := net.Pipe()
	o := &streamObserver{conn: client, port: 8080, pending: map[string]pendingNew{},
		samples: map[obsLabel][]float64{}, done: make(chan struct{})}
	go o.read(bufio.NewReader(client))
	send := func(line string) {
		t.Helper()
		server.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := server.Write([]byte(line + "\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	o.setLabel(obsLabel{target: "tor", fresh: true})
	send("650 STREAM 1 NEW 0 127.0.0.1:8080 SOURCE_ADDR=127.0.0.1:5000 PURPOSE=USER")
	send("650 STREAM 2 NEW 0 127.0.0.1:9030 PURPOSE=DIR_FETCH") // another port: not counted
	send("650 STREAM 1 SENTCONNECT 5 127.0.0.1:8080")
	send("650 STREAM 2 SENTCONNECT 5 127.0.0.1:9030")
	o.setLabel(obsLabel{target: "sd"})
	send("650 STREAM 3 NEW 0 127.0.0.1:8080")
	send("650 STREAM 3 FAILED 0 127.0.0.1:8080 REASON=TIMEOUT") // never connected: no sample
	send("650 STREAM 4 NEW 0 127.0.0.1:8080")
	send("650 STREAM 4 SENTCONNECT 7 127.0.0.1:8080")
	send("650 CIRC 5 BUILT") // not a stream event
	server.Close()
	got := o.close()
	if n := len(got[obsLabel{target: "tor", fresh: true}]); n != 1 {
		t.Errorf("tor first streams: %d samples, want 1", n)
	}
	if n := len(got[obsLabel{target: "sd"}]); n != 1 {
		t.Errorf("sd streams: %d samples, want 1", n)
	}
	if len(got) != 2 || len(o.pending) != 0 {
		t.Errorf("samples %v, pending %v", got, o.pending)
	}
}
