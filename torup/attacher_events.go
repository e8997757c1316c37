package torup

import (
	"context"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"socksd/isolation"
	"socksd/torctl"
)

// onStreamEvent feeds one STREAM event (control-spec §4.1.2) to the
// attacher. Events arrive in Tor's order from one goroutine.
func (a *attacher) onStreamEvent(ev streamEvent) (sent bool) {
	// Work that needs no attacher state is done before taking a.mu: the
	// registry has its own lock, and the virtual lookup takes the DNS
	// bridge's.
	var id identity
	switch ev.Status {
	case torctl.StreamNew, torctl.StreamNewResolve:
		id.key, id.reg, id.ours = a.reg.lookup(ev.SourceAddr, ev.Username, ev.Password)
		if id.ours {
			id.route = a.route(ev.TargetHost)
		}
	case torctl.StreamControllerWait:
		if ev.Username == torS0X0 { // the only case that can use it
			id.route = a.route(ev.TargetHost)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	switch ev.Status {
	case torctl.StreamNew, torctl.StreamNewResolve:
		n := a.cmds
		a.onNew(ev, id)
		return a.cmds != n
	case torctl.StreamControllerWait:
		a.onControllerWait(ev, id.route)
	case torctl.StreamSentConnect, torctl.StreamSentResolve:
		a.foreignHandled(ev.ID)
		a.checkForeignOnOurs(ev)
	case torctl.StreamSucceeded:
		a.foreignHandled(ev.ID)
		a.checkForeignOnOurs(ev)
		if s := a.streams[ev.ID]; s != nil {
			s.answered = true
			if s.timer != nil {
				s.timer.Stop()
			}
		}
	case torctl.StreamDetached:
		if ce := a.log.Check(zap.DebugLevel, "stream detached"); ce != nil {
			ce.Write(zap.String("id", ev.ID), zap.String("circ", ev.CircID), zap.String("reason", ev.Reason), zap.String("remote_reason", ev.RemoteReason))
		}
		a.onDetached(ev)
	case torctl.StreamFailed, torctl.StreamClosed:
		a.foreignHandled(ev.ID)
		if s := a.streams[ev.ID]; s != nil {
			// Check first: building the fields of a disabled Debug call
			// still allocates, once per stream.
			if ce := a.log.Check(zap.DebugLevel, "stream ended"); ce != nil {
				ce.Write(zap.String("id", ev.ID), zap.String("status", ev.Status), zap.String("reason", ev.Reason), zap.String("remote_reason", ev.RemoteReason))
			}
			a.endStream(s, ev.Status, ev.Reason, ev.RemoteReason)
		}
	}
	return false
}

// VirtualLookup returns the name a virtual address stands for (a
// MAPADDRESS socksd made), ok false for any other address.
type VirtualLookup func(netip.Addr) (name string, ok bool)

// route decides whether a stream to host must go back to Tor with circuit
// 0 (torRoutes), and returns the outcome label if so. With
// __LeaveStreamsUnattached Tor reports the address the client sent: for a
// virtual address that is the address, not the name. Tor applies its
// address map only when the stream is attached (control-spec §3.13: a
// STREAM REMAP event follows the ATTACHSTREAM), so a virtual address that
// stands for a .onion attached to a socksd circuit gets 551 and the stream
// dies. The DNS bridge's table says what the address stands for.
func (a *attacher) route(host string) string {
	if out, ok := torRoutes(host); ok {
		return out
	}
	lookup := a.virtual.Load()
	if lookup == nil {
		return ""
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	name, ok := (*lookup)(ip)
	if !ok {
		return ""
	}
	out, _ := torRoutes(name)
	return out
}

// setVirtualLookup installs (or with nil removes) the virtual address
// lookup.
func (a *attacher) setVirtualLookup(f VirtualLookup) {
	if f == nil {
		a.virtual.Store(nil)
		return
	}
	a.virtual.Store(&f)
}

// identity is what onStreamEvent found out about a new stream before
// taking a.mu.
type identity struct {
	key   isolation.Key
	reg   *registration
	ours  bool
	route string // see route
}

func (a *attacher) onNew(ev streamEvent, id identity) {
	if a.streams[ev.ID] != nil {
		return
	}
	key, reg, ours, route := id.key, id.reg, id.ours, id.route
	if ce := a.log.Check(zap.DebugLevel, "stream"); ce != nil {
		ce.Write(zap.String("id", ev.ID), zap.String("status", ev.Status), zap.Bool("ours", ours), zap.String("purpose", ev.Purpose))
	}
	if !ours {
		if !internalPurpose(ev.Purpose) && !a.cfg.Passive && a.foreign[ev.ID] == nil {
			// Hand back once Tor says it waits for us (CONTROLLER_WAIT
			// follows at once): a stream Tor attached itself must not be
			// detached by a stray ATTACHSTREAM 0 (§3.13 implementation note).
			a.foreign[ev.ID] = &foreignStream{maybeSocksd: ev.Username == torS0X0}
		}
		return
	}
	now := a.now()
	s := a.newStream(ev.ID, key, reg)
	if !ev.At.IsZero() && ev.At.Before(s.born) {
		// Tor's NEW waited in socksd before it got here (torctl's queue,
		// the scheduler under load): it counts toward attach latency.
		s.born = ev.At
	}
	s.torRoute = route
	s.resolve = ev.Status == torctl.StreamNewResolve
	s.setTarget(ev.TargetHost, ev.TargetPort)
	if a.cfg.Passive {
		return
	}
	if s.torRoute != "" {
		s.gen = a.gen
		a.handBack(s.id, s.torRoute)
		return
	}
	if ks := a.keys[key]; ks != nil {
		for _, c := range ks.circs {
			if a.usable(c, now) {
				s.existing = true
				break
			}
		}
	}
	a.place(s)
}

// newStream records one of socksd's streams and starts its socks_timeout.
func (a *attacher) newStream(id string, key isolation.Key, reg *registration) *stream {
	s := &stream{id: id, key: key, reg: reg, born: a.now(), seenOn: a.gen}
	a.streams[id] = s
	if reg != nil {
		reg.setStream(id)
		// The newest stream's listener (or its keep_alive and lifetime
		// options) decides, so a reload that turns keep_alive off applies
		// to a key that already has circuits.
		ks := a.key(key)
		ks.keepAlive, ks.lifetime = reg.keepAlive, reg.lifetime
	}
	if a.cfg.SOCKSTimeout > 0 && !a.cfg.Passive {
		s.timer = time.AfterFunc(a.cfg.SOCKSTimeout, func() { a.timeout(id) })
	}
	return s
}

func (a *attacher) onControllerWait(ev streamEvent, route string) {
	if a.cfg.Passive {
		return
	}
	if s := a.streams[ev.ID]; s != nil {
		return // ours: placed at NEW, or again at DETACHED
	}
	f := a.foreign[ev.ID]
	if f == nil {
		// A stream whose NEW we did not see (it arrived while the control
		// connection was being re-established). Ours only if the
		// credentials say so.
		if key, reg, ours := a.reg.lookup("", ev.Username, ev.Password); ours {
			s := a.newStream(ev.ID, key, reg)
			s.setTarget(ev.TargetHost, ev.TargetPort)
			if s.torRoute = route; route != "" {
				s.gen = a.gen
				a.handBack(s.id, route)
				return
			}
			a.place(s)
			return
		}
		f = &foreignStream{maybeSocksd: ev.Username == torS0X0}
		a.foreign[ev.ID] = f
	}
	a.handBackForeign(ev.ID, f)
}

// foreignStream is a stream that is not socksd's.
type foreignStream struct {
	// maybeSocksd: it carries <torS0X>0 credentials, so it may be another
	// socksd's on the same Tor (one stopping while the next starts):
	// handing it back at once would race that socksd's ATTACHSTREAM.
	maybeSocksd bool
	timer       *time.Timer
}

// handBackForeign returns a waiting foreign stream to Tor: at once for an
// ordinary application's stream, after ForeignGrace for one its owner may
// still attach. Any sign that someone handled it (SENTCONNECT, SUCCEEDED,
// FAILED, CLOSED) cancels the hand-back.
func (a *attacher) handBackForeign(id string, f *foreignStream) {
	if !f.maybeSocksd {
		delete(a.foreign, id)
		a.handBack(id, outForeign)
		return
	}
	if f.timer != nil {
		return
	}
	f.timer = time.AfterFunc(a.cfg.ForeignGrace, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.closed || a.foreign[id] != f {
			return
		}
		delete(a.foreign, id)
		a.handBack(id, outForeign)
	})
}

// foreignHandled forgets a foreign stream someone else took care of.
func (a *attacher) foreignHandled(id string) {
	if f := a.foreign[id]; f != nil {
		if f.timer != nil {
			f.timer.Stop()
		}
		delete(a.foreign, id)
	}
}

// checkForeignOnOurs retires a socksd circuit that carries a stream socksd
// did not put there. Tor can do that only with GENERAL circuits (the
// RESOLVE kind): at BUILT it attaches its own pending streams that are
// compatible before socksd sees the event. The circuit then belongs to
// another identity as far as isolation goes, so socksd stops using it.
func (a *attacher) checkForeignOnOurs(ev streamEvent) {
	c := a.circs[ev.CircID]
	if c == nil {
		return
	}
	if s := a.streams[ev.ID]; s != nil && s.circ == c {
		return
	}
	if _, ours := c.streams[ev.ID]; ours {
		return
	}
	if !c.retired {
		a.log.Warn("a stream socksd did not attach uses a socksd circuit; retiring it", zap.String("circ", c.id), zap.String("stream", ev.ID))
		a.m.outcome(outTainted).Inc()
		a.retire(c)
	}
}

// onDetached re-attaches a stream Tor took off its circuit but may still
// retry (control-spec §4.1.2 DETACHED). Tor itself would try another exit,
// so the exit that ended it is avoided for this stream.
func (a *attacher) onDetached(ev streamEvent) {
	s := a.streams[ev.ID]
	if s == nil || a.cfg.Passive {
		return
	}
	if s.torRoute != "" {
		a.handBack(s.id, s.torRoute)
		return
	}
	if c := s.circ; c != nil {
		if s.badExits == nil {
			s.badExits = make(map[string]bool)
		}
		if c.exit != "" {
			s.badExits[c.exit] = true
		}
		a.unlink(s)
	}
	if s.busy {
		return // the ATTACHSTREAM answer decides
	}
	a.retry(s)
}

// endStream forgets a stream Tor ended and reports its outcome.
func (a *attacher) endStream(s *stream, status, reason, remote string) {
	delete(a.streams, s.id)
	if s.timer != nil {
		s.timer.Stop()
	}
	a.dequeue(s)
	a.unlink(s)
	if s.reg != nil {
		s.reg.finish(status, reason, remote)
	}
	if ks := a.keys[s.key]; ks != nil {
		a.maybeDropKey(s.key, ks)
	}
}

// onCircEvent feeds one CIRC event (control-spec §4.1.1) to the attacher.
func (a *attacher) onCircEvent(ev circEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.onCirc(ev)
}

func (a *attacher) onCirc(ev circEvent) {
	c := a.circs[ev.ID]
	if c != nil || a.extending > 0 {
		if ce := a.log.Check(zap.DebugLevel, "circ"); ce != nil {
			ce.Write(zap.String("id", ev.ID), zap.String("status", ev.Status), zap.Bool("ours", c != nil), zap.String("reason", ev.Reason))
		}
	}
	if c == nil {
		if a.extending > 0 {
			// Maybe one of ours whose EXTENDCIRCUIT reply is still on its
			// way; remember the newest state.
			// A FAILED (e.g. REASON=TIMEOUT from Tor's build-time
			// measurement, after which the circuit may still reach BUILT
			// as MEASURE_TIMEOUT) is final: it is never overwritten.
			prev, seen := a.early[ev.ID]
			final := seen && (prev.Status == torctl.CircFailed || prev.Status == torctl.CircClosed)
			switch ev.Status {
			case torctl.CircBuilt, torctl.CircFailed, torctl.CircClosed:
				if !final {
					a.early[ev.ID] = ev
				}
			}
		}
		return
	}
	if c.pooled {
		a.onPoolCirc(c, ev)
		return
	}
	ks := a.key(c.key)
	switch ev.Status {
	case torctl.CircBuilt:
		if !a.markBuilt(c, ev) {
			return
		}
		ks.building[c.kind] = false
		ks.failures[c.kind] = 0
		a.log.Debug("circuit built", zap.String("circ", c.id), zap.String("key", c.key.String()))
		a.drain(ks)
		a.donate(c)
	case torctl.CircFailed, torctl.CircClosed:
		wasBuilt := c.built
		a.forgetCircuit(c)
		for _, s := range c.streams {
			// Tor detaches or fails them; the events that follow decide.
			s.circ = nil
		}
		if !wasBuilt {
			ks.building[c.kind] = false
			if c.kind == kindConnect {
				a.unexpectDonation(ks)
			}
			a.m.circFailed.Inc()
			a.buildFailed(c.key, ks, c.kind)
			return
		}
		if ks.waitingKind(c.kind) {
			a.build(c.key, ks, c.kind)
		}
	}
}

// markBuilt records the first BUILT event of a circuit, keyed or pooled
// alike: its exit, the end of its build watchdog and the built/in-use
// counts. A repeated BUILT changes nothing and reports false.
func (a *attacher) markBuilt(c *circuit, ev circEvent) bool {
	if c.built {
		return false
	}
	c.built = true
	c.exit = exitOf(ev.Path)
	if c.watchdog != nil {
		c.watchdog.Stop()
	}
	a.m.circBuilt.Inc()
	a.m.circInUse.Inc()
	return true
}

// onPoolCirc handles a CIRC event for a pool circuit nobody took yet.
func (a *attacher) onPoolCirc(c *circuit, ev circEvent) {
	switch ev.Status {
	case torctl.CircBuilt:
		if !a.markBuilt(c, ev) {
			return
		}
		a.poolBuilt(c)
	case torctl.CircFailed, torctl.CircClosed:
		wasBuilt := c.built
		a.forgetCircuit(c)
		if !wasBuilt {
			a.m.circFailed.Inc()
			a.poolBuildFailed()
			return
		}
		a.refill()
	}
}

// drain attaches a key's waiting streams now that a circuit is built;
// a stream whose exits all refused it gets another circuit.
func (a *attacher) drain(ks *keyState) {
	waiting := ks.waiting
	ks.waiting = nil
	for _, s := range waiting {
		s.queued = false
		if a.streams[s.id] != s {
			continue
		}
		a.place(s)
	}
}

// resync runs after (re)connecting: it aligns the attacher with what Tor
// has now. Streams waiting for a controller (stream-status NEW/NEWRESOLVE
// with circuit 0) are attached when they are socksd's and known, handed
// back otherwise (a crashed predecessor's, or another controller's); known
// streams Tor no longer has are ended. Circuits are kept only if Tor still
// lists them as built with the same exit.
func (a *attacher) resync(ctx context.Context, c control, circs []statusEntry) error {
	entries, err := c.StreamStatus(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	built := make(map[string]string, len(circs))
	for _, e := range circs {
		if e.Status == torctl.CircBuilt {
			built[e.ID] = e.Target // exit fingerprint
		}
	}
	for id, ci := range a.circs {
		if ci.gen == a.gen {
			// Launched on this connection, after Tor's snapshot may
			// have been taken: its own events tell its fate.
			continue
		}
		if exit, ok := built[id]; !ok || exit != ci.exit || !ci.built {
			a.forgetCircuit(ci)
			for _, s := range ci.streams {
				s.circ = nil
			}
		}
	}
	present := make(map[string]bool, len(entries))
	for _, e := range entries {
		present[e.ID] = true
		waiting := (e.Status == torctl.StreamNew || e.Status == torctl.StreamNewResolve) && e.CircID == "0"
		if !waiting {
			continue
		}
		s := a.streams[e.ID]
		if s == nil {
			// A crashed predecessor's, or another controller's: stream-status
			// shows no credentials, so its owner gets ForeignGrace first.
			f := a.foreign[e.ID]
			if f == nil {
				a.log.Info("a stream is waiting for a controller; handing it back to Tor unless its owner attaches it", zap.String("stream", e.ID))
				f = &foreignStream{}
				a.foreign[e.ID] = f
			}
			f.maybeSocksd = true
			a.handBackForeign(e.ID, f)
			continue
		}
		if s.busy || s.gen == a.gen {
			continue // already placed on this connection
		}
		if s.torRoute != "" {
			s.gen = a.gen
			a.handBack(s.id, s.torRoute)
			continue
		}
		a.unlink(s)
		s.existing = false
		a.place(s)
	}
	for id, s := range a.streams {
		// A stream reported on this connection may be newer than Tor's
		// snapshot (events flow during the resync): its own events tell
		// its fate, as for circuits.
		if !present[id] && s.seenOn != a.gen {
			a.endStream(s, torctl.StreamClosed, "", "")
		}
	}
	for id := range a.foreign {
		if !present[id] {
			a.foreignHandled(id)
		}
	}
	a.refill()
	return nil
}

// setControl installs the connection commands go to (nil: down).
func (a *attacher) setControl(c control) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ctl = c
	a.gen++
	if c == nil {
		// Builds in flight on the old connection are abandoned.
		for k, ks := range a.keys {
			ks.building = [nKinds]bool{}
			a.unexpectDonation(ks)
			a.maybeDropKey(k, ks)
		}
		a.extending = 0
		a.pool.inflight = 0
		clear(a.early)
	}
	return a.gen
}

// onCircMinorEvent handles CIRC_MINOR (control-spec §4.1.19). Tor changes a
// GENERAL circuit that exceeds its learnt build timeout to MEASURE_TIMEOUT
// without any CIRC event: it stays open for measurement but never carries
// a stream, so for socksd it has failed.
func (a *attacher) onCircMinorEvent(id, event, purpose string) {
	if event != torctl.CircMinorPurposeChanged {
		return
	}
	switch purpose {
	case "GENERAL", "CONTROLLER", "":
		return // socksd's own SETCIRCUITPURPOSE, or nothing new
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	ev := circEvent{ID: id, Status: torctl.CircFailed, Reason: "PURPOSE_CHANGED"}
	if c := a.circs[id]; c != nil && c.built {
		ev.Status = torctl.CircClosed
	}
	a.onCirc(ev)
}

// buildTimedOut is the watchdog of one launched circuit: if Tor has said
// neither BUILT nor FAILED after buildTimeout, socksd gives up on it.
func (a *attacher) buildTimedOut(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.circs[id]
	if a.closed || c == nil || c.built {
		return
	}
	a.log.Warn("circuit not built in time; launching another", zap.String("circ", id), zap.Duration("after", buildTimeout))
	a.goCmd(func(ctx context.Context, ctl control, _ uint64) {
		_ = ctl.CloseCircuit(ctx, id, false)
	})
	a.onCirc(circEvent{ID: id, Status: torctl.CircFailed, Reason: "SOCKSD_TIMEOUT"})
}
