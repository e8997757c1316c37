package torup

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"socksd/isolation"
	"socksd/torctl"
)

// The attacher owns circuit choice for socksd's streams (control-spec
// §3.13). With __LeaveStreamsUnattached=1 Tor reports every
// new client stream (STREAM NEW / NEWRESOLVE, then CONTROLLER_WAIT) and
// waits for ATTACHSTREAM. The attacher:
//
//   - identifies socksd's own streams by SOURCE_ADDR (the local address of
//     the upstream connection, registered before the request was written),
//     falling back to the <torS0X>0 credentials;
//   - attaches each to a circuit it built with EXTENDCIRCUIT 0 for the
//     stream's isolation key, reused until circuit_lifetime has passed
//     since its first use (Tor's MaxCircuitDirtiness semantics), or past it
//     while it carries streams when keep_alive is on;
//   - queues a key's streams while that key's circuit is being built (one
//     EXTENDCIRCUIT in flight per key);
//   - hands .onion streams back with circuit 0: Tor must build the
//     rendezvous circuit itself, and attaching one to a general circuit
//     kills it (551, stream FAILED TORPROTOCOL; tornet README); the same
//     for .exit names (see torRoutes) and for virtual addresses that stand
//     for either (route);
//   - hands back streams that are not socksd's with circuit 0 as soon as
//     they wait for the controller (CONTROLLER_WAIT), and ignores the ones
//     Tor makes for itself (PURPOSE DIR_*), which Tor attaches on its own;
//   - re-attaches DETACHED streams (the exit refused: Tor would retry
//     another exit, so the attacher avoids that exit for that stream);
//   - closes a stream that waited longer than socks_timeout (CLOSESTREAM
//     with reason TIMEOUT, which Tor answers with SOCKS 0x06).
//
// Every command runs in its own goroutine and reports back under the lock:
// torctl serialises commands on the connection, and a state machine that
// waited for replies on the goroutine that reads events could stall the
// event stream.
type attacher struct {
	cfg attacherConfig
	reg *registry
	m   *metrics
	log *zap.Logger
	now func() time.Time

	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup // commands in flight
	bg     sync.WaitGroup // the janitor

	// virtual, if set, names the target of a virtual address (the DNS
	// bridge's MAPADDRESS table). Read without a.mu: it is set at any time.
	virtual atomic.Pointer[VirtualLookup]

	mu      sync.Mutex
	ctl     control // nil while the control connection is down
	gen     uint64  // incremented per control connection
	closed  bool
	streams map[string]*stream
	foreign map[string]*foreignStream // streams not socksd's, until Tor handles them
	circs   map[string]*circuit
	keys    map[isolation.Key]*keyState
	// early holds CIRC events for circuits whose EXTENDCIRCUIT reply has
	// not been processed yet: Tor may emit LAUNCHED/BUILT before the 250.
	early     map[string]circEvent
	extending int
	cmds      uint64 // commands started (goCmd)
	pool      circPool

	// attachedHook, if set before the first stream (benchmarks, latency
	// tests), sees each accepted ATTACHSTREAM with the time the command
	// was handed to torctl, under a.mu.
	attachedHook func(streamID string, sent time.Time)
}

type attacherConfig struct {
	Lifetime     time.Duration // circuit_lifetime
	SOCKSTimeout time.Duration // socks_timeout
	KeepAlive    bool          // keep a key's circuit past Lifetime while it has streams
	// Purpose of the circuits socksd builds. "controller" (the default)
	// keeps Tor from putting any stream of its own choosing on them, so
	// only the key's streams ever share a circuit.
	Purpose string
	// ForeignGrace is how long a waiting stream that may belong to another
	// socksd (<torS0X>0 credentials, or unknown at start-up) is left to
	// its owner before socksd hands it back to Tor (default 2s).
	ForeignGrace time.Duration
	// Passive (attach_streams = false): Tor attaches streams itself; the
	// attacher only follows socksd's streams to refine their replies.
	Passive bool
	// PoolMax caps the warm pool of clean circuits (pool.go); 0 turns it
	// off.
	PoolMax int
}

