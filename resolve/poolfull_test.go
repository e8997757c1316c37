package resolve

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestPoolFullLogged: a full pool is a warning (once per interval, no
// names) and a counter, not only a SERVFAIL the user cannot explain.
func TestPoolFullLogged(t *testing.T) {
	clk := newClock()
	core, logs := observer.New(zap.InfoLevel)
	reg := prometheus.NewRegistry()
	b, err := New(tinyPool(clk), newFakeTor(), zap.New(core), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := 1; i <= 7; i++ {
		if m := ask(t, b, fmt.Sprintf("n%d.test.", i), dns.TypeA); m.Rcode != dns.RcodeSuccess {
			t.Fatalf("n%d: %s", i, dns.RcodeToString[m.Rcode])
		}
	}
	for i := 0; i < 5; i++ {
		if m := ask(t, b, fmt.Sprintf("secret%d.test.", i), dns.TypeA); m.Rcode != dns.RcodeServerFailure {
			t.Fatalf("full pool: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
		}
	}
	full := logs.FilterMessageSnippet("virtual address pool full").All()
	if len(full) != 1 || full[0].Level != zap.WarnLevel {
		t.Fatalf("%d pool-full entries for 5 refusals in one interval, want 1 warning: %+v", len(full), full)
	}
	var m dto.Metric
	if err := b.metrics.full.WithLabelValues("ipv4").Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 5 {
		t.Fatalf("pool_exhausted_total{family=ipv4} = %v, want 5", got)
	}
	clk.Advance(31 * time.Second) // past the interval, still within the TTL
	ask(t, b, "secret9.test.", dns.TypeA)
	full = logs.FilterMessageSnippet("virtual address pool full").All()
	if len(full) != 2 || full[1].ContextMap()["suppressed"] != int64(4) {
		t.Fatalf("second interval: %d entries, last %v; want 2 with suppressed=4", len(full), full[len(full)-1].ContextMap())
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), "secret") {
			t.Fatalf("a name reached the log: %v %v", e.Message, e.ContextMap())
		}
	}
}
