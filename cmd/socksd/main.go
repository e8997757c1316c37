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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"socksd/config"
	"socksd/dispatch"
	"socksd/internal/systemd"
	"socksd/netjail"
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

func main() {
	if netjail.IsHelper() {
		// socksd run re-executed us inside its namespaces.
		os.Exit(netjail.Helper())
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

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
	if len(args) > 0 && args[0] == "run" {
		return runCommand(args[1:], stderr)
	}
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
	startPprof(log)
	socks, err := systemd.Sockets()
	if err != nil {
		log.Error("socket activation", zap.Error(err))
		return exitFailure
	}
	// Signals are caught from before the listeners open: a client that
	// can connect can also be followed by a SIGHUP or SIGTERM, which must
	// never meet Go's default action (exit) in the moment before serve.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sig)
	d, code := start(cfg, *cfgPath, log, level, &inherited{socks: socks})
	if d == nil {
		return code
	}
	return d.serve(sig, *grace)
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
	cfg     config.Config // as the file says (limits not fitted)
	fd      *fdBudget
	srv     *dispatch.Server
	wired   *wired
	metrics *http.Server
	started time.Time
	// Fixed at start ([tor] and [dns] changes need a restart).
	torSOCKS  string
	dnsListen []string
	readySent atomic.Bool // READY=1 was sent
}

func start(cfg config.Config, cfgPath string, log *zap.Logger, level zap.AtomicLevel, socks *inherited) (*daemon, int) {
	log.Info("starting", zap.String("version", versionString()), zap.String("config", cfgPath))
	defer socks.leftover(log)
	// eff is cfg with the connection limits fitted under RLIMIT_NOFILE;
	// d.cfg keeps the file's values so a reload compares like with like.
	eff := cfg
	fd := &fdBudget{limit: readNOFILE()}
	if err := fd.fit(&eff, log, true); err != nil {
		log.Error("cannot start", zap.Error(err))
		return nil, exitFailure
	}
	w, err := wire(eff, log, socks)
	if err != nil {
		log.Error("cannot set up the upstream", zap.Error(err))
		if errors.Is(err, errConfig) {
			return nil, exitConfig
		}
		return nil, exitFailure
	}
	if err := w.srv.Configure(eff.Settings(), listenersFrom(eff, socks)); err != nil {
		log.Error("cannot listen", zap.Error(err))
		w.close()
		return nil, exitFailure
	}
	d := &daemon{log: log, level: level, cfgPath: cfgPath, cfg: cfg, fd: fd, srv: w.srv, wired: w,
		started: time.Now(), torSOCKS: cfg.Tor.SOCKS, dnsListen: cfg.DNS.Listen}
	d.adminHandler().Register(w.mux)
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

// serve handles signals until shutdown: SIGHUP reloads; SIGUSR1 is a new
// identity; SIGTERM/SIGINT stop accepting and drain for grace; a second
// SIGTERM/SIGINT forces exit. Alongside, it talks to systemd: READY=1,
// STATUS= lines, WATCHDOG=1.
func (d *daemon) serve(sig <-chan os.Signal, grace time.Duration) int {
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	stopBackground := func() { cancel(); bg.Wait() }
	defer stopBackground()
	bg.Add(2)
	go func() { defer bg.Done(); d.notifySystemd(ctx) }()
	go func() {
		defer bg.Done()
		if err := systemd.RunWatchdog(ctx, d.alive); err != nil {
			d.log.Warn("systemd watchdog", zap.Error(err))
		}
	}()
	d.log.Info("ready")
	for s := range sig {
		switch s {
		case syscall.SIGHUP:
			// Before the first READY=1 systemd is still starting the
			// unit: a reload then is not a reload to report.
			ready := d.readySent.Load()
			if ready {
				systemd.Reloading()
			}
			d.reload()
			if ready {
				systemd.Ready()
			}
			continue
		case syscall.SIGUSR1:
			nctx, ncancel := context.WithTimeout(ctx, 10*time.Second)
			if err := d.newIdentity(nctx); err != nil {
				d.log.Warn("new identity (SIGUSR1)", zap.Error(err))
			}
			ncancel()
			continue
		}
		systemd.Stopping()
		stopBackground()
		d.log.Info("shutting down: no new connections, draining live streams",
			zap.Stringer("signal", s), zap.Duration("grace", grace), zap.Int("connections", d.srv.ActiveConnections()))
		return d.shutdown(grace, sig)
	}
	return exitOK
}

// readyWait bounds how long READY=1 waits for the first authenticated
// control connection. systemd's default TimeoutStartSec is 90 s; a system
// tor that is down at boot must not make socksd's start fail in a restart
// loop (it fails closed and keeps reconnecting), so past this socksd
// reports ready with a STATUS= line saying Tor is not connected.
const readyWait = 60 * time.Second

// notifySystemd sends READY=1 once the listeners are up (they are: serve
// runs after Configure) and the control port is authenticated, then a
// STATUS= line whenever the Tor state it describes changes.
func (d *daemon) notifySystemd(ctx context.Context) {
	last := d.statusLine()
	systemd.Status(last)
	if ctl := d.wired.tor.Controller(); ctl != nil {
		t := time.NewTimer(readyWait)
		select {
		case <-ctl.Ready():
			t.Stop()
		case <-t.C:
			d.log.Warn("Tor's control port is still not connected; reporting ready anyway (failing closed until it is)", zap.Duration("waited", readyWait))
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	if line := d.statusLine(); line != last {
		last = line
		systemd.Status(line)
	}
	d.readySent.Store(true) // before READY=1: a SIGHUP right after it is a reload
	systemd.Ready()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if line := d.statusLine(); line != last {
			last = line
			systemd.Status(line)
		}
	}
}

// alive is the watchdog's health test: the dispatcher's lock can be
// taken (a wedged accept/configure path skips the ping and systemd
// restarts socksd). Tor being down is not a reason to be restarted.
func (d *daemon) alive() bool {
	return d.srv.Addrs() != nil
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
// configuration stays. What reload applies and what it names as needing a
// restart is decided in one place, changes (reload.go).
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
	eff := cfg
	if err := d.fd.fit(&eff, d.log, false); err != nil {
		d.log.Error("reload: configuration refused; keeping the running one", zap.Error(err))
		return
	}
	live := liveOf(eff)
	if err := d.srv.Configure(live.Settings, listenersFrom(eff, nil)); err != nil {
		d.log.Error("reload: cannot apply listeners; keeping the running ones", zap.Error(err))
		return
	}
	if lvl, err := zap.ParseAtomicLevel(live.LogLevel); err == nil {
		d.level.SetLevel(lvl.Level())
	}
	_, restart := changes(d.cfg, cfg)
	for _, key := range restart {
		d.log.Warn("reload: " + key + " changed; it needs a restart (systemctl restart socksd); the running value stays")
	}
	d.cfg = cfg
	d.log.Info("reloaded", zap.Int("listeners", len(cfg.Listeners())))
}
