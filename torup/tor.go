package torup

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"socksd/chain"
	"socksd/dispatch"
	"socksd/internal/endpoint"
	"socksd/isolation"
	"socksd/torctl"
	"socksd/torup/launch"
)

// Config is the [tor] table of socksd's configuration file, owned here:
// DefaultConfig gives its defaults, Validate its rules (config.Parse calls
// both), and cmd/socksd fills the fields the file does not set.
type Config struct {
	Control      string `toml:"control"` // "" = find one (then maybe launch), "none", "unix:/path", "host:port"
	SOCKS        string `toml:"socks"`   // SocksPort; "" = discover with GETINFO net/listeners/socks
	CookieFile   string `toml:"cookie_file"`
	PasswordFile string `toml:"password_file"`
	Launch       string `toml:"launch"` // "auto" | "always" | "never"
	TorBinary    string `toml:"tor_binary"`
	DataDir      string `toml:"data_dir"` // managed tor's DataDirectory; "" = StateDir/tor
	TorrcExtra   string `toml:"torrc_extra"`

	AttachStreams   bool          `toml:"attach_streams"`
	CircuitLifetime time.Duration `toml:"circuit_lifetime"`
	SOCKSTimeout    time.Duration `toml:"socks_timeout"`
	// CircuitPool caps the warm pool of clean circuits new keys take at
	// once (pool.go); 0 turns it off.
	CircuitPool int `toml:"circuit_pool"`

	// StateDir is the file's top-level state_dir (where a managed tor's
	// DataDirectory goes by default); cmd/socksd copies it in.
	StateDir string `toml:"-"`
	// SystemControl lists where a system Tor's control port is looked
	// for when Control is "" (default /run/tor/control, 127.0.0.1:9051).
	SystemControl []string `toml:"-"`
}

// Tor is socksd's connection to Tor: upstream, resolver, controller and,
// when socksd launched it, the managed tor process.
type Tor struct {
	cfg Config
	log *zap.Logger
	m   *metrics

	reg   *registry
	att   *attacher
	ctl   *Controller // nil: no control port ("none", or socks-only fallback)
	tor   *launch.Tor // nil unless managed
	up    *upstream
	chain atomic.Pointer[chain.Upstream]

	ctlBackoff     time.Duration // tests: minimum reconnect delay
	ctlProbe       time.Duration // tests: liveness probe interval
	ctlProbeWait   time.Duration // tests: liveness probe timeout
	reconnectHooks []func(context.Context, *torctl.Conn) error
	eventHooks     []func(torctl.Event)
}

// OnReconnect registers fn to run after every successful control
// connection, the first included (see Controller.OnReconnect). Call before
// Start; without a control port it is never called.
func (t *Tor) OnReconnect(fn func(ctx context.Context, conn *torctl.Conn) error) {
	t.reconnectHooks = append(t.reconnectHooks, fn)
}

// OnEvent registers fn to see every control-port event in order (see
// Controller.OnEvent). Call before Start.
func (t *Tor) OnEvent(fn func(torctl.Event)) { t.eventHooks = append(t.eventHooks, fn) }

// SetVirtualLookup tells the attacher what the DNS bridge's virtual
// addresses stand for ((*resolve.Bridge).Lookup). Tor reports a stream to
// a virtual address by that address and applies its MAPADDRESS only when
// the stream is attached, so without this a virtual address for a .onion
// would be attached to a socksd circuit, which Tor refuses (551) and the
// stream dies. With it, a stream whose address stands for a .onion or
// .exit name is handed back to Tor with circuit 0, like that name itself.
// Safe to call at any time, before or after Start; nil removes it. f is
// called on the event goroutine, once per new stream to an IP address: it
// must be quick and must not call into torup.
func (t *Tor) SetVirtualLookup(f func(netip.Addr) (name string, ok bool)) {
	t.att.setVirtualLookup(f)
}

