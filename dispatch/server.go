package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"socksd/internal/backoff"
	"socksd/internal/endpoint"
	"socksd/isolation"
)

// Settings are the [socks] values that apply to every listener. They are
// swapped atomically on reload; a connection keeps the settings it was
// accepted under.
type Settings struct {
	HandshakeTimeout time.Duration // one deadline for the whole handshake
	// UpstreamTimeout bounds the wait for the upstream's answer (Await,
	// Resolve); 0 = 2 minutes, Tor's SocksTimeout.
	UpstreamTimeout time.Duration
	MaxConnections  int // over it, connections are closed at once
	ExtendedErrors  bool
	HTTPConnect     bool
	SafeSOCKS       bool
	RejectInternal  bool
	SafeLogging     bool // scrub destinations from debug logs
}

// ListenerConfig is one listener.
type ListenerConfig struct {
	// Addr is "host:port" or "unix:/path"; it names the listener and is
	// Request.Listener. A reload keeps a listener whose Addr is unchanged.
	Addr   string
	Policy isolation.Policy
	// AppLookup, if set and Policy has isolation.ClientApp, finds the
	// application owning a client connection. An error means
	// "unknown application" (App.Known false), never a refusal.
	AppLookup func(conn net.Conn) (isolation.App, error)
	// Listener, if set, is an already-open socket to serve instead of
	// binding Addr (systemd socket activation). The Server closes it.
	Listener net.Listener
	// PTArgs: SOCKS credentials are pt-spec arguments carrying stream
	// options ("k=v;k=v"), not an identity (applyStreamOptions).
	PTArgs bool
}

// Options are a Server's dependencies.
type Options struct {
	Upstream Upstream // required
	Resolver Resolver // nil: RESOLVE/RESOLVE_PTR of names get 0x01
	// IsVirtual reports whether an address is a virtual address of the
	// DNS bridge; such addresses pass reject_internal and safe_socks.
	IsVirtual func(netip.Addr) bool
	// Epoch, if set, supplies the new-identity epoch for isolation keys;
	// otherwise the Server's own counter (NewEpoch) is used.
	Epoch func() uint64
	Log   *zap.Logger // nil = no logging
	// Registerer receives the dispatcher's metrics; nil = not registered.
	Registerer prometheus.Registerer
}

// Server accepts client connections on any number of listeners and
// dispatches them. Its methods are safe for concurrent use.
type Server struct {
	opt     Options
	log     *zap.Logger
	metrics *Metrics

	settings atomic.Pointer[Settings]
	epoch    atomic.Uint64
	active   atomic.Int64
	warnings *clientWarnings
	// fresh numbers the streams that asked for a fresh circuit; the
	// number enters their isolation key (isolation.Input.Fresh), so no
	// two of them, and no other stream, share a key.
	fresh atomic.Uint64

	renewals renewals // per-username and per-application epochs

	mu        sync.Mutex // guards listeners and closing
	listeners map[string]*listener
	closing   bool
	acceptWG  sync.WaitGroup
	connWG    sync.WaitGroup

	// sessions holds every live connection (*session → struct{}) for
	// Shutdown's force-close. A sync.Map, not a mutex-guarded map: each
	// connection registers from its own goroutine, so the accept loop
	// takes no lock and connections do not serialise on one.
	sessions sync.Map
	// forced is set when Shutdown's grace period is over; a connection
	// registering after that closes itself (see serve).
	forced atomic.Bool
}

type listener struct {
	ln   net.Listener
	cfg  atomic.Pointer[ListenerConfig]
	done chan struct{} // closed when the listener is being closed
	addr string        // as configured
	// shown is the address the warning page tells browsers to use: the
	// bound address for TCP (a configured port 0 is resolved), the
	// configured one for Unix sockets.
	shown string
}

// New returns a Server with no listeners; call Configure to start serving.
func New(o Options) (*Server, error) {
	if o.Upstream == nil {
		return nil, errors.New("dispatch: Options.Upstream is required")
	}
	m, err := NewMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("dispatch: registering metrics: %w", err)
	}
	log := o.Log
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{
		opt:       o,
		log:       log.Named("dispatch"),
		metrics:   m,
		listeners: map[string]*listener{},
		warnings:  newClientWarnings(clientWarnInterval, nil),
	}
	s.settings.Store(&Settings{HandshakeTimeout: 30 * time.Second, MaxConnections: 4096, HTTPConnect: true, RejectInternal: true, SafeLogging: true})
	return s, nil
}

// Metrics returns the dispatcher's collectors.
func (s *Server) Metrics() *Metrics { return s.metrics }

