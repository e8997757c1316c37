package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
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
// cannot take more than metricsMaxConns descriptors: with that many held,
// one more connection waits in the backlog unanswered, and is served as
// soon as they go.
func TestMetricsServerBounded(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	srv, err := startMetrics("127.0.0.1:0", newMux(newRegistry()), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := logs.FilterMessage("metrics listening").All()[0].ContextMap()["addr"].(string)

	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range metricsMaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// Accepted in order: this one queues behind the idle ones.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := c.Read(make([]byte, 1)); n > 0 || err == nil {
		t.Fatalf("answered with %d connections held, want it kept waiting (bound %d)", metricsMaxConns, metricsMaxConns)
	}
	for _, ic := range idle {
		ic.Close()
	}
	idle = nil
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("not served after the idle connections went: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
}