const (
	// maxAttaches bounds re-attaching one stream (DETACHED, 551, 552)
	// before it is handed back to Tor, which still isolates it by the
	// SOCKS credentials that carry its key.
	maxAttaches = 4
	// maxBuildFailures bounds consecutive circuit failures for a key with
	// waiting streams before those streams are closed with reason MISC.
	// Tor's circuit build timeout (CBT) fails a good share of circuits as
	// TIMEOUT when it has learnt a short timeout (seen: 3 in a row on the
	// loopback network under load; tor keeps such a circuit for
	// measurement as MEASURE_TIMEOUT, unusable for streams), so the bound
	// is generous; the stream's socks_timeout still bounds the wait.
	maxBuildFailures = 8
	// buildTimeout gives up on a circuit Tor neither built nor failed
	// (beyond Tor's own CircuitBuildTimeout, which is at most 60s learnt).
	buildTimeout = 30 * time.Second
	// cmdTimeout bounds each control command.
	cmdTimeout = 30 * time.Second
)

type stream struct {
	id  string
	key isolation.Key
	reg *registration // nil when identified by credentials only
	// torRoute is the outcome label when Tor must route the stream itself
	// (.onion, .exit, or a virtual address mapped to one): it is handed
	// back with circuit 0, never attached to a socksd circuit.
	torRoute string
	resolve  bool   // NEWRESOLVE: Tor's RESOLVE / RESOLVE_PTR
	port     uint16 // target port (0 when unknown)
	v6       bool   // target is an IPv6 literal
	born     time.Time
	circ     *circuit // the circuit socksd attached it to
	existing bool     // a built circuit was available when it arrived
	badExits map[string]bool
	// exitBuilds counts the circuits socksd asked for because every one
	// of the key's circuits ends at an exit that refused this stream:
	// Tor picks the exit, and may never pick an untried one.
	exitBuilds int
	attaches   int
	busy       bool   // ATTACHSTREAM in flight
	queued     bool   // waiting for the key's circuit
	gen        uint64 // control connection it was last placed on
	seenOn     uint64 // control connection whose events reported it
	answered   bool   // SUCCEEDED (or ended): socks_timeout no longer applies
	timer      *time.Timer
}

type circuit struct {
	id       string
	key      isolation.Key
	kind     circKind
	gen      uint64 // control connection it was launched on
	built    bool
	exit     string
	firstUse time.Time   // zero until a stream is attached
	retired  bool        // never chosen for new streams (lifetime, NEWNYM)
	watchdog *time.Timer // fails the build if Tor never says BUILT
	streams  map[string]*stream

	builtAt time.Time // BUILT seen (pool circuits)
	// pooled: a warm pool circuit that belongs to no key yet (key is
	// zero); pending: pooled and not ready yet (pool.go).
	pooled, pending bool
	policy          *torctl.ExitPolicy // the exit's policy summary, pool circuits
}

type keyState struct {
	circs    []*circuit   // newest last
	building [nKinds]bool // an EXTENDCIRCUIT (or its circuit) is in flight
	waiting  []*stream
	failures [nKinds]int
	// keepAlive: the key's listener has keep_alive (Tor's
	// KeepAliveIsolateSOCKSAuth), so a circuit carrying streams outlives
	// circuit_lifetime.
	keepAlive bool
	// lifetime, when not 0, is the newest stream's lifetime option: the
	// key's circuits take new streams for at most this long, never
	// longer than circuit_lifetime.
	lifetime time.Duration
	// donate: the key's CONNECT build in flight is no longer needed (a
	// pool circuit served its streams) and goes to the pool when built.
	donate bool
}

// circKind separates the circuits socksd builds by the streams they carry.
// CONNECT streams go on CONTROLLER-purpose circuits, which Tor never uses
// for a stream of its own choosing. RESOLVE streams cannot: tor 0.4.9.11
// aborts (assertion in connection_ap_handshake_send_resolve: purpose must
// be GENERAL or HSDIR_GET) when a NEWRESOLVE stream is attached to a
// CONTROLLER circuit. They get GENERAL circuits of their own, per key.
type circKind uint8

const (
	kindConnect circKind = iota
	kindResolve
	nKinds
)

func (s *stream) kind() circKind {
	if s.resolve {
		return kindResolve
	}
	return kindConnect
}

