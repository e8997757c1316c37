package torup

import (
	"context"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"socksd/torctl"
)

// The warm pool: clean circuits built ahead of demand, so that a key that
// needs a new circuit (a new identity, or one whose circuit expired) gets
// one at once instead of waiting a whole circuit build. C Tor does the
// same for its own SOCKS clients with preemptive circuits
// (circuituse.c circuit_predict_and_launch_new): a new SOCKS-auth identity
// is often served from a clean circuit built in advance.
//
// Isolation rules, which the pool never bends:
//
//   - A pool circuit is built like any socksd circuit (EXTENDCIRCUIT 0,
//     Tor's own path selection, then purpose CONTROLLER, so Tor never puts
//     a stream of its own choosing on it) and carries no stream while it
//     is in the pool. Taking it gives it to exactly one key, for good.
//   - A circuit a key built but never used (its waiting streams got a pool
//     circuit first) may go to the pool: it is just as clean.
//   - NEWNYM empties the pool, and no pool circuit is launched until Tor
//     has the signal.
//
// Size: the pool aims at the largest number of circuits keys needed within
// one poolWindow (a minute) during the last poolHorizon, capped at the
// configured maximum: about a minute's worth of new identities at the
// recent rate, and a burst is remembered for the horizon. Steady demand
// uses the pool's circuits within a minute or so; when demand stops, at
// most one pool's worth (the high-water mark) is closed unused. With no demand
// for poolHorizon the target is zero and the pool is closed: an idle
// socksd holds no unused circuit. A pool circuit unused for
// circuit_lifetime after it was built is closed (and replaced while the
// target says so), as Tor closes its own clean circuits that nobody used.
//
// Exit policy: Tor picked each pool circuit's exit without knowing the
// stream it will carry. A stream takes a pool circuit only if the exit's
// policy summary (its microdescriptor's "p"/"p6" line, what Tor itself
// judges exits by) accepts the stream's port; otherwise the key builds
// its own circuit as before.
type circPool struct {
	max   int
	ready []*circuit // built, never used, oldest first
	// inflight counts pool EXTENDCIRCUITs without an answer; pending
	// counts pool circuits Tor is building or whose exit policy socksd is
	// asking for (circuit.pending). Both are on their way to ready.
	inflight, pending int
	// demand holds when keys needed a new CONNECT circuit, oldest first,
	// within poolHorizon (at most poolDemandCap entries).
	demand []time.Time
	// hold stops launches while a NEWNYM is on its way to Tor.
	hold bool
	// failures counts pool builds that failed in a row (backoff).
	failures int
	retrying bool // a delayed refill is scheduled
}

const (
	// poolHorizon is how long a burst of new keys keeps the pool sized
	// for it. Under 10 minutes, so that an idle socksd holds no unused
	// circuit after 10 minutes without traffic (the janitor runs every
	// sweepInterval).
	poolHorizon = 5 * time.Minute
	// poolWindow: the pool holds the most new-circuit demands seen within
	// this long, so it covers about this much time at the recent rate.
	poolWindow = time.Minute
	// poolDemandCap bounds the demand history.
	poolDemandCap = 4096
)

func (p *circPool) enabled() bool { return p.max > 0 }

// noteDemand records that a key needed a new CONNECT circuit now.
func (p *circPool) noteDemand(now time.Time) {
	if len(p.demand) == poolDemandCap {
		p.demand = append(p.demand[:0], p.demand[1:]...)
	}
	p.demand = append(p.demand, now)
}

// computeTarget drops demand older than poolHorizon and returns the
// largest count of demands within one window, capped at max.
func (p *circPool) computeTarget(now time.Time) int {
	i := 0
	for i < len(p.demand) && now.Sub(p.demand[i]) >= poolHorizon {
		i++
	}
	if i > 0 {
		p.demand = append(p.demand[:0], p.demand[i:]...)
	}
	peak, lo := 0, 0
	for hi, t := range p.demand {
		for t.Sub(p.demand[lo]) >= poolWindow {
			lo++
		}
		peak = max(peak, hi-lo+1)
	}
	return min(peak, p.max)
}

