package resolve

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"socksd/internal/ratelog"
	"socksd/socks5"
)

// Bridge is the DNS-to-MAPADDRESS bridge: a mapping table, the DNS handler
// that fills it, and the hooks the SOCKS dispatcher calls for streams to
// virtual addresses. It is safe for concurrent use.
type Bridge struct {
	cfg     Config
	tor     Tor
	log     *zap.Logger
	metrics *metrics

	mu    sync.Mutex
	v4    *family // nil when the family is disabled
	v6    *family
	epoch uint64 // Tor push epoch: bumped by RepushAll (a new Tor or a new control connection)
	gen   uint64 // table change generation, for the saver
	used  bool   // lastUsed changed since the last save

	inflight chan struct{} // semaphore: queries waiting on Tor

	poolFullLog ratelog.Limiter // a full pool is a warning, once per interval
	tcpSlots    chan struct{}   // live DNS-over-TCP connections, all listeners

	saver *saver // nil without StateDir

	// lifecycle
	ctx    context.Context // cancelled by Close: in-flight queries give up
	cancel context.CancelFunc
	// stopSaver ends the saver after the last handler returned, so the
	// final snapshot holds every mapping any answer carried.
	saverCtx  context.Context
	stopSaver context.CancelFunc
	wg        sync.WaitGroup // sweeper, saver, servers
	startMu   sync.Mutex
	servers   []*server
	started   bool
	closed    bool

	lifeMu     sync.RWMutex   // guards lifeClosed against handlers.Add
	lifeClosed bool           // no new handler may start
	handlers   sync.WaitGroup // running ServeDNS calls
}

// New builds a bridge and loads its table from cfg.StateDir. It starts
// nothing: call Start (or ListenAndServe), then RepushAll once Tor's control
// port is up — and again after every reconnect.
func New(cfg Config, tor Tor, log *zap.Logger, reg prometheus.Registerer) (*Bridge, error) {
	if tor == nil {
		return nil, fmt.Errorf("%w: nil Tor", ErrConfig)
	}
	cfg.Allow = append([]netip.Prefix(nil), cfg.Allow...)
	cfg.AutomapSuffixes = append([]string(nil), cfg.AutomapSuffixes...)
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	saverCtx, stopSaver := context.WithCancel(context.Background())
	b := &Bridge{
		cfg:       cfg,
		tor:       tor,
		log:       log.Named("dns"),
		metrics:   m,
		epoch:     1,
		inflight:  make(chan struct{}, cfg.MaxInflight),
		tcpSlots:  make(chan struct{}, cfg.MaxTCPConns),
		ctx:       ctx,
		cancel:    cancel,
		saverCtx:  saverCtx,
		stopSaver: stopSaver,
		// A client retrying a name hits a full pool many times a second.
		poolFullLog: ratelog.Limiter{Every: 30 * time.Second, Now: cfg.Now},
	}
	if cfg.Automap != AutomapOff {
		b.v4 = newFamily(newPool(cfg.VirtualIPv4, cfg.MaxMappings), "ipv4")
		b.v6 = newFamily(newPool(cfg.VirtualIPv6, cfg.MaxMappings), "ipv6")
	}
	for _, f := range b.families() {
		m.capacity.WithLabelValues(f.label).Set(float64(f.pool.capacity))
	}
	if cfg.StateDir != "" && cfg.Automap != AutomapOff {
		b.saver = newSaver(filepath.Join(cfg.StateDir, StateFile))
		b.load()
	}
	b.updateSizes()
	b.startBackground()
	return b, nil
}

// startBackground runs the sweeper (expiry, lazy saves of use times) and the
// saver until Close.
func (b *Bridge) startBackground() {
	if b.saver != nil {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.saver.run(b.saverCtx, b)
		}()
	}
	if b.cfg.Automap == AutomapOff {
		return
	}
	every := min(b.cfg.MappingIdle/8, time.Minute)
	every = max(every, time.Second)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-b.ctx.Done():
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(b.ctx, b.cfg.QueryTimeout)
			b.Expire(ctx)
			cancel()
			b.mu.Lock()
			used := b.used
			b.mu.Unlock()
			if used && b.saver != nil {
				b.saver.kick()
			}
		}
	}()
}