func newAttacher(cfg attacherConfig, reg *registry, m *metrics, log *zap.Logger) *attacher {
	if cfg.Purpose == "" {
		cfg.Purpose = "controller"
	}
	if cfg.ForeignGrace <= 0 {
		cfg.ForeignGrace = 2 * time.Second
	}
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &attacher{
		cfg: cfg, reg: reg, m: m, log: log, now: time.Now,
		ctx: ctx, cancel: cancel,
		streams: make(map[string]*stream),
		foreign: make(map[string]*foreignStream),
		circs:   make(map[string]*circuit),
		keys:    make(map[isolation.Key]*keyState),
		early:   make(map[string]circEvent),
		pool:    circPool{max: cfg.PoolMax},
	}
	if cfg.Passive {
		a.pool.max = 0
	}
	a.bg.Add(1)
	go a.janitor(sweepInterval)
	return a
}

// sweepInterval is how often expired idle circuits are closed: Tor never
// expires CONTROLLER-purpose circuits itself.
const sweepInterval = 30 * time.Second

func (a *attacher) janitor(every time.Duration) {
	defer a.bg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
			a.sweep()
		}
	}
}

// sweep retires (and so closes, once idle) every circuit past its
// lifetime.
func (a *attacher) sweep() {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for _, c := range a.circs {
		if c.built && !c.retired && !c.pooled && !a.usable(c, now) {
			a.retire(c)
		}
	}
	a.sweepPool(now)
}

// close stops every timer and waits for commands in flight.
func (a *attacher) close() {
	a.mu.Lock()
	a.closed = true
	a.ctl = nil
	for _, s := range a.streams {
		if s.timer != nil {
			s.timer.Stop()
		}
	}
	for _, c := range a.circs {
		if c.watchdog != nil {
			c.watchdog.Stop()
		}
	}
	for _, f := range a.foreign {
		if f.timer != nil {
			f.timer.Stop()
		}
	}
	a.mu.Unlock()
	a.cancel()
	a.bg.Wait()
	a.wg.Wait()
}

// goCmd runs fn against the current control connection in a goroutine.
// It must be called with a.mu held. Without a connection the command is
// dropped: the resync after reconnecting picks the stream up again.
func (a *attacher) goCmd(fn func(ctx context.Context, c control, gen uint64)) bool {
	if a.closed || a.ctl == nil {
		return false
	}
	c, gen := a.ctl, a.gen
	a.cmds++
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(a.ctx, cmdTimeout)
		defer cancel()
		fn(ctx, c, gen)
	}()
	return true
}

func (a *attacher) key(k isolation.Key) *keyState {
	ks := a.keys[k]
	if ks == nil {
		ks = &keyState{}
		a.keys[k] = ks
	}
	return ks
}

// usable reports whether c may take a new stream now.
func (a *attacher) usable(c *circuit, now time.Time) bool {
	if !c.built || c.retired {
		return false
	}
	ks := a.keys[c.key]
	lifetime := a.cfg.Lifetime
	if ks != nil && ks.lifetime > 0 && (lifetime <= 0 || ks.lifetime < lifetime) {
		lifetime = ks.lifetime
	}
	if c.firstUse.IsZero() || lifetime <= 0 || now.Sub(c.firstUse) < lifetime {
		return true
	}
	if len(c.streams) == 0 {
		return false
	}
	if a.cfg.KeepAlive {
		return true
	}
	return ks != nil && ks.keepAlive
}

// maxExitBuilds bounds the new circuits built for a stream whose exit
// refused it. After that it takes any usable circuit of its key, even one
// ending at a refusing exit, and Tor's own retry limit (three exits, then
// FAILED with the exit's reason) ends it: without the bound a name that
// fails at every exit built circuits until socks_timeout.
const maxExitBuilds = 2

// choose returns the newest usable circuit of the key whose exit has not
// refused this stream (see maxExitBuilds), retiring expired ones on the way.
func (a *attacher) choose(ks *keyState, s *stream) *circuit {
	now := a.now()
	for i := len(ks.circs) - 1; i >= 0; i-- {
		c := ks.circs[i]
		if c.kind != s.kind() {
			continue
		}
		if c.built && !c.retired && !a.usable(c, now) {
			a.retire(c)
			continue
		}
		if a.usable(c, now) && (!s.badExits[c.exit] || s.exitBuilds >= maxExitBuilds) {
			return c
		}
	}
	return nil
}

// retire stops new streams from using c and closes it once idle.
func (a *attacher) retire(c *circuit) {
	c.retired = true
	a.closeIfIdle(c)
}