// size counts the pool's circuits, ready and on their way.
func (p *circPool) size() int { return len(p.ready) + p.inflight + p.pending }

// fits reports whether pool circuit c may carry stream s: its exit
// accepts the stream's port and has not already refused the stream.
func (c *circuit) fits(s *stream) bool {
	if s.port == 0 || s.badExits[c.exit] {
		return false
	}
	if c.policy == nil {
		return false
	}
	if s.v6 {
		return c.policy.IPv6.Allows(s.port)
	}
	return c.policy.IPv4.Allows(s.port)
}

// takePool gives s's key a pool circuit that fits s, or returns nil. It
// must be called with a.mu held, for a CONNECT stream whose key has no
// usable circuit.
func (a *attacher) takePool(s *stream) *circuit {
	p := &a.pool
	if !p.enabled() || s.kind() != kindConnect {
		return nil
	}
	now := a.now()
	for i, c := range p.ready {
		if c.retired || !c.fits(s) {
			continue
		}
		p.ready = append(p.ready[:i], p.ready[i+1:]...)
		a.m.poolSize.Set(float64(len(p.ready)))
		c.pooled = false
		c.key = s.key
		ks := a.key(s.key)
		ks.circs = append(ks.circs, c)
		a.m.poolRequests[0].Inc()
		if ce := a.log.Check(zap.DebugLevel, "pool circuit taken"); ce != nil {
			ce.Write(zap.String("circ", c.id), zap.Duration("age", now.Sub(c.builtAt)))
		}
		return c
	}
	return nil
}

// poolWanted reports whether the pool is below its target.
func (a *attacher) poolWanted() bool {
	p := &a.pool
	return p.enabled() && !p.hold && p.size() < p.computeTarget(a.now())
}

// refill launches pool circuits up to the target and closes the ready
// ones above it. It must be called with a.mu held.
func (a *attacher) refill() {
	p := &a.pool
	if !p.enabled() || a.cfg.Passive {
		return
	}
	target := p.computeTarget(a.now())
	a.m.poolTarget.Set(float64(target))
	for len(p.ready) > 0 && p.size() > target {
		c := p.ready[0]
		a.expirePool(c, poolExcess)
	}
	if p.hold || p.retrying || a.ctl == nil || a.closed {
		return
	}
	for p.size() < target {
		if !a.launchPool() {
			return
		}
	}
}

// Reasons a pool circuit is closed unused (label "reason" of
// socksd_tor_pool_circuits_expired_total).
const (
	poolLifetime = "lifetime" // unused for circuit_lifetime
	poolExcess   = "excess"   // above the target (demand went away)
	poolNewnym   = "newnym"   // a new identity emptied the pool
)

// expirePool closes a ready pool circuit that nobody used.
func (a *attacher) expirePool(c *circuit, reason string) {
	a.m.poolExpired(reason).Inc()
	a.retire(c)
}

// launchPool sends one EXTENDCIRCUIT for the pool.
func (a *attacher) launchPool() bool {
	purpose := a.cfg.Purpose
	if !a.goCmd(func(ctx context.Context, ctl control, gen uint64) {
		id, err := ctl.ExtendCircuit(ctx, purpose)
		a.mu.Lock()
		defer a.mu.Unlock()
		if gen != a.gen {
			return
		}
		a.extending--
		a.poolLaunched(id, err)
		if a.extending == 0 {
			clear(a.early)
		}
	}) {
		return false
	}
	a.pool.inflight++
	a.extending++
	a.m.circLaunched.Inc()
	return true
}