func (b *Bridge) families() []*family {
	fs := make([]*family, 0, 2)
	if b.v4 != nil {
		fs = append(fs, b.v4)
	}
	if b.v6 != nil {
		fs = append(fs, b.v6)
	}
	return fs
}

// familyOf returns the family whose pool holds a, or nil.
func (b *Bridge) familyOf(a netip.Addr) *family {
	a = a.Unmap()
	for _, f := range b.families() {
		if f.pool.contains(a) {
			return f
		}
	}
	return nil
}

func (b *Bridge) now() time.Time { return b.cfg.Now() }

// IsVirtual reports whether a is in one of the bridge's virtual networks,
// mapped or not. The dispatcher lets such addresses pass safe_socks and
// reject_internal: they are names in disguise, and Tor's MAPADDRESS turns
// them back.
func (b *Bridge) IsVirtual(a netip.Addr) bool {
	return b.familyOf(a) != nil
}

// Lookup returns the name a virtual address currently stands for.
func (b *Bridge) Lookup(a netip.Addr) (name string, ok bool) {
	f := b.familyOf(a)
	if f == nil {
		return "", false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	m := f.byAddr[a.Unmap()]
	if m == nil {
		return "", false
	}
	return m.name, true
}

// Touch records a connection to a: the mapping's idle clock restarts. It is
// a no-op for addresses that are not mapped.
func (b *Bridge) Touch(a netip.Addr) {
	f := b.familyOf(a)
	if f == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if m := f.byAddr[a.Unmap()]; m != nil {
		f.touch(m, b.now())
		b.used = true
	}
}

// Pin keeps a's mapping alive for a live stream: it is neither expired nor
// reclaimed until release is called (release is idempotent). Pin also makes
// sure Tor has the mapping (after a Tor restart, before RepushAll got to
// it), so the stream never reaches Tor as a bare virtual address.
//
// Errors are *socks5.ReplyError, ready for the client: ReplyHostUnreachable
// when a is not mapped (expired, or never handed out), ReplyGeneralFailure
// when Tor could not be told.
func (b *Bridge) Pin(ctx context.Context, a netip.Addr) (release func(), err error) {
	f := b.familyOf(a)
	if f == nil {
		return nil, &socks5.ReplyError{Code: socks5.ReplyHostUnreachable, Err: ErrNotMapped}
	}
	b.mu.Lock()
	m := f.byAddr[a.Unmap()]
	if m == nil {
		b.mu.Unlock()
		return nil, &socks5.ReplyError{Code: socks5.ReplyHostUnreachable, Err: ErrNotMapped}
	}
	m.pins++
	f.touch(m, b.now())
	b.used = true
	b.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			m.pins--
			if !m.removed { // cannot be removed while pinned; kept for safety
				f.touch(m, b.now())
				b.used = true
			}
		})
	}
	if err := b.ensurePushed(ctx, m, false); err != nil {
		release()
		return nil, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: err}
	}
	return release, nil
}