func (a *attacher) closeIfIdle(c *circuit) {
	if !c.retired || len(c.streams) > 0 || !c.built {
		return
	}
	a.forgetCircuit(c)
	id := c.id
	// control-spec §3.15: IfUnused, so a stream Tor attached in the
	// meantime is never cut.
	a.goCmd(func(ctx context.Context, ctl control, _ uint64) {
		if err := ctl.CloseCircuit(ctx, id, true); err != nil {
			a.log.Debug("closecircuit", zap.String("circ", id), zap.Error(err))
		}
	})
}

func (a *attacher) forgetCircuit(c *circuit) {
	if c.watchdog != nil {
		c.watchdog.Stop()
	}
	if a.circs[c.id] == c {
		delete(a.circs, c.id)
		if c.built {
			a.m.circInUse.Dec()
		}
	}
	if c.pooled {
		a.removeFromPool(c)
		return
	}
	if ks := a.keys[c.key]; ks != nil {
		for i, x := range ks.circs {
			if x == c {
				ks.circs = append(ks.circs[:i], ks.circs[i+1:]...)
				break
			}
		}
		a.maybeDropKey(c.key, ks)
	}
}

func (a *attacher) maybeDropKey(k isolation.Key, ks *keyState) {
	if len(ks.circs) == 0 && !ks.building[kindConnect] && !ks.building[kindResolve] && len(ks.waiting) == 0 {
		delete(a.keys, k)
	}
}

// place attaches s to its key's circuit, or queues it and makes sure a
// circuit is being built.
func (a *attacher) place(s *stream) {
	ks := a.key(s.key)
	if c := a.choose(ks, s); c != nil {
		a.attach(s, c)
		return
	}
	// choose may have retired the key's last circuit, and forgetting it
	// drops an idle keyState from a.keys: queue on the live one, or the
	// circuit built next would never see this stream.
	ks = a.key(s.key)
	if s.kind() == kindConnect && !ks.building[kindConnect] && a.pool.enabled() {
		// The key needs a new circuit: that is the demand the pool is
		// sized by (a retry after an exit refused the stream is not).
		if len(s.badExits) == 0 {
			a.pool.noteDemand(a.now())
		}
		c := a.takePool(s)
		if c == nil && len(s.badExits) == 0 {
			a.m.poolRequests[1].Inc()
		}
		defer a.refill()
		if c != nil {
			a.attach(s, c)
			return
		}
	}
	if len(s.badExits) > 0 {
		s.exitBuilds++
	}
	if !s.queued {
		s.queued = true
		ks.waiting = append(ks.waiting, s)
	}
	a.build(s.key, ks, s.kind())
}

// build launches one EXTENDCIRCUIT for the key unless one is in flight.
func (a *attacher) build(k isolation.Key, ks *keyState, kind circKind) {
	if ks.building[kind] {
		return
	}
	purpose := a.cfg.Purpose
	if kind == kindResolve {
		purpose = "general"
	}
	if !a.goCmd(func(ctx context.Context, ctl control, gen uint64) {
		id, err := ctl.ExtendCircuit(ctx, purpose)
		a.log.Debug("extendcircuit", zap.String("id", id), zap.String("purpose", purpose), zap.Error(err))
		a.mu.Lock()
		defer a.mu.Unlock()
		if gen != a.gen {
			// The connection it was sent on is gone (setControl reset the
			// key's build state); a circuit it may have made is unknown.
			return
		}
		a.extending--
		a.builtReply(k, kind, id, err)
		if a.extending == 0 {
			clear(a.early)
		}
	}) {
		return
	}
	ks.building[kind] = true
	a.extending++
	a.m.circLaunched.Inc()
}

// builtReply handles EXTENDCIRCUIT's answer.
func (a *attacher) builtReply(k isolation.Key, kind circKind, id string, err error) {
	ks := a.key(k)
	if err != nil {
		ks.building[kind] = false
		a.unexpectDonation(ks)
		a.m.circFailed.Inc()
		var ce *torctl.Error
		if errors.As(err, &ce) {
			// Tor cannot launch a circuit now (551 "Couldn't start
			// circuit": still bootstrapping, or no usable exit). Tor
			// itself would keep such streams waiting, so socksd retries
			// while they wait; their socks_timeout ends the wait.
			a.log.Debug("extendcircuit refused; retrying", zap.Error(err))
			a.retryBuildLater(k, kind)
			return
		}
		a.log.Warn("extendcircuit failed", zap.Error(err))
		a.buildFailed(k, ks, kind)
		return
	}
	c := &circuit{id: id, key: k, kind: kind, gen: a.gen, streams: make(map[string]*stream)}
	c.watchdog = time.AfterFunc(buildTimeout, func() { a.buildTimedOut(id) })
	a.circs[id] = c
	ks.circs = append(ks.circs, c)
	if ev, ok := a.early[id]; ok {
		delete(a.early, id)
		a.onCirc(ev)
	}
}

