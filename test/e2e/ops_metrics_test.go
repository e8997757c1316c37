package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOpsMetrics: scrape /metrics before and after real
// traffic through the private network; the counters moved, and no label
// value (nor any other byte of the page) holds a destination, username,
// password or the client's address.
func TestOpsMetrics(t *testing.T) {
	n := needTornet(t)
	d := startDNSDaemon(t, OpsConfig, "", opsExtra(7))
	waitTorUsable(t, d, 60*time.Second)
	before := scrape(t, d.Metrics)
	s := secretTraffic(t, d, n)
	after := scrape(t, d.Metrics)

	delta := func(name string, labels ...string) float64 {
		return metricSum(after, name, labels...) - metricSum(before, name, labels...)
	}
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"socksd_connections_total", nil, 10},
		{"socksd_replies_total", []string{"code", "0x00"}, 7},
		{"socksd_relayed_bytes_total", []string{"direction", "down"}, 200000},
		{"socksd_relayed_bytes_total", []string{"direction", "up"}, 100},
		{"socksd_handshake_duration_seconds_count", nil, 10},
		{"socksd_upstream_connect_duration_seconds_count", nil, 7},
		{"socksd_tor_streams_attached_total", []string{"outcome", "attached"}, 5},
		{"socksd_dns_queries_total", []string{"qtype", "A", "result", "noerror"}, 1},
		{"socksd_dns_queries_total", []string{"qtype", "PTR", "result", "noerror"}, 1},
	} {
		if got := delta(c.name, c.labels...); got < c.min {
			t.Errorf("%s%v moved by %v, want >= %v", c.name, c.labels, got, c.min)
		} else {
			t.Logf("%s%v +%v", c.name, c.labels, got)
		}
	}
	// Per protocol: SOCKS4 (virtual address), SOCKS4a, SOCKS5, HTTP
	// CONNECT each moved; outcomes ok and failed both moved.
	moved := map[string]map[string]bool{"protocol": {}, "outcome": {}}
	for _, smp := range after {
		if smp.Name != "socksd_connections_total" {
			continue
		}
		lv := []string{"protocol", smp.Labels["protocol"], "outcome", smp.Labels["outcome"]}
		if d := smp.Value - metricSum(before, smp.Name, lv...); d > 0 {
			moved["protocol"][smp.Labels["protocol"]] = true
			moved["outcome"][smp.Labels["outcome"]] = true
			t.Logf("socksd_connections_total{protocol=%q,outcome=%q} +%v", smp.Labels["protocol"], smp.Labels["outcome"], d)
		}
	}
	if len(moved["protocol"]) < 4 {
		t.Errorf("connections moved for protocols %v, want 4 (socks4, socks4a, socks5, http connect)", moved["protocol"])
	}
	if !moved["outcome"]["ok"] || !moved["outcome"]["failed"] {
		t.Errorf("connection outcomes moved: %v, want ok and failed", moved["outcome"])
	}
	// Failure replies by code: at least the unresolvable name and the
	// unreachable address.
	var failCodes []string
	var fails float64
	for _, smp := range after {
		if smp.Name == "socksd_replies_total" && smp.Labels["code"] != "0x00" {
			d := smp.Value - metricSum(before, smp.Name, "protocol", smp.Labels["protocol"], "code", smp.Labels["code"])
			if d > 0 {
				fails += d
				failCodes = append(failCodes, fmt.Sprintf("%s/%s+%v", smp.Labels["protocol"], smp.Labels["code"], d))
			}
		}
	}
	if fails < 2 {
		t.Errorf("failure replies moved by %v (%v), want >= 2", fails, failCodes)
	} else {
		t.Logf("failure replies: %v", failCodes)
	}
	for _, g := range []struct {
		name string
		want float64
	}{
		{"socksd_tor_bootstrap_percent", 100},
		{"socksd_tor_control_connected", 1},
	} {
		if !metricHas(after, g.name) || metricSum(after, g.name) != g.want {
			t.Errorf("%s = %v (present %v), want %v", g.name, metricSum(after, g.name), metricHas(after, g.name), g.want)
		}
	}
	if metricSum(after, "socksd_dns_mappings", "family", "ipv4") < 1 {
		t.Errorf("socksd_dns_mappings{family=ipv4} = 0 after a bridge answer")
	}

	// Privacy: no secret in any label value, nor anywhere in the page.
	for _, smp := range after {
		for k, v := range smp.Labels {
			for _, sec := range s.all() {
				if strings.Contains(v, sec) {
					t.Errorf("label %s{%s=%q} holds %q", smp.Name, k, v, sec)
				}
			}
		}
	}
	resp, err := http.Get("http://" + d.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, sec := range s.all() {
		if strings.Contains(string(body), sec) {
			t.Errorf("/metrics holds %q", sec)
		}
	}
	t.Logf("%d samples scraped; none holds any of %d private strings", len(after), len(s.all()))
}