// mapName returns name's virtual address in f, creating and pushing the
// mapping if needed. created tells a new mapping from a cached one.
func (b *Bridge) mapName(ctx context.Context, f *family, name string) (addr netip.Addr, created bool, err error) {
	// A mapping can be reclaimed between our lookup and the end of its push;
	// then we look again. Three tries bound the loop under churn.
	for try := 0; try < 3; try++ {
		m, isNew, err := b.lookupOrCreate(f, name)
		if err != nil {
			return netip.Addr{}, false, err
		}
		created = created || isNew
		if err := b.ensurePushed(ctx, m, true); err != nil {
			if errors.Is(err, errGone) {
				continue
			}
			return netip.Addr{}, false, err
		}
		b.mu.Lock()
		if m.removed {
			b.mu.Unlock()
			continue
		}
		now := b.now()
		m.lastAnswer = now // from here on no reclaim for TTL
		f.touch(m, now)
		b.used = true
		gen := m.gen
		b.mu.Unlock()
		if b.saver != nil {
			// A restart must keep every address an app was told (an
			// app caches it for the TTL or longer): the answer waits until the mapping is on disk —
			// also for a query that found it made by a concurrent one.
			// Concurrent new names share one write; a saved mapping
			// returns at once.
			if err := b.saver.wait(ctx, b, gen); err != nil {
				b.log.Debug("answering before the mapping table was saved", zap.Error(err))
			}
		}
		return m.addr, created, nil
	}
	return netip.Addr{}, false, errGone
}

// cachedAddr is the table hit: name's address when its mapping exists, Tor
// has it since its last (re)connect, and it is on disk — nothing to wait
// for. It does an answer's bookkeeping (lastAnswer, LRU) under one lock;
// false changes nothing, and mapName does the rest.
func (b *Bridge) cachedAddr(f *family, name string) (netip.Addr, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := f.byName[name]
	if m == nil || m.removed || m.pushedEpoch != b.epoch {
		return netip.Addr{}, false
	}
	// Lock order: b.mu before saver.mu (the saver never holds both).
	if b.saver != nil && !b.saver.isSaved(m.gen) {
		return netip.Addr{}, false
	}
	now := b.now()
	m.lastAnswer = now // from here on no reclaim for TTL
	f.touch(m, now)
	b.used = true
	return m.addr, true
}

// lookupOrCreate finds name in f or allocates an address for it.
func (b *Bridge) lookupOrCreate(f *family, name string) (m *mapping, created bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m := f.byName[name]; m != nil {
		return m, false, nil
	}
	now := b.now()
	var addr netip.Addr
	ok := false
	if len(f.byAddr) < f.pool.capacity {
		addr, ok = f.pool.next(f.free)
	}
	if !ok {
		if addr, ok = f.reclaim(now, b.cfg.TTL); ok {
			b.metrics.reclaims.WithLabelValues(f.label).Inc()
			b.log.Debug("reclaimed least recently used mapping", zap.Stringer("addr", addr))
		}
	}
	if !ok {
		b.metrics.full.WithLabelValues(f.label).Inc()
		// No name: the family and the sizes say everything the fix needs.
		b.poolFullLog.Log(b.log, zapcore.WarnLevel,
			"virtual address pool full: the query got SERVFAIL (every address is pinned by a live stream or was answered within the TTL); widen dns.virtual_network_"+f.label+" or lower dns.ttl",
			zap.String("family", f.label), zap.Int("capacity", f.pool.capacity), zap.Stringer("network", f.pool.prefix))
		return nil, false, errPoolExhausted
	}
	m = &mapping{name: name, addr: addr, lastUsed: now}
	f.insert(m)
	b.logOpLocked(journalOp{Op: "+", Addr: addr, Name: name, T: now.Unix()})
	m.gen = b.gen
	b.updateSizesLocked()
	return m, true, nil
}