// New builds a Tor from cfg, which Validate accepts (zero durations take
// the attacher's defaults); nothing is started. reg may be nil.
func New(cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Tor, error) {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("tor")
	if cfg.SystemControl == nil {
		cfg.SystemControl = []string{"unix:/run/tor/control", "127.0.0.1:9051"}
	}
	if cfg.TorBinary == "" {
		cfg.TorBinary = "tor"
	}
	t := &Tor{cfg: cfg, log: log, m: newMetrics(reg), reg: newRegistry()}
	t.att = newAttacher(attacherConfig{
		Lifetime: cfg.CircuitLifetime, SOCKSTimeout: cfg.SOCKSTimeout,
		Passive: !cfg.AttachStreams, PoolMax: cfg.CircuitPool,
	}, t.reg, t.m, log.Named("attach"))
	t.up = &upstream{t: t}
	return t, nil
}

// Start finds (or launches) Tor and connects to it. A control port that is
// configured but not reachable yet is not an error: socksd fails closed
// and keeps reconnecting. Bad credentials, launch = "never" without a Tor,
// or a managed tor that does not start are errors.
func (t *Tor) Start(ctx context.Context) error {
	cfg := t.cfg
	if cfg.Control == "none" {
		t.log.Info("no control port: plain SOCKS chaining to Tor, no stream attaching, no MAPADDRESS", zap.String("socks", cfg.SOCKS))
		t.chain.Store(t.up.newChain(cfg.SOCKS))
		return nil
	}
	cc := ControllerConfig{
		Addr: cfg.Control, CookieFile: cfg.CookieFile,
		AttachStreams: cfg.AttachStreams, SOCKS: cfg.SOCKS,
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return fmt.Errorf("torup: password_file: %w", err)
		}
		cc.Password = strings.TrimRight(string(b), "\r\n")
	}
	if cfg.Control == "" {
		found := ""
		if cfg.Launch != "always" {
			found = probeControl(ctx, cfg.SystemControl)
		}
		switch {
		case found != "":
			t.log.Info("using the system Tor", zap.String("control", found))
			cc.Addr = found
		case cfg.Launch != "always" && cfg.SOCKS != "":
			t.log.Warn("no Tor control port found: chaining to the SocksPort only; without a control port socksd cannot attach streams to per-identity circuits, refine replies, do NEWNYM or serve the DNS bridge",
				zap.String("socks", cfg.SOCKS))
			t.chain.Store(t.up.newChain(cfg.SOCKS))
			return nil
		case cfg.Launch == "never":
			return fmt.Errorf("%w (looked at %s); set [tor] control, or launch = \"auto\"", ErrLaunchNever, strings.Join(cfg.SystemControl, ", "))
		default:
			if err := t.launch(ctx); err != nil {
				return err
			}
			cc.Addr = t.tor.ControlAddr()
			cc.CookieFile = t.tor.CookieFile()
			cc.TakeOwnership = true
			cc.BackoffMax = 2 * time.Second
		}
	}
	if cfg.SOCKS != "" {
		t.chain.Store(t.up.newChain(cfg.SOCKS))
	}
	if t.ctlBackoff > 0 {
		cc.BackoffMin = t.ctlBackoff
	}
	cc.ProbeInterval, cc.ProbeTimeout = t.ctlProbe, t.ctlProbeWait
	t.ctl = newController(cc, t.att, t.m, t.log)
	for _, fn := range t.reconnectHooks {
		t.ctl.OnReconnect(fn)
	}
	for _, fn := range t.eventHooks {
		t.ctl.OnEvent(fn)
	}
	t.ctl.onSocksChange(func(addr string) {
		if t.cfg.SOCKS == "" {
			t.chain.Store(t.up.newChain(addr))
		}
	})
	if err := t.ctl.start(ctx); err != nil {
		t.ctl = nil
		t.stopManaged()
		return err
	}
	return nil
}

