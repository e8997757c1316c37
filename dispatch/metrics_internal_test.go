package dispatch

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// value is a counter's value.
func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// series is how many series a collector exports.
func series(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 1024)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

// The cached label children count into the same series as
// WithLabelValues, and create none before their first use.
func TestMetricsChildren(t *testing.T) {
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := series(m.Replies) + series(m.Connections) + series(m.HandshakeSeconds); n != 0 {
		t.Fatalf("%d series before any connection, want 0", n)
	}
	m.reply("socks5", 0x04).Inc()
	m.reply("socks5", 0x04).Inc()
	m.reply("socks4a", 0xF0).Inc()
	m.reply("other", 0x01).Inc() // not a known label: uncached, still counted
	m.connection("socks5", outcomeOK).Inc()
	m.connection("http-connect", outcomeFailed).Inc()
	m.connection("none", outcomeOverLimit).Inc()
	m.handshake("socks4").Observe(0.001)
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"replies socks5 0x04", value(t, m.Replies.WithLabelValues("socks5", "0x04")), 2},
		{"replies socks4a 0xf0", value(t, m.Replies.WithLabelValues("socks4a", "0xf0")), 1},
		{"replies other 0x01", value(t, m.Replies.WithLabelValues("other", "0x01")), 1},
		{"connections socks5 ok", value(t, m.Connections.WithLabelValues("socks5", outcomeOK)), 1},
		{"connections http-connect failed", value(t, m.Connections.WithLabelValues("http-connect", outcomeFailed)), 1},
		{"connections none over_limit", value(t, m.Connections.WithLabelValues("none", outcomeOverLimit)), 1},
		{"reply series", float64(series(m.Replies)), 3},
		{"connection series", float64(series(m.Connections)), 3},
		{"handshake series", float64(series(m.HandshakeSeconds)), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
