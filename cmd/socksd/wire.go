package main

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"socksd/chain"
	"socksd/config"
	"socksd/dispatch"
	"socksd/isolation"
)

// errConfig marks a wiring failure that only a configuration change can
// fix (exit code exitConfig).
var errConfig = errors.New("configuration")

// wired is everything wire() built.
type wired struct {
	srv     *dispatch.Server
	reg     *prometheus.Registry
	mux     *http.ServeMux
	closers []func() error
}

func (w *wired) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
}

// wire builds the concrete graph: upstream + resolver, the dispatcher and
// the metrics mux. It is the only place concrete Tor-facing types meet.
func wire(cfg config.Config, log *zap.Logger) (*wired, error) {
	w := &wired{reg: newRegistry()}
	w.mux = newMux(w.reg)
	up, res, closeUp, err := buildUpstream(cfg, log, w.reg)
	if err != nil {
		return nil, err
	}
	if closeUp != nil {
		w.closers = append(w.closers, closeUp)
	}
	srv, err := dispatch.New(dispatch.Options{
		Upstream:   up,
		Resolver:   res,
		IsVirtual:  nil, // the DNS bridge (resolve/) plugs its virtual-address test in here
		Log:        log,
		Registerer: w.reg,
	})
	if err != nil {
		w.close()
		return nil, err
	}
	w.srv = srv
	return w, nil
}

// buildUpstream chooses where streams go. For now: plain SOCKS5 chaining
// to [tor] socks. The Tor-control-port upstream (torup/) replaces this
// function's body: it returns its own Upstream/Resolver and a closer.
func buildUpstream(cfg config.Config, log *zap.Logger, reg prometheus.Registerer) (dispatch.Upstream, dispatch.Resolver, func() error, error) {
	_ = reg
	if cfg.Tor.SOCKS == "" {
		return nil, nil, nil, fmt.Errorf("%w: tor.socks is empty: set it to Tor's SocksPort (e.g. \"127.0.0.1:9050\"); discovering it through the control port is not available in this build", errConfig)
	}
	if cfg.Tor.Control != "" && cfg.Tor.Control != "none" {
		log.Warn("tor.control is set but this build chains to tor.socks only: no stream attaching, no MAPADDRESS")
	}
	u := chain.New(cfg.Tor.SOCKS, log)
	log.Info("chaining every stream to a SOCKS5 upstream", zap.String("upstream", cfg.Tor.SOCKS))
	return u, u, nil, nil
}

// checkWiring is -check-config's test of what wire() would refuse.
func checkWiring(cfg config.Config) error {
	if cfg.Tor.SOCKS == "" {
		return fmt.Errorf("%w: tor.socks is empty: set it to Tor's SocksPort (e.g. \"127.0.0.1:9050\")", errConfig)
	}
	return nil
}

// listenersFrom turns the config's listeners into dispatcher listeners,
// with per-application lookup for listeners that isolate on it.
func listenersFrom(cfg config.Config) []dispatch.ListenerConfig {
	specs := cfg.Listeners()
	out := make([]dispatch.ListenerConfig, 0, len(specs))
	for _, s := range specs {
		lc := dispatch.ListenerConfig{Addr: s.Listen, Policy: s.Policy}
		if s.Policy.Fields&isolation.ClientApp != 0 {
			lc.AppLookup = isolation.LookupConn
		}
		out = append(out, lc)
	}
	return out
}