// torAddr is how Tor spells a virtual address in MAPADDRESS: IPv6 in
// brackets, the form Tor itself returns for "::=name" and the form its SOCKS
// code looks up for an ATYP 4 request.
func torAddr(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// ensurePushed makes sure Tor has m since its last (re)connect. Concurrent
// callers for the same mapping share one MAPADDRESS.
// limited: a DNS query, which takes an in-flight slot for its MAPADDRESS.
func (b *Bridge) ensurePushed(ctx context.Context, m *mapping, limited bool) error {
	for {
		b.mu.Lock()
		if m.removed {
			b.mu.Unlock()
			return errGone
		}
		if m.pushedEpoch == b.epoch {
			b.mu.Unlock()
			return nil
		}
		if ch := m.pushing; ch != nil {
			b.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		release := func() {}
		if limited {
			var err error
			if release, err = b.acquire(); err != nil {
				b.mu.Unlock()
				return err
			}
		}
		ch := make(chan struct{})
		m.pushing = ch
		epoch := b.epoch
		b.mu.Unlock()

		_, err := b.tor.MapAddress(ctx, torAddr(m.addr), m.name)
		release()
		b.metrics.torCalls.WithLabelValues("map", result(err)).Inc()

		b.mu.Lock()
		m.pushing = nil
		close(ch)
		if err == nil && m.pushedEpoch < epoch {
			m.pushedEpoch = epoch
		}
		b.mu.Unlock()
		if err != nil {
			return fmt.Errorf("resolve: MAPADDRESS: %w", err)
		}
		// Loop: if Tor reconnected meanwhile, push again.
	}
}

// RepushAll tells the bridge that Tor may have lost every mapping (a new
// control connection: Tor restarted, or socksd just started) and pushes each
// one again. Queries for a mapping not yet re-pushed push it themselves, so
// no answer is given for an address Tor does not know.
func (b *Bridge) RepushAll(ctx context.Context) error {
	b.mu.Lock()
	b.epoch++
	var todo []*mapping
	for _, f := range b.families() {
		for e := f.lru.Front(); e != nil; e = e.Next() {
			todo = append(todo, e.Value.(*mapping))
		}
	}
	b.mu.Unlock()
	b.metrics.repushes.Inc()

	// A few pushes in parallel: the control connection pipelines commands.
	const workers = 8
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for w := 0; w < workers && w < len(todo); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := b.ensurePushed(ctx, todo[i], false); err != nil && !errors.Is(err, errGone) {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
				}
			}
		}()
	}
	for i := range todo {
		select {
		case next <- i:
		case <-ctx.Done():
			close(next)
			wg.Wait()
			return ctx.Err()
		}
	}
	close(next)
	wg.Wait()
	b.log.Info("pushed mappings to Tor", zap.Int("mappings", len(todo)), zap.Bool("complete", firstErr == nil))
	return firstErr
}

// Expire removes every mapping idle for MappingIdle (no answer, no
// connection, no live stream) from the table and from Tor
// ("MAPADDRESS a=a", control-spec §3.8). The sweeper calls it; tests call it
// with an injected clock.
func (b *Bridge) Expire(ctx context.Context) int {
	b.mu.Lock()
	cutoff := b.now().Add(-b.cfg.MappingIdle)
	type gone struct {
		f *family
		m *mapping
	}
	var all []gone
	for _, f := range b.families() {
		for _, m := range f.expired(cutoff) {
			all = append(all, gone{f, m})
			b.logOpLocked(journalOp{Op: "-", Addr: m.addr})
		}
	}
	if len(all) > 0 {
		b.updateSizesLocked()
	}
	b.mu.Unlock()

	for _, g := range all {
		b.metrics.expired.WithLabelValues(g.f.label).Inc()
		a := torAddr(g.m.addr)
		_, err := b.tor.MapAddress(ctx, a, a)
		b.metrics.torCalls.WithLabelValues("unmap", result(err)).Inc()
		if err != nil {
			// Harmless: Tor keeps a stale mapping until the address is
			// handed out again, and that MAPADDRESS replaces it.
			b.log.Debug("unmap failed", zap.Stringer("addr", g.m.addr), zap.Error(err))
		}
		b.mu.Lock()
		delete(g.f.draining, g.m.addr)
		b.mu.Unlock()
	}
	if len(all) > 0 && b.saver != nil {
		b.saver.kick()
	}
	return len(all)
}

func (b *Bridge) updateSizes() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.updateSizesLocked()
}

func (b *Bridge) updateSizesLocked() {
	for _, f := range b.families() {
		b.metrics.mappings.WithLabelValues(f.label).Set(float64(len(f.byAddr)))
	}
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
