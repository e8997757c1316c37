package torup

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"socksd/internal/endpoint"
	"socksd/torctl"
)

// Sentinel errors of this package.
var (
	// ErrControlDown: the Tor control connection is not up; socksd fails
	// closed instead of forwarding without it.
	ErrControlDown = errors.New("torup: Tor control connection is down")
	// ErrNoSocksPort: no SocksPort is known (none configured, none listed
	// by GETINFO net/listeners/socks).
	ErrNoSocksPort = errors.New("torup: no Tor SocksPort known")
	// ErrNoControlPort: no control port was found where socksd looks.
	ErrNoControlPort = errors.New("torup: no Tor control port found")
	// ErrLaunchNever: launch = "never" and no Tor was found.
	ErrLaunchNever = errors.New(`torup: no Tor control port found and [tor] launch = "never"`)
)

// ControllerConfig configures the control connection.
type ControllerConfig struct {
	Addr          string // "unix:/path" or "host:port"
	CookieFile    string // overrides PROTOCOLINFO's COOKIEFILE
	Password      string // HASHEDPASSWORD secret (already read from password_file)
	AttachStreams bool   // set __LeaveStreamsUnattached and attach streams
	SOCKS         string // configured SocksPort; "" = discover
	TakeOwnership bool   // managed tor: Tor exits when this connection closes
	// BackoffMin/BackoffMax bound the reconnect delay (defaults 100ms, 10s).
	BackoffMin, BackoffMax time.Duration
	// ProbeInterval is how often an idle connection (no event since the
	// last probe) is checked with GETINFO version; ProbeTimeout is how long
	// Tor has to answer before the connection is deemed hung and closed
	// (defaults 1s and 3s: a frozen Tor is noticed within about 5s).
	ProbeInterval, ProbeTimeout time.Duration
}

// State is the controller's state for status pages and metrics.
type State struct {
	Connected  bool
	Addr       string
	SOCKS      string // SocksPort in use
	Bootstrap  int    // percent
	Reconnects int
	LastError  string
}

// Controller owns socksd's control connection to Tor: it connects,
// authenticates, subscribes, configures, discovers the SocksPort, feeds the
// attacher, and reconnects with backoff when the connection ends.
type Controller struct {
	cfg ControllerConfig
	log *zap.Logger
	m   *metrics
	att *attacher

	hookMu    sync.Mutex
	reconnect []func(context.Context, *torctl.Conn) error
	onEvent   []func(torctl.Event)
	onSocks   []func(addr string)

	mu    sync.Mutex
	conn  *torctl.Conn // nil while down
	state State
	ready chan struct{} // closed once the first connection is configured
	// settled is closed once the first connection attempt has an outcome
	// socksd can act on: configured (with ready), or failed. Between
	// start's successful connect and serve marking the connection, a
	// request would otherwise see no connection and fail closed; under
	// socket activation the request that started socksd lands exactly there.
	settled    chan struct{}
	settleOnce sync.Once

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	maps   *mapBatcher
}

func newController(cfg ControllerConfig, att *attacher, m *metrics, log *zap.Logger) *Controller {
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 10 * time.Second
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = defaultProbeInterval
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = defaultProbeTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Controller{
		cfg: cfg, log: log, m: m, att: att,
		state:   State{Addr: cfg.Addr},
		ready:   make(chan struct{}),
		settled: make(chan struct{}),
		ctx:     ctx, cancel: cancel,
	}
	c.maps = &mapBatcher{conn: c.Conn, ctx: ctx}
	return c
}

// OnReconnect registers fn to run after every successful connection
// (the first one included), once socksd's events and configuration are
// set: the DNS bridge re-pushes its MAPADDRESS table from here. Register
// before Start.
func (c *Controller) OnReconnect(fn func(ctx context.Context, conn *torctl.Conn) error) {
	c.hookMu.Lock()
	c.reconnect = append(c.reconnect, fn)
	c.hookMu.Unlock()
}

// OnEvent registers fn to see every event socksd receives (STREAM, CIRC,
// ADDRMAP, STATUS_CLIENT), in order, on the event goroutine: fn must not
// block. Register before Start.
func (c *Controller) OnEvent(fn func(torctl.Event)) {
	c.hookMu.Lock()
	c.onEvent = append(c.onEvent, fn)
	c.hookMu.Unlock()
}

func (c *Controller) onSocksChange(fn func(string)) {
	c.hookMu.Lock()
	c.onSocks = append(c.onSocks, fn)
	c.hookMu.Unlock()
}