// NewEpoch moves to a new isolation epoch (NEWNYM): no stream opened
// after it shares an isolation key with one opened before. It returns the
// new epoch. It has no effect when Options.Epoch is set.
func (s *Server) NewEpoch() uint64 { return s.epoch.Add(1) }

func (s *Server) currentEpoch() uint64 {
	if s.opt.Epoch != nil {
		return s.opt.Epoch()
	}
	return s.epoch.Load()
}

// Configure applies settings and the listener set. Listeners whose Addr is
// new are bound; kept ones get their new policy (live streams are
// untouched); removed ones stop accepting (their live streams continue
// until they end or Shutdown). If any new listener fails to bind, nothing
// changes and the error is returned: the old configuration keeps serving.
func (s *Server) Configure(st Settings, ls []ListenerConfig) error {
	if st.HandshakeTimeout <= 0 || st.MaxConnections <= 0 {
		return errors.New("dispatch: HandshakeTimeout and MaxConnections must be > 0")
	}
	if st.UpstreamTimeout <= 0 {
		st.UpstreamTimeout = 2 * time.Minute
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errors.New("dispatch: server is shut down")
	}
	want := map[string]ListenerConfig{}
	var opened []*listener
	fail := func(err error) error {
		for _, l := range opened {
			l.ln.Close()
		}
		return err
	}
	for _, lc := range ls {
		if _, dup := want[lc.Addr]; dup {
			return fail(fmt.Errorf("dispatch: listener %q configured twice", lc.Addr))
		}
		want[lc.Addr] = lc
		if _, ok := s.listeners[lc.Addr]; ok {
			continue
		}
		ln := lc.Listener
		if ln == nil {
			var err error
			if ln, err = listen(lc.Addr); err != nil {
				return fail(err)
			}
		}
		l := &listener{ln: ln, done: make(chan struct{}), addr: lc.Addr, shown: lc.Addr}
		if ta, ok := ln.Addr().(*net.TCPAddr); ok {
			l.shown = ta.String()
		}
		opened = append(opened, l)
	}

	s.settings.Store(&st)
	for addr, l := range s.listeners {
		if lc, ok := want[addr]; ok {
			lc.Listener = nil
			l.cfg.Store(&lc)
			continue
		}
		s.closeListener(l)
		delete(s.listeners, addr)
	}
	for _, l := range opened {
		lc := want[l.addr]
		lc.Listener = nil
		l.cfg.Store(&lc)
		s.listeners[l.addr] = l
		s.acceptWG.Add(1)
		go s.acceptLoop(l)
		s.log.Info("listening", zap.String("listen", l.addr), zap.Stringer("addr", l.ln.Addr()))
	}
	return nil
}

// listen binds "host:port" or "unix:/path". A stale Unix socket file left
// by a crashed predecessor is removed first; a live one (something
// answers) is an error.
func listen(addr string) (net.Listener, error) {
	network, path := endpoint.Split(addr)
	if network == "unix" {
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
				c.Close()
				return nil, fmt.Errorf("dispatch: listen %s: socket is in use", addr)
			}
			os.Remove(path)
		}
		ln, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("dispatch: %w", err)
		}
		// Every local user may connect, as every local user may reach a
		// loopback TCP listener: socksd run, started by any user, needs
		// this socket. Restrict access with the directory's permissions
		// (config.example.toml), not the socket's.
		if err := os.Chmod(path, 0o666); err != nil {
			ln.Close()
			return nil, fmt.Errorf("dispatch: %w", err)
		}
		return ln, nil
	}
	var lc net.ListenConfig
	if isLoopback(addr) {
		// Go enables TCP keep-alive on every accepted socket by default:
		// four setsockopt calls per connection (SO_KEEPALIVE, TCP_KEEPIDLE,
		// TCP_KEEPINTVL, TCP_KEEPCNT), 4 of the 6 socksd made per proxied
		// connection (strace, test/bench). A loopback client cannot vanish
		// silently: when its process dies the kernel closes its end and
		// the relay sees EOF or a reset, so the probes find nothing.
		// Listeners on other addresses keep the probes (a LAN client can
		// disappear without a FIN). Not to be confused with the config's
		// isolation keep_alive (Tor's KeepAliveIsolateSOCKSAuth).
		lc.KeepAlive = -1
	}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	return ln, nil
}

// isLoopback reports whether a "host:port" listen address binds only
// loopback interfaces.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (s *Server) closeListener(l *listener) {
	close(l.done)
	l.ln.Close()
	s.log.Info("listener closed", zap.String("listen", l.addr))
}