func (t *Tor) launch(ctx context.Context) error {
	dir := t.cfg.DataDir
	if dir == "" {
		dir = filepath.Join(t.cfg.StateDir, "tor")
	}
	t.tor = launch.New(launch.Config{
		Binary: t.cfg.TorBinary, DataDir: dir, TorrcExtra: t.cfg.TorrcExtra,
		OwnerPID: os.Getpid(), Log: t.log.Named("managed"),
	})
	if err := t.tor.Start(ctx); err != nil {
		t.tor = nil
		return err
	}
	return nil
}

func (t *Tor) stopManaged() {
	if t.tor != nil {
		t.tor.Stop()
	}
}

// probeControl returns the first candidate control port that accepts a
// connection, or "".
func probeControl(ctx context.Context, candidates []string) string {
	for _, addr := range candidates {
		network, address := endpoint.Split(addr)
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		var d net.Dialer
		c, err := d.DialContext(dctx, network, address)
		cancel()
		if err == nil {
			c.Close()
			return addr
		}
	}
	return ""
}

// Close undoes socksd's Tor configuration, closes the control connection,
// stops a managed tor and waits for every goroutine.
func (t *Tor) Close() error {
	if t.ctl != nil {
		t.ctl.close()
	}
	t.att.close()
	t.stopManaged()
	return nil
}

// Upstream is the dispatch.Upstream forwarding to Tor.
func (t *Tor) Upstream() dispatch.Upstream { return t.up }

// Resolver answers RESOLVE / RESOLVE_PTR through Tor.
func (t *Tor) Resolver() dispatch.Resolver { return t.up }

// Controller is the control connection (for the DNS bridge: MapAddress,
// OnReconnect, OnEvent), nil without a control port.
func (t *Tor) Controller() *Controller { return t.ctl }

// Managed is the tor process socksd launched, nil if none.
func (t *Tor) Managed() *launch.Tor { return t.tor }

// Status is a snapshot for the status page.
type Status struct {
	Control  State
	HasCtl   bool
	Managed  bool
	Circuits int // socksd circuits built and known (the pool's not included)
	Pool     int // clean circuits ready in the warm pool
	Keys     int // isolation keys with circuits or waiting streams
	Streams  int // socksd streams Tor is handling
}

// Status reports torup's state.
func (t *Tor) Status() Status {
	s := Status{Managed: t.tor != nil, HasCtl: t.ctl != nil}
	if t.ctl != nil {
		s.Control = t.ctl.State()
	}
	s.Circuits, s.Keys, s.Streams = t.att.counts()
	s.Pool = t.att.poolCount()
	return s
}

// NewIdentity does Tor's SIGNAL NEWNYM and retires every circuit socksd
// built, so no new stream reuses one. The caller also
// moves to a new isolation epoch, which gives every later stream a new key.
func (t *Tor) NewIdentity(ctx context.Context) error {
	if t.ctl == nil {
		return ErrControlDown
	}
	conn := t.ctl.Conn()
	if conn == nil {
		return ErrControlDown
	}
	t.att.retireAll()
	// The pool stays empty until Tor has the signal: a circuit launched
	// in between would predate the new identity on Tor's side.
	defer t.att.releasePool()
	return conn.Signal(ctx, "NEWNYM")
}

// RetireKey stops new streams of key from using its current circuits (a
// per-identity renewal without a Tor-wide NEWNYM).
func (t *Tor) RetireKey(key isolation.Key) { t.att.retireKey(key) }

// CircuitFor returns the circuit ID the key's next stream would use, ""
// when none is built (for tests and the status page).
func (t *Tor) CircuitFor(key isolation.Key) string { return t.att.circuitFor(key) }

// CircuitsOf lists the IDs of every live circuit socksd built for key.
func (t *Tor) CircuitsOf(key isolation.Key) []string { return t.att.circuitsOf(key) }