// Conn returns the current control connection, nil while down. Commands on
// it may fail with a connection error at any time.
func (c *Controller) Conn() *torctl.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// Connected reports whether the control connection is up and configured.
func (c *Controller) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// State returns a snapshot for status and metrics.
func (c *Controller) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// MapAddress sends MAPADDRESS on the current connection, or fails with
// ErrControlDown; mappings made while down are re-pushed by the caller's
// OnReconnect hook. Concurrent calls share commands (see mapBatcher): the
// answer and errors are each call's own, as with torctl's MapAddress.
func (c *Controller) MapAddress(ctx context.Context, from, to string) (string, error) {
	if err := c.awaitSettled(ctx); err != nil {
		return "", err
	}
	return c.maps.mapAddress(ctx, from, to)
}

// settle marks the first connection attempt decided.
func (c *Controller) settle() { c.settleOnce.Do(func() { close(c.settled) }) }

// awaitSettled waits, at most until ctx ends, for the first connection
// attempt to be decided. Afterwards it returns at once, so a connection
// lost later still fails requests at once (fail closed, no queueing).
func (c *Controller) awaitSettled(ctx context.Context) error {
	select {
	case <-c.settled:
		return nil
	default:
	}
	select {
	case <-c.settled:
		return nil
	case <-ctx.Done():
		return ErrControlDown
	}
}

// Ready is closed once the first connection is configured.
func (c *Controller) Ready() <-chan struct{} { return c.ready }

// start makes the first connection attempt synchronously (so a bad
// password is reported at start-up) and keeps connecting in the background.
func (c *Controller) start(ctx context.Context) error {
	conn, err := c.connect(ctx)
	if err != nil {
		var te *torctl.Error
		if errors.As(err, &te) || errors.Is(err, torctl.ErrNoAuthMethod) || errors.Is(err, torctl.ErrCookie) || errors.Is(err, torctl.ErrServerHash) {
			return err // configuration problem: reconnecting will not fix it
		}
		c.log.Warn("Tor control port not reachable yet; failing closed until it is", zap.Error(err))
		c.settle()
	}
	c.wg.Add(1)
	go c.run(conn)
	return nil
}

// close stops reconnecting, undoes socksd's configuration and closes the
// connection.
func (c *Controller) close() {
	c.cancel()
	c.settle()
	c.wg.Wait()
	c.maps.close()
}