// poolLaunched handles EXTENDCIRCUIT's answer for a pool circuit.
func (a *attacher) poolLaunched(id string, err error) {
	p := &a.pool
	p.inflight--
	if err != nil {
		a.m.circFailed.Inc()
		a.log.Debug("pool extendcircuit failed", zap.Error(err))
		a.poolBuildFailed()
		return
	}
	c := &circuit{id: id, kind: kindConnect, gen: a.gen, pooled: true, pending: true, streams: make(map[string]*stream)}
	p.pending++
	c.watchdog = time.AfterFunc(buildTimeout, func() { a.buildTimedOut(id) })
	a.circs[id] = c
	if ev, ok := a.early[id]; ok {
		delete(a.early, id)
		a.onCirc(ev)
	}
}

// poolBuildFailed refills after a failure, backing off when failures
// repeat (Tor still bootstrapping, no usable exit): without it a Tor that
// fails every build would be asked again at once, forever.
func (a *attacher) poolBuildFailed() {
	p := &a.pool
	p.failures++
	if p.failures < 3 {
		a.refill()
		return
	}
	if p.retrying {
		return
	}
	p.retrying = true
	delay := min(buildRetryDelay<<min(p.failures-3, 6), 30*time.Second)
	time.AfterFunc(delay, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		p.retrying = false
		if !a.closed {
			a.refill()
		}
	})
}

// poolBuilt handles BUILT for a pool circuit: it learns the exit's policy,
// then becomes ready (or serves a key already waiting).
func (a *attacher) poolBuilt(c *circuit) {
	p := &a.pool
	p.failures = 0
	c.builtAt = a.now()
	a.m.poolBuilt.Inc()
	if c.retired {
		a.closeIfIdle(c) // forgetCircuit counts it out of pending
		a.refill()
		return
	}
	id, exit := c.id, c.exit
	if !a.goCmd(func(ctx context.Context, ctl control, gen uint64) {
		pol, err := ctl.ExitPolicy(ctx, exit)
		a.mu.Lock()
		defer a.mu.Unlock()
		if err != nil {
			a.log.Debug("exit policy unknown", zap.String("circ", id), zap.Error(err))
		}
		a.poolReady(id, pol, err)
	}) {
		a.retire(c) // no control connection: it cannot be checked
	}
}

// poolReady puts a built pool circuit whose exit policy is now known into
// the pool, or straight to a key whose streams wait for a circuit.
func (a *attacher) poolReady(id string, pol torctl.ExitPolicy, err error) {
	c := a.circs[id]
	if c == nil || !c.pending {
		return // failed or closed meanwhile (forgetCircuit counted it)
	}
	c.pending = false
	a.pool.pending--
	if err != nil {
		// Without the exit's policy socksd cannot tell which streams the
		// circuit may carry: give it back rather than guess.
		a.retire(c)
		a.poolBuildFailed()
		return
	}
	c.policy = &pol
	if c.retired {
		a.closeIfIdle(c)
		a.refill()
		return
	}
	if a.serveWaiting(c) {
		a.refill()
		return
	}
	a.pool.ready = append(a.pool.ready, c)
	a.m.poolSize.Set(float64(len(a.pool.ready)))
	a.refill()
}

// serveWaiting hands pool circuit c to a key whose first CONNECT stream
// is still waiting for its own build (it missed the pool), and reports
// whether it did.
func (a *attacher) serveWaiting(c *circuit) bool {
	now := a.now()
	for k, ks := range a.keys {
		if !ks.building[kindConnect] || len(ks.waiting) == 0 {
			continue
		}
		var first *stream
		for _, s := range ks.waiting {
			if s.kind() == kindConnect {
				first = s
				break
			}
		}
		if first == nil || !c.fits(first) || a.hasUsable(ks, kindConnect, now) {
			continue
		}
		c.pooled = false
		c.key = k
		ks.circs = append(ks.circs, c)
		a.drain(ks)
		// The key's own build, now unneeded, will come to the pool
		// (donate): count it as on its way, so no other is launched.
		if !ks.donate {
			ks.donate = true
			a.pool.pending++
		}
		return true
	}
	return false
}

