// Command socksd is a Tor-flavoured SOCKS front end: SOCKS4/4a/5 and an
// HTTP guard on one port, every stream forwarded to Tor. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"socksd/config"
	"socksd/dispatch"
	"socksd/internal/systemd"
)

// Exit codes. systemd's Restart=on-failure restarts on all but exitOK;
// exitConfig tells a supervisor that restarting will not help.
const (
	exitOK      = 0 // clean shutdown, -version, -check-config with a valid file
	exitFailure = 1 // runtime failure (cannot bind a listener, upstream setup failed)
	exitUsage   = 2 // bad command line (flag package convention)
	exitConfig  = 3 // configuration file unreadable or invalid
	exitForced  = 4 // a second signal forced exit before live streams drained
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + bi.GoVersion
	}
	return "socksd " + v
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("socksd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (TOML); empty = built-in defaults")
	check := fs.Bool("check-config", false, "load and validate the configuration, then exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	grace := fs.Duration("shutdown-grace", 15*time.Second, "on SIGTERM/SIGINT, how long live streams may drain before they are closed")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "socksd: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, versionString())
		return exitOK
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "socksd: %v\n", err)
		return exitConfig
	}
	if *check {
		if err := checkWiring(cfg); err != nil {
			fmt.Fprintf(stderr, "socksd: %v\n", err)
			return exitConfig
		}
		fmt.Fprintf(stdout, "socksd: configuration OK (%d listener(s))\n", len(cfg.Listeners()))
		return exitOK
	}

	level := zap.NewAtomicLevel()
	log, err := newLogger(cfg.Log, level, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "socksd: %v\n", err)
		return exitConfig
	}
	defer log.Sync()
	socks, err := systemd.Sockets()
	if err != nil {
		log.Error("socket activation", zap.Error(err))
		return exitFailure
	}
	d, code := start(cfg, *cfgPath, log, level, &inherited{socks: socks})
	if d == nil {
		return code
	}
	return d.serve(*grace)
}

func loadConfig(path string) (config.Config, error) {
	if path == "" {
		cfg := config.Default()
		return cfg, cfg.Validate()
	}
	return config.Load(path)
}

// daemon is a running socksd.
type daemon struct {
	log     *zap.Logger
	level   zap.AtomicLevel
	cfgPath string
	cfg     config.Config
	srv     *dispatch.Server
	wired   *wired
	metrics *http.Server
}

func start(cfg config.Config, cfgPath string, log *zap.Logger, level zap.AtomicLevel, socks *inherited) (*daemon, int) {
	log.Info("starting", zap.String("version", versionString()), zap.String("config", cfgPath))
	defer socks.leftover(log)
	w, err := wire(cfg, log, socks)
	if err != nil {
		log.Error("cannot set up the upstream", zap.Error(err))
		if errors.Is(err, errConfig) {
			return nil, exitConfig
		}
		return nil, exitFailure
	}
	if err := w.srv.Configure(settingsFrom(cfg), listenersFrom(cfg, socks)); err != nil {
		log.Error("cannot listen", zap.Error(err))
		w.close()
		return nil, exitFailure
	}
	d := &daemon{log: log, level: level, cfgPath: cfgPath, cfg: cfg, srv: w.srv, wired: w}
	if cfg.Metrics.Listen != "" {
		ms, err := startMetrics(cfg.Metrics.Listen, w.mux, log)
		if err != nil {
			log.Error("cannot start the metrics listener", zap.Error(err))
			w.srv.Close()
			w.close()
			return nil, exitFailure
		}
		d.metrics = ms
	}
	return d, exitOK
}

// serve handles signals until shutdown: SIGHUP reloads; SIGTERM/SIGINT
// stop accepting and drain for grace; a second SIGTERM/SIGINT forces exit.
func (d *daemon) serve(grace time.Duration) int {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sig)
	d.log.Info("ready")
	for s := range sig {
		if s == syscall.SIGHUP {
			d.reload()
			continue
		}
		d.log.Info("shutting down: no new connections, draining live streams",
			zap.Stringer("signal", s), zap.Duration("grace", grace), zap.Int("connections", d.srv.ActiveConnections()))
		return d.shutdown(grace, sig)
	}
	return exitOK
}

func (d *daemon) shutdown(grace time.Duration, sig <-chan os.Signal) int {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var forced atomic.Bool
	go func() {
		for s := range sig {
			if s != syscall.SIGHUP {
				d.log.Warn("second signal: closing every connection now", zap.Stringer("signal", s))
				forced.Store(true)
				cancel()
				return
			}
		}
	}()
	err := d.srv.Shutdown(ctx)
	if d.metrics != nil {
		mctx, mcancel := context.WithTimeout(context.Background(), time.Second)
		d.metrics.Shutdown(mctx)
		mcancel()
	}
	d.wired.close()
	if forced.Load() {
		return exitForced
	}
	if err != nil {
		d.log.Warn("grace period over; closed remaining connections")
	}
	d.log.Info("stopped")
	return exitOK
}

// reload re-reads the file; a bad file is logged and the running
// configuration stays. Listeners and [socks] settings swap without
// dropping live streams; [tor], [metrics] and [dns] need a restart.
func (d *daemon) reload() {
	if d.cfgPath == "" {
		d.log.Warn("reload: no -config file; nothing to re-read")
		return
	}
	cfg, err := config.Load(d.cfgPath)
	if err != nil {
		d.log.Error("reload: configuration refused; keeping the running one", zap.Error(err))
		return
	}
	if err := d.srv.Configure(settingsFrom(cfg), listenersFrom(cfg, nil)); err != nil {
		d.log.Error("reload: cannot apply listeners; keeping the running ones", zap.Error(err))
		return
	}
	if lvl, err := zap.ParseAtomicLevel(cfg.Log.Level); err == nil {
		d.level.SetLevel(lvl.Level())
	}
	if cfg.Tor != d.cfg.Tor {
		d.log.Warn("reload: [tor] changed; restart socksd to apply it")
	}
	if cfg.Metrics != d.cfg.Metrics {
		d.log.Warn("reload: [metrics] changed; restart socksd to apply it")
	}
	d.cfg = cfg
	d.log.Info("reloaded", zap.Int("listeners", len(cfg.Listeners())))
}

func settingsFrom(cfg config.Config) dispatch.Settings {
	return dispatch.Settings{
		HandshakeTimeout: cfg.SOCKS.HandshakeTimeout,
		UpstreamTimeout:  cfg.Tor.SOCKSTimeout,
		MaxConnections:   cfg.SOCKS.MaxConnections,
		ExtendedErrors:   cfg.SOCKS.ExtendedErrors,
		HTTPConnect:      cfg.SOCKS.HTTPConnect,
		SafeSOCKS:        cfg.SOCKS.SafeSOCKS,
		RejectInternal:   cfg.SOCKS.RejectInternal,
		SafeLogging:      cfg.Log.SafeLogging,
	}
}