// Addrs returns the bound address of each listener, by configured Addr
// (tests use it to find ports chosen with ":0").
func (s *Server) Addrs() map[string]net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]net.Addr, len(s.listeners))
	for k, l := range s.listeners {
		out[k] = l.ln.Addr()
	}
	return out
}

// ActiveConnections is the number of client connections open now.
func (s *Server) ActiveConnections() int { return int(s.active.Load()) }

// Shutdown stops accepting on every listener, then waits for live
// connections to finish until ctx ends, then closes whatever is left
// (cloudflared-style two-stage shutdown). It returns ctx.Err() if it had
// to force connections closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		for addr, l := range s.listeners {
			s.closeListener(l)
			delete(s.listeners, addr)
		}
	}
	s.mu.Unlock()
	s.acceptWG.Wait()

	drained := make(chan struct{})
	go func() { s.connWG.Wait(); close(drained) }()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
	}
	// A session registers before it checks forced; Shutdown sets forced
	// before it walks the sessions: either the walk finds a session or
	// the session sees forced and closes itself.
	s.forced.Store(true)
	n := 0
	s.sessions.Range(func(k, _ any) bool {
		k.(*session).forceClose()
		n++
		return true
	})
	s.log.Warn("grace period over: closing live connections", zap.Int("connections", n))
	<-drained
	return ctx.Err()
}

// Close is Shutdown without a grace period.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Shutdown(ctx)
	return nil
}

func (s *Server) acceptLoop(l *listener) {
	defer s.acceptWG.Done()
	var wait backoff.Accept
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.metrics.AcceptErrors.Inc()
			d := wait.Next()
			s.log.Warn("accept failed; backing off", zap.String("listen", l.addr), zap.Error(err), zap.Duration("backoff", d))
			if !backoff.Sleep(d, l.done) {
				return
			}
			continue
		}
		wait.Reset()
		st := s.settings.Load()
		if n := s.active.Add(1); n > int64(st.MaxConnections) {
			s.active.Add(-1)
			s.metrics.Connections.WithLabelValues("none", outcomeOverLimit).Inc()
			c.Close()
			continue
		}
		s.connWG.Add(1)
		s.metrics.Active.Inc()
		go s.serve(&session{client: c}, l, st)
	}
}

// serve runs one accepted connection: the handshake on this goroutine,
// the relay on a fresh one.
func (s *Server) serve(ss *session, l *listener, st *Settings) {
	s.sessions.Store(ss, struct{}{})
	if s.forced.Load() {
		ss.forceClose()
	}
	s.serveConn(ss, l.cfg.Load(), st, l.shown)
	if h := ss.relay; h != nil {
		// The handshake goroutine's stack grew deep; relay on a
		// fresh, shallow goroutine and let this one go.
		ss.relay = nil
		go func() { defer s.endSession(ss); h() }()
		return
	}
	s.endSession(ss)
}

func (s *Server) endSession(ss *session) {
	ss.client.Close()
	s.sessions.Delete(ss)
	s.metrics.Active.Dec()
	s.active.Add(-1)
	s.connWG.Done()
}

// session is one client connection and, once opened, its upstream
// stream; Shutdown force-closes both.
type session struct {
	relay  func() // set by connect: the rest of the connection's life
	client net.Conn
	mu     sync.Mutex
	up     Stream
	closed bool
}

func (ss *session) setUp(st Stream) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return false
	}
	ss.up = st
	return true
}

func (ss *session) forceClose() {
	ss.mu.Lock()
	ss.closed = true
	up := ss.up
	ss.mu.Unlock()
	ss.client.Close()
	if up != nil {
		up.Close()
	}
}

// handshakeStack is what the connection goroutine's stack is grown to
// once the client's request is complete. Its deepest point, dialling the
// upstream inside Upstream.Open, is about 40 frames down (serveConn →
// connect → the upstream wrappers → net.Dialer → connect(2)); growing
// the stack there costs a copy that walks and adjusts every frame
// (runtime.copystack was 7 % of socksd's CPU at C=64 in test/bench's
// profile, nearly all of it under the dial). Growing it first, with
// three frames on it, copies almost nothing. Not earlier: a client that
// has not sent its request yet keeps a small stack; and the goroutine
// ends when the relay starts on a fresh one, so an idle relayed
// connection does not keep the larger stack either.
const handshakeStack = 8 << 10

// growStack makes the calling goroutine's stack at least handshakeStack
// big: its frame needs half of it, and the runtime doubles stacks.
//
//go:noinline
func growStack() {
	var pad [handshakeStack / 2]byte
	keepStack(pad[:])
}

//go:noinline
func keepStack([]byte) {}