func (c *Controller) run(conn *torctl.Conn) {
	defer c.wg.Done()
	backoff := c.cfg.BackoffMin
	for {
		if conn != nil {
			backoff = c.cfg.BackoffMin
			c.serve(conn)
			if c.ctx.Err() != nil {
				return
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, c.cfg.BackoffMax)
		var err error
		conn, err = c.connect(c.ctx)
		if err != nil {
			c.mu.Lock()
			c.state.LastError = err.Error()
			c.mu.Unlock()
			c.log.Debug("control reconnect failed", zap.Error(err))
		}
	}
}

// connect dials, authenticates, subscribes and configures one connection.
func (c *Controller) connect(ctx context.Context) (*torctl.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := torctl.Dial(ctx, c.cfg.Addr)
	if err != nil {
		return nil, err
	}
	if err := c.configure(ctx, conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (c *Controller) configure(ctx context.Context, conn *torctl.Conn) error {
	if err := conn.Authenticate(ctx, torctl.AuthOptions{CookieFile: c.cfg.CookieFile, Password: c.cfg.Password}); err != nil {
		return fmt.Errorf("torup: authenticate to %s: %w", c.cfg.Addr, err)
	}
	if c.cfg.TakeOwnership {
		// control-spec §3.23: with __OwningControllerProcess on the
		// command line, this makes Tor exit when socksd's connection ends.
		if err := conn.TakeOwnership(ctx); err != nil {
			return fmt.Errorf("torup: TAKEOWNERSHIP: %w", err)
		}
		if err := conn.ResetConf(ctx, "__OwningControllerProcess"); err != nil {
			return fmt.Errorf("torup: RESETCONF __OwningControllerProcess: %w", err)
		}
	}
	if err := conn.SetEvents(ctx, "STREAM", "CIRC", "CIRC_MINOR", "ADDRMAP", "STATUS_CLIENT", "CONF_CHANGED"); err != nil {
		return fmt.Errorf("torup: SETEVENTS: %w", err)
	}
	if c.cfg.AttachStreams {
		if err := conn.SetConf(ctx, torctl.KV{Key: "__LeaveStreamsUnattached", Value: "1"}); err != nil {
			return fmt.Errorf("torup: SETCONF __LeaveStreamsUnattached: %w", err)
		}
	}
	socks := c.cfg.SOCKS
	if socks == "" {
		var err error
		if socks, err = discoverSocks(ctx, conn); err != nil {
			return err
		}
	}
	info, err := conn.GetInfo(ctx, "status/bootstrap-phase")
	if err != nil {
		return fmt.Errorf("torup: GETINFO status/bootstrap-phase: %w", err)
	}
	progress, _, _, _ := torctl.ParseBootstrapPhase(info["status/bootstrap-phase"])

	c.mu.Lock()
	first := c.state.Reconnects == 0 && !isClosed(c.ready)
	if !first {
		c.state.Reconnects++
		c.m.ctlReconnects.Inc()
	}
	changed := c.state.SOCKS != socks
	c.state.SOCKS, c.state.Bootstrap, c.state.LastError = socks, progress, ""
	c.mu.Unlock()
	c.m.bootstrap.Set(float64(progress))
	if changed {
		c.hookMu.Lock()
		hooks := c.onSocks
		c.hookMu.Unlock()
		for _, fn := range hooks {
			fn(socks)
		}
	}
	c.log.Info("connected to Tor's control port", zap.String("control", c.cfg.Addr), zap.String("socks", socks), zap.Int("bootstrap", progress))
	return nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// serve runs one configured connection until it ends.
func (c *Controller) serve(conn *torctl.Conn) {
	gen := c.att.setControl(ctlAdapter{c: conn})
	c.mu.Lock()
	c.conn = conn
	c.state.Connected = true
	if !isClosed(c.ready) {
		close(c.ready)
	}
	c.mu.Unlock()
	c.settle()
	c.m.ctlConnected.Set(1)

	// Events flow before the resync and the hooks: their commands wait for
	// replies that queue behind events (torctl queues events unboundedly,
	// but a consumer is still what moves them).
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.afterConnect(conn, gen)
	}()
	var events atomic.Uint64
	stopProbe := make(chan struct{})
	go func() {
		defer wg.Done()
		c.probe(conn, &events, stopProbe)
	}()

	c.hookMu.Lock()
	onEvent := c.onEvent
	c.hookMu.Unlock()
loop:
	for {
		select {
		case ev, ok := <-conn.Events():
			if !ok {
				break loop
			}
			events.Add(1)
			c.dispatch(ev)
			for _, fn := range onEvent {
				fn(ev)
			}
		case <-c.ctx.Done():
			c.shutdown(conn)
			break loop
		}
	}
	close(stopProbe)
	// Fail closed at once: Open checks Connected.
	c.mu.Lock()
	c.conn = nil
	c.state.Connected = false
	if err := conn.Err(); err != nil && !errors.Is(err, torctl.ErrClosed) {
		c.state.LastError = err.Error()
	}
	c.mu.Unlock()
	c.m.ctlConnected.Set(0)
	c.att.setControl(nil)
	conn.Close()
	if c.ctx.Err() == nil {
		n := c.att.reg.abortPending()
		c.log.Warn("lost Tor's control connection; failing closed and reconnecting",
			zap.Int("streams_failed", n), zap.Error(conn.Err()))
	}
	wg.Wait()
}

// Liveness probe timing. A frozen Tor (SIGSTOP, a wedged main loop) must
// be noticed within seconds, because every stream waiting for it waits in
// vain: idle for at most two intervals, then the probe's timeout, so about
// 4s and at most 5s. A Tor that is merely busy still answers GETINFO
// version within milliseconds (one main-loop turn), and one that delivers
// events while the probe waits is alive by definition, so the timeout is
// then extended (up to probeMaxWaits times) instead of declaring it hung.
const (
	defaultProbeInterval = time.Second
	defaultProbeTimeout  = 3 * time.Second
	probeMaxWaits        = 10
)

// probe notices a hung control connection: a Tor that stopped reading or
// answering without closing the socket (a stopped process, a wedged main
// loop, a lost peer behind a NAT) sends no EOF, so without it socksd would
// keep forwarding streams nobody attaches until socks_timeout. When no
// event has arrived for ProbeInterval, it sends GETINFO version
// (control-spec §3.9); no answer within ProbeTimeout closes the connection,
// which runs the fail-closed path and the reconnect loop. Events prove
// the connection alive on their own, so a busy connection is never probed.
// A probe waits behind commands in flight (torctl runs one at a time), so
// a command Tor never answers is caught the same way.
func (c *Controller) probe(conn *torctl.Conn, events *atomic.Uint64, stop <-chan struct{}) {
	t := time.NewTicker(c.cfg.ProbeInterval)
	defer t.Stop()
	c.probeLoop(conn, events, stop, t.C)
}

// probeLoop is probe driven by tick (tests drive it directly).
func (c *Controller) probeLoop(conn *torctl.Conn, events *atomic.Uint64, stop <-chan struct{}, tick <-chan time.Time) {
	seen := events.Load()
	for {
		select {
		case <-stop:
			return
		case <-conn.Done():
			return
		case <-tick:
		}
		if n := events.Load(); n != seen {
			seen = n
			continue
		}
		err, timedOut := c.probeOnce(conn, events)
		var te *torctl.Error
		switch {
		case err == nil, errors.As(err, &te):
			// Tor answered (even a refusal shows it is alive).
		case timedOut && c.ctx.Err() == nil:
			c.m.ctlHung.Inc()
			c.log.Warn("Tor's control connection stopped answering; closing it, failing closed and reconnecting",
				zap.Duration("timeout", c.cfg.ProbeTimeout))
			c.mu.Lock()
			c.state.LastError = "control connection hung: no answer to GETINFO version within " + c.cfg.ProbeTimeout.String()
			c.mu.Unlock()
			conn.Close()
			return
		default:
			return // the connection ended or socksd is stopping: serve sees it
		}
	}
}

// probeOnce sends one GETINFO version and waits for the answer: up to
// ProbeTimeout, extended while events keep arriving (Tor is alive, only
// slow to answer). timedOut reports that Tor said nothing at all.
func (c *Controller) probeOnce(conn *torctl.Conn, events *atomic.Uint64) (err error, timedOut bool) {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := conn.GetInfo(ctx, "version")
		done <- err
	}()
	t := time.NewTimer(c.cfg.ProbeTimeout)
	defer t.Stop()
	seen := events.Load()
	for waits := 1; ; waits++ {
		select {
		case err := <-done:
			if err == nil {
				c.m.ctlProbe.Observe(time.Since(start).Seconds())
			}
			return err, false
		case <-t.C:
		}
		if n := events.Load(); n == seen || waits >= probeMaxWaits {
			cancel()
			<-done
			return context.DeadlineExceeded, c.ctx.Err() == nil
		} else {
			seen = n
		}
		t.Reset(c.cfg.ProbeTimeout)
	}
}

// afterConnect re-aligns the attacher with Tor and runs the re-push hooks.
func (c *Controller) afterConnect(conn *torctl.Conn, gen uint64) {
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	ad := ctlAdapter{c: conn}
	if c.cfg.AttachStreams {
		circs, err := ad.circuitStatus(ctx)
		if err == nil {
			err = c.att.resync(ctx, ad, circs)
		}
		if err != nil {
			c.log.Warn("resync with Tor failed", zap.Error(err))
		}
	}
	c.hookMu.Lock()
	hooks := c.reconnect
	c.hookMu.Unlock()
	for _, fn := range hooks {
		if err := fn(ctx, conn); err != nil {
			c.log.Warn("control reconnect hook failed", zap.Error(err))
		}
	}
}

// dispatch feeds one event to the attacher and the bootstrap gauge.
func (c *Controller) dispatch(ev torctl.Event) {
	switch ev.Type {
	case "STREAM":
		se, err := torctl.ParseStreamEvent(ev)
		if err != nil {
			c.log.Debug("bad STREAM event", zap.Error(err))
			return
		}
		if c.att.onStreamEvent(toStreamEvent(se, ev.Received)) {
			// A command goroutine was just started (the ATTACHSTREAM of
			// a new stream): let it write before this goroutine parses
			// the events queued behind (CONTROLLER_WAIT follows every
			// NEW), so the attach is not delayed by them.
			runtime.Gosched()
		}
	case "CIRC":
		ce, err := torctl.ParseCircEvent(ev)
		if err != nil {
			c.log.Debug("bad CIRC event", zap.Error(err))
			return
		}
		c.att.onCircEvent(toCircEvent(ce))
	case "CIRC_MINOR":
		cm, err := torctl.ParseCircMinorEvent(ev)
		if err != nil {
			c.log.Debug("bad CIRC_MINOR event", zap.Error(err))
			return
		}
		c.att.onCircMinorEvent(cm.ID, cm.Event, cm.Purpose)
	case "CONF_CHANGED":
		// Another controller (a socksd that is shutting down, or a user)
		// reset __LeaveStreamsUnattached: Tor would attach socksd's
		// streams itself, so set it again (control-spec §4.1.18).
		if !c.cfg.AttachStreams {
			return
		}
		for _, l := range ev.Lines {
			k, v, _ := strings.Cut(l.Text, "=")
			if k == "__LeaveStreamsUnattached" && v != "1" {
				c.reassertLeaveUnattached()
			}
		}
	case "STATUS_CLIENT":
		st, err := torctl.ParseStatusEvent(ev)
		if err != nil || st.Action != "BOOTSTRAP" {
			return
		}
		var p int
		if _, err := fmt.Sscan(st.Args["PROGRESS"], &p); err != nil {
			return
		}
		c.mu.Lock()
		old := c.state.Bootstrap
		c.state.Bootstrap = p
		c.mu.Unlock()
		c.m.bootstrap.Set(float64(p))
		if p != old {
			c.log.Info("Tor bootstrap", zap.Int("progress", p), zap.String("tag", st.Args["TAG"]), zap.String("summary", st.Args["SUMMARY"]))
		}
	}
}

// reassertLeaveUnattached sets __LeaveStreamsUnattached=1 again, off the
// event goroutine.
func (c *Controller) reassertLeaveUnattached() {
	conn := c.Conn()
	if conn == nil || c.ctx.Err() != nil {
		return
	}
	c.log.Warn("__LeaveStreamsUnattached was reset by another controller; setting it again")
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		defer cancel()
		if err := conn.SetConf(ctx, torctl.KV{Key: "__LeaveStreamsUnattached", Value: "1"}); err != nil {
			c.log.Warn("SETCONF __LeaveStreamsUnattached failed", zap.Error(err))
		}
	}()
}

// shutdown undoes socksd's configuration on a clean exit: Tor attaches
// streams itself again, and socksd's own waiting streams go back to it.
// Other streams are left alone: they may belong to another socksd that is
// starting while this one stops (it sets __LeaveStreamsUnattached again
// when it sees the reset, CONF_CHANGED).
func (c *Controller) shutdown(conn *torctl.Conn) {
	if !c.cfg.AttachStreams {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := conn.ResetConf(ctx, "__LeaveStreamsUnattached"); err != nil {
		c.log.Warn("RESETCONF __LeaveStreamsUnattached failed", zap.Error(err))
	}
	for _, id := range c.att.waitingIDs() {
		_ = conn.AttachStream(ctx, id, "0")
	}
	// Tor never closes an idle CONTROLLER circuit itself: the warm pool's
	// and every other circuit of socksd's without a stream would stay open
	// until Tor restarts.
	for _, id := range c.att.idleCircuitIDs() {
		_ = conn.CloseCircuitIfUnused(ctx, id)
	}
}

// discoverSocks picks Tor's SocksPort (GETINFO net/listeners/socks,
// control-spec §3.9). It prefers one configured with ExtendedErrors
// (proposal 304) so onion failures keep their F-codes, and among equals a
// Unix socket this process may write to: the middle hop then skips the
// loopback TCP stack (docs/performance.md: less CPU per connection and per
// GB relayed than a TCP SocksPort).
func discoverSocks(ctx context.Context, conn *torctl.Conn) (string, error) {
	info, err := conn.GetInfo(ctx, "net/listeners/socks")
	if err != nil {
		return "", fmt.Errorf("torup: GETINFO net/listeners/socks: %w", err)
	}
	listeners, err := torctl.ParseListeners(info["net/listeners/socks"])
	if err != nil {
		return "", fmt.Errorf("torup: net/listeners/socks: %w", err)
	}
	var addrs []string
	for _, a := range listeners {
		if a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return "", ErrNoSocksPort
	}
	if len(addrs) == 1 {
		return addrs[0], nil
	}
	// Several ports: GETCONF SocksPort tells which have ExtendedErrors.
	extended := map[string]bool{}
	if ports, err := conn.GetConf(ctx, "SocksPort"); err == nil {
		for _, v := range ports {
			f := strings.Fields(v)
			if len(f) < 2 || !containsFold(f[1:], "ExtendedErrors") {
				continue
			}
			for _, a := range addrs {
				if a == f[0] || strings.HasSuffix(a, ":"+f[0]) {
					extended[a] = true
				}
			}
		}
	}
	best, bestRank := addrs[0], -1
	for _, a := range addrs {
		rank := 0
		if extended[a] {
			rank += 2
		}
		if network, p := endpoint.Split(a); network == "unix" {
			if !usableSocket(p) {
				continue
			}
			rank++
		}
		if rank > bestRank {
			best, bestRank = a, rank
		}
	}
	return best, nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
