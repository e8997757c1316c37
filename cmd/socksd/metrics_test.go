package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestMetricsServerHostAndErrorLog: every path of the metrics listener
// refuses a DNS-rebinding Host, and net/http's own complaints arrive as
// structured entries rather than plain text on stderr.
func TestMetricsServerHostAndErrorLog(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	mux := newMux(newRegistry())
	mux.HandleFunc("GET /twice", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		w.WriteHeader(http.StatusNoContent) // net/http logs a superfluous WriteHeader
	})
	srv, err := startMetrics("127.0.0.1:0", mux, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	up := logs.FilterMessage("metrics listening").All()
	if len(up) != 1 {
		t.Fatal("no listening entry")
	}
	addr := up[0].ContextMap()["addr"].(string)

	get := func(path, host string) int {
		t.Helper()
		r, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		r.Host = host
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("/metrics", addr); c != 200 {
		t.Fatalf("GET /metrics with own Host: %d", c)
	}
	if c := get("/metrics", "rebind.attacker.example:9352"); c != http.StatusMisdirectedRequest {
		t.Fatalf("GET /metrics with foreign Host: %d, want 421", c)
	}
	for range 3 {
		get("/twice", addr)
	}
	errs := logs.FilterMessage("metrics listener error").All()
	if len(errs) != 1 {
		t.Fatalf("%d error entries for 3 superfluous WriteHeader calls, want 1 (rate-limited)", len(errs))
	}
	if e := errs[0].ContextMap()["error"].(string); !strings.Contains(e, "superfluous") {
		t.Fatalf("error field %q", e)
	}
}

// TestMetricsServerBounded: idle connections to the metrics listener
// cannot take more than metricsMaxConns descriptors; once they go, it
// serves again.
func TestMetricsServerBounded(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	srv, err := startMetrics("127.0.0.1:0", newMux(newRegistry()), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := logs.FilterMessage("metrics listening").All()[0].ContextMap()["addr"].(string)

	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(ents)
	}
	before := fds()
	const idle = metricsMaxConns + 16
	var conns []net.Conn
	for range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The server accepts up to the bound at once; poll (bounded) until it
	// has, then check it went no further.
	deadline := time.Now().Add(5 * time.Second)
	for fds() < before+idle+metricsMaxConns && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a window for an accept past the bound to show
	if got := fds() - before - idle; got != metricsMaxConns {
		t.Errorf("server side holds %d descriptors for %d idle connections, want %d", got, idle, metricsMaxConns)
	}
	for _, c := range conns {
		c.Close()
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics after the idle connections went: %d", resp.StatusCode)
	}
}