// hasUsable reports whether the key has a usable circuit of kind.
func (a *attacher) hasUsable(ks *keyState, kind circKind, now time.Time) bool {
	for _, c := range ks.circs {
		if c.kind == kind && a.usable(c, now) {
			return true
		}
	}
	return false
}

// donate moves a key's freshly built circuit that no stream used into the
// pool when the key has another usable circuit (its streams took a pool
// circuit while this one was being built) and the pool expects it
// (serveWaiting) or wants one more.
func (a *attacher) donate(c *circuit) bool {
	ks := a.keys[c.key]
	if ks == nil || c.kind != kindConnect {
		return false
	}
	expected := ks.donate
	a.unexpectDonation(ks)
	if !c.firstUse.IsZero() || len(c.streams) > 0 || c.retired || ks.waitingKind(kindConnect) {
		return false
	}
	if !expected && !a.poolWanted() {
		return false
	}
	other := false
	now := a.now()
	for _, x := range ks.circs {
		if x != c && x.kind == kindConnect && a.usable(x, now) {
			other = true
		}
	}
	if !other {
		return false
	}
	for i, x := range ks.circs {
		if x == c {
			ks.circs = append(ks.circs[:i], ks.circs[i+1:]...)
			break
		}
	}
	c.pooled, c.pending = true, true
	c.builtAt = now
	a.pool.pending++ // poolReady counts it down
	id, exit := c.id, c.exit
	if !a.goCmd(func(ctx context.Context, ctl control, _ uint64) {
		pol, err := ctl.ExitPolicy(ctx, exit)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.poolReady(id, pol, err)
	}) {
		a.retire(c)
	}
	return true
}

// unexpectDonation cancels a donation serveWaiting counted on (the key's
// build ended, or failed, or the connection went away).
func (a *attacher) unexpectDonation(ks *keyState) {
	if ks.donate {
		ks.donate = false
		a.pool.pending--
	}
}

// sweepPool closes pool circuits unused for circuit_lifetime and trims the
// pool to its target (the janitor calls it).
func (a *attacher) sweepPool(now time.Time) {
	p := &a.pool
	if !p.enabled() {
		return
	}
	for _, c := range append([]*circuit(nil), p.ready...) {
		if a.cfg.Lifetime > 0 && now.Sub(c.builtAt) >= a.cfg.Lifetime {
			a.expirePool(c, poolLifetime)
		}
	}
	a.refill()
}

// emptyPool closes every pool circuit (NEWNYM) and holds launches until
// releasePool.
func (a *attacher) emptyPool() {
	p := &a.pool
	p.hold = true
	for _, c := range append([]*circuit(nil), p.ready...) {
		a.expirePool(c, poolNewnym)
	}
	for _, c := range a.circs {
		if c.pooled {
			c.retired = true // closed when built
		}
	}
}

// releasePool lets the pool refill after NEWNYM reached Tor.
func (a *attacher) releasePool() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pool.hold = false
	a.refill()
}

// removeFromPool drops c from the ready list (forgetCircuit).
func (a *attacher) removeFromPool(c *circuit) {
	p := &a.pool
	for i, x := range p.ready {
		if x == c {
			p.ready = append(p.ready[:i], p.ready[i+1:]...)
			a.m.poolSize.Set(float64(len(p.ready)))
			return
		}
	}
	if c.pending {
		c.pending = false
		p.pending--
	}
}

// idleCircuitIDs lists socksd's circuits that carry no stream (the pool's
// included), for closing at a clean exit.
func (a *attacher) idleCircuitIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for id, c := range a.circs {
		if len(c.streams) == 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

// poolCount returns the ready pool circuits (status page, tests).
func (a *attacher) poolCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pool.ready)
}

// setTarget fills s.port and s.v6 from a STREAM event's target.
func (s *stream) setTarget(host string, port uint16) {
	s.port = port
	if ip, err := netip.ParseAddr(host); err == nil {
		s.v6 = ip.Is6() && !ip.Is4In6()
	}
}
