package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/net/netutil"

	"socksd/internal/admin"
	"socksd/internal/ratelog"
)

// newRegistry is socksd's own registry (no global default registerer),
// with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// newMux serves /metrics from reg. Later features (status page, /healthz,
// POST /newnym) add their handlers to the same mux in wire().
func newMux(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// metricsMaxConns bounds the metrics listener's open connections: a
// scraper and a browser need a handful, and without a bound any local
// user could hold idle keep-alive connections until socksd runs out of
// descriptors (they come out of fdReserveBase). Past it, new connections
// wait in the kernel's backlog until one closes.
const metricsMaxConns = 32

// startMetrics listens on addr and serves mux. A non-loopback address is
// allowed but warned about: the metrics listener also carries admin
// endpoints and reveals usage patterns.
func startMetrics(addr string, mux *http.ServeMux, log *zap.Logger) (*http.Server, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil && !ap.Addr().IsLoopback() {
		log.Warn("metrics listener is not on loopback: anyone who can reach it sees socksd's usage", zap.String("listen", addr))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	ln = netutil.LimitListener(ln, metricsMaxConns)
	srv := &http.Server{
		// Every path, /metrics included, refuses a foreign Host (DNS
		// rebinding).
		Handler:           admin.HostGuard(addr, mux),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second, // a keep-alive connection gives its slot back
		// net/http's own errors (accept failures such as EMFILE, TLS
		// noise from port scans) as structured, rate-limited warnings
		// instead of plain text on stderr.
		ErrorLog: ratelog.StdLogger(log.Named("metrics"), zapcore.WarnLevel, "metrics listener error",
			&ratelog.Limiter{Every: 10 * time.Second}),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", zap.Error(err))
		}
	}()
	log.Info("metrics listening", zap.Stringer("addr", ln.Addr()))
	return srv, nil
}