// buildRetryDelay spaces EXTENDCIRCUIT retries Tor refused.
const buildRetryDelay = 500 * time.Millisecond

// retryBuildLater launches the key's build again after buildRetryDelay if
// streams still wait for it.
func (a *attacher) retryBuildLater(k isolation.Key, kind circKind) {
	ks := a.key(k)
	ks.building[kind] = true // nobody else launches meanwhile
	time.AfterFunc(buildRetryDelay, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		ks := a.keys[k]
		if a.closed || ks == nil {
			return
		}
		ks.building[kind] = false
		if ks.waitingKind(kind) {
			a.build(k, ks, kind)
		} else {
			a.maybeDropKey(k, ks)
		}
	})
}

// buildFailed retries the key's circuit, or gives up on its waiting
// streams after maxBuildFailures in a row.
func (a *attacher) buildFailed(k isolation.Key, ks *keyState, kind circKind) {
	ks.failures[kind]++
	var mine, others []*stream
	for _, s := range ks.waiting {
		if s.kind() == kind {
			mine = append(mine, s)
		} else {
			others = append(others, s)
		}
	}
	if len(mine) == 0 {
		a.maybeDropKey(k, ks)
		return
	}
	if ks.failures[kind] < maxBuildFailures {
		a.build(k, ks, kind)
		return
	}
	ks.waiting, ks.failures[kind] = others, 0
	for _, s := range mine {
		s.queued = false
		a.closeStream(s, torctl.EndReasonMisc) // Tor answers the SOCKS request with 0x01
	}
	a.maybeDropKey(k, ks)
}

// waitingKind reports whether the key has streams waiting for a circuit of
// kind.
func (ks *keyState) waitingKind(kind circKind) bool {
	for _, s := range ks.waiting {
		if s.kind() == kind {
			return true
		}
	}
	return false
}

// attach sends ATTACHSTREAM s c.
func (a *attacher) attach(s *stream, c *circuit) {
	if s.busy {
		return
	}
	s.attaches++
	s.circ = c
	c.streams[s.id] = s
	if c.firstUse.IsZero() {
		c.firstUse = a.now()
	}
	s.busy = true
	s.gen = a.gen
	id, cid, born, existing := s.id, c.id, s.born, s.existing
	if !a.goCmd(func(ctx context.Context, ctl control, gen uint64) {
		var sent time.Time
		if a.attachedHook != nil {
			sent = time.Now()
		}
		err := ctl.AttachStream(ctx, id, cid)
		lat := a.m.latNew
		if existing {
			lat = a.m.latExisting
		}
		lat.Observe(time.Since(born).Seconds())
		a.mu.Lock()
		defer a.mu.Unlock()
		a.attachReply(id, cid, err, gen, sent)
	}) {
		s.busy = false
		delete(c.streams, s.id)
		s.circ = nil
	}
}

// attachReply handles ATTACHSTREAM's answer (control-spec §3.13: 552 the
// stream or circuit is unknown, 555 the stream is not waiting for the
// controller, 551 anything else; a 551 may have killed the stream).
func (a *attacher) attachReply(id, cid string, err error, gen uint64, sent time.Time) {
	s := a.streams[id]
	if s == nil {
		return // ended meanwhile
	}
	s.busy = false
	if err == nil {
		a.m.outcome(outAttached).Inc()
		if a.attachedHook != nil {
			a.attachedHook(id, sent)
		}
		return
	}
	var ce *torctl.Error
	if !errors.As(err, &ce) || gen != a.gen {
		// The connection failed; the resync after reconnecting decides.
		a.m.outcome(outError).Inc()
		a.unlink(s)
		return
	}
	a.log.Debug("attachstream refused", zap.String("stream", id), zap.String("circ", cid), zap.Int("code", ce.Code), zap.String("text", ce.Text))
	switch ce.Code {
	case 555:
		// Not waiting for us (Tor attached it itself, or it is open):
		// nothing to do; keep the link so keep_alive sees it.
		a.m.outcome(outNotWaiting).Inc()
	default: // 551, 552
		a.m.outcome(outRejected).Inc()
		a.unlink(s)
		if c := a.circs[cid]; c != nil {
			// The circuit is unusable for attaching: never offer it again.
			a.retire(c)
		}
		a.retry(s)
	}
}

// retry places s again, or hands it back to Tor after maxAttaches.
func (a *attacher) retry(s *stream) {
	if s.attaches >= maxAttaches {
		a.handBack(s.id, outHandback)
		return
	}
	a.m.outcome(outRetry).Inc()
	s.existing = false
	a.place(s)
}

// unlink removes s from the circuit it was attached to.
func (a *attacher) unlink(s *stream) {
	if c := s.circ; c != nil {
		delete(c.streams, s.id)
		s.circ = nil
		a.closeIfIdle(c)
	}
}

// handBack returns a stream to Tor (control-spec §3.13: circuit 0).
func (a *attacher) handBack(id, outcome string) {
	a.goCmd(func(ctx context.Context, ctl control, _ uint64) {
		err := ctl.AttachStream(ctx, id, "0")
		if err != nil {
			a.log.Debug("hand back", zap.String("stream", id), zap.Error(err))
		}
		a.m.outcome(outcome).Inc()
	})
}

// closeStream closes s with a RELAY_END reason Tor turns into the SOCKS
// reply.
func (a *attacher) closeStream(s *stream, reason int) {
	id := s.id
	a.goCmd(func(ctx context.Context, ctl control, _ uint64) {
		if err := ctl.CloseStream(ctx, id, reason); err != nil {
			a.log.Debug("closestream", zap.String("stream", id), zap.Error(err))
		}
	})
}

// timeout closes a stream still unanswered after socks_timeout.
func (a *attacher) timeout(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.streams[id]
	if s == nil || s.answered || a.closed {
		return
	}
	a.m.timeouts.Inc()
	if s.reg != nil {
		s.reg.markTimedOut()
	}
	a.dequeue(s)
	a.closeStream(s, torctl.EndReasonTimeout) // Tor answers 0x06
}

func (a *attacher) dequeue(s *stream) {
	if !s.queued {
		return
	}
	s.queued = false
	if ks := a.keys[s.key]; ks != nil {
		for i, x := range ks.waiting {
			if x == s {
				ks.waiting = append(ks.waiting[:i], ks.waiting[i+1:]...)
				break
			}
		}
	}
}

// retireAll retires every circuit (NEWNYM): streams already on them keep
// running, new streams get new circuits. The pool is emptied and launches
// nothing until releasePool (after Tor has the NEWNYM).
func (a *attacher) retireAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.emptyPool()
	for _, c := range a.circs {
		if c.built {
			a.retire(c)
		}
	}
}

// retireKey retires the key's circuits.
func (a *attacher) retireKey(k isolation.Key) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ks := a.keys[k]; ks != nil {
		for _, c := range append([]*circuit(nil), ks.circs...) {
			if c.built {
				a.retire(c)
			}
		}
	}
}

// circuitFor returns the circuit the key's next stream would get.
func (a *attacher) circuitFor(k isolation.Key) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ks := a.keys[k]
	if ks == nil {
		return ""
	}
	now := a.now()
	for i := len(ks.circs) - 1; i >= 0; i-- {
		if c := ks.circs[i]; a.usable(c, now) {
			return c.id
		}
	}
	return ""
}

// circuitsOf lists the key's known circuits, oldest first.
func (a *attacher) circuitsOf(k isolation.Key) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	if ks := a.keys[k]; ks != nil {
		for _, c := range ks.circs {
			out = append(out, c.id)
		}
	}
	return out
}

// counts returns built circuits, keys and streams.
func (a *attacher) counts() (circs, keys, streams int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.circs {
		if c.built && !c.pooled {
			circs++
		}
	}
	return circs, len(a.keys), len(a.streams)
}

// waitingIDs lists socksd's streams not yet answered (for the hand-back at
// a clean exit).
func (a *attacher) waitingIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for id, s := range a.streams {
		if !s.answered {
			ids = append(ids, id)
		}
	}
	return ids
}
