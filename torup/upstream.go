package torup

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"socksd/chain"
	"socksd/dispatch"
	"socksd/socks5"
)

// upstream is the dispatch.Upstream and dispatch.Resolver socksd uses when
// it forwards to Tor. It wraps chain (the SOCKS5 client towards the
// SocksPort) and adds: fail-closed while the control connection is down,
// registration of every SocksPort connection with the attacher (chain's
// OnConnect hook, called before the request is written), and replies
// refined from the STREAM events.
type upstream struct {
	t *Tor
	// pending carries the registration made in OnConnect to the Open or
	// Resolve call that owns the request (each call passes its own copy
	// of the request, so the pointer is unique to the call).
	pending sync.Map // *dispatch.Request → *registration
	// cancels carries a RESOLVE's cancel function to its registration
	// the same way, so losing the control connection fails it at once.
	cancels sync.Map // *dispatch.Request → context.CancelFunc
}

var (
	_ dispatch.Upstream  = (*upstream)(nil)
	_ dispatch.Resolver  = (*upstream)(nil)
	_ dispatch.RawStream = (*Stream)(nil) // *chain.Stream's methods, promoted
)

// newChain builds the chain client for one SocksPort address.
func (u *upstream) newChain(addr string) *chain.Upstream {
	c := chain.New(addr, u.t.log)
	c.OnConnect = u.onConnect
	return c
}

func (u *upstream) onConnect(local net.Addr, req *dispatch.Request) {
	r := newRegistration(req.Key, local.String())
	r.keepAlive, r.lifetime = req.KeepAlive, req.Lifetime
	if v, ok := u.cancels.LoadAndDelete(req); ok {
		r.abort = v.(context.CancelFunc)
	}
	u.t.reg.add(r)
	if ctl := u.t.ctl; ctl != nil && !ctl.Connected() {
		// The connection went down after ready() let this request
		// through, possibly before abortPending ran: fail it too.
		r.mu.Lock()
		r.aborted = true
		r.mu.Unlock()
		if r.abort != nil {
			r.abort()
		}
	}
	u.pending.Store(req, r)
}

// aborted is the reply of a request the lost control connection failed.
func (u *upstream) aborted(err error) error {
	u.t.m.refused.Inc()
	return &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: fmt.Errorf("%w (while placing the stream: %w)", ErrControlDown, err)}
}

func (u *upstream) take(req *dispatch.Request) *registration {
	v, ok := u.pending.LoadAndDelete(req)
	if !ok {
		return nil
	}
	return v.(*registration)
}

// ready returns the chain client to use, or the fail-closed error.
func (u *upstream) ready(ctx context.Context) (*chain.Upstream, error) {
	t := u.t
	if t.ctl != nil {
		t.ctl.awaitSettled(ctx) // an error here leaves Connected false: refused below
	}
	if t.ctl != nil && !t.ctl.Connected() {
		t.m.refused.Inc()
		return nil, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: ErrControlDown}
	}
	c := t.chain.Load()
	if c == nil {
		t.m.refused.Inc()
		return nil, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: ErrNoSocksPort}
	}
	return c, nil
}

// Open implements dispatch.Upstream.
func (u *upstream) Open(ctx context.Context, req *dispatch.Request, early []byte) (dispatch.Stream, error) {
	c, err := u.ready(ctx)
	if err != nil {
		return nil, err
	}
	r := *req
	s, err := c.Open(ctx, &r, early)
	reg := u.take(&r)
	if err != nil {
		if reg != nil {
			u.t.reg.remove(reg)
		}
		return nil, err
	}
	cs, ok := s.(*chain.Stream)
	if !ok || reg == nil {
		// Cannot happen with chain today; fail closed if it ever does.
		s.Close()
		if reg != nil {
			u.t.reg.remove(reg)
		}
		return nil, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: fmt.Errorf("torup: unexpected stream type %T", s)}
	}
	return &Stream{Stream: cs, reg: reg, g: u.t.reg, u: u}, nil
}

// Resolve implements dispatch.Resolver with Tor's RESOLVE (0xF0) on the
// SocksPort under the request's isolation key, so the NEWRESOLVE stream is
// attached to the key's circuit like a CONNECT. IP literals are echoed
// without asking anyone, as Tor does.
func (u *upstream) Resolve(ctx context.Context, req *dispatch.Request) (netip.Addr, error) {
	if req.IP.IsValid() {
		return req.IP, nil
	}
	if ip, err := netip.ParseAddr(req.Host); err == nil {
		return ip, nil
	}
	return lookup(ctx, u, req, (*chain.Upstream).Resolve)
}

// ResolvePTR implements dispatch.Resolver with Tor's RESOLVE_PTR (0xF1).
func (u *upstream) ResolvePTR(ctx context.Context, req *dispatch.Request) (string, error) {
	return lookup(ctx, u, req, (*chain.Upstream).ResolvePTR)
}

// lookup runs one of chain's lookups for req as Resolve and ResolvePTR
// share it: fail closed without Tor, a cancel the attacher can use while
// the stream waits, and Tor's outcome refined from the control port.
func lookup[T any](ctx context.Context, u *upstream, req *dispatch.Request, call func(*chain.Upstream, context.Context, *dispatch.Request) (T, error)) (T, error) {
	var zero T
	c, err := u.ready(ctx)
	if err != nil {
		return zero, err
	}
	r := *req
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u.cancels.Store(&r, cancel)
	v, err := call(c, ctx, &r)
	u.cancels.Delete(&r)
	if reg := u.take(&r); reg != nil {
		if err != nil && reg.wasAborted() {
			err = u.aborted(err)
		} else {
			err = refine(ctx, reg, err)
		}
		u.t.reg.remove(reg)
	}
	return v, err
}

// Stream is a stream through Tor. It is a *chain.Stream (so the relay can
// still splice: ReadFrom, WriteTo and TCPConn are promoted) whose Await
// refines Tor's generic failures from the control port, and whose Close
// unregisters it from the attacher.
type Stream struct {
	*chain.Stream
	reg  *registration
	g    *registry
	u    *upstream
	once sync.Once
}

// Await implements dispatch.Stream. A stream still waiting for Tor's
// reply when the control connection is lost gets 0x01 at once
// (registry.abortPending): nobody attaches it any more, and a frozen Tor
// would never answer it.
func (s *Stream) Await(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.reg.awaiting(cancel)
	err := s.Stream.Await(ctx)
	if err == nil {
		s.reg.markAnswered()
		return nil
	}
	if s.reg.wasAborted() {
		return s.u.aborted(err)
	}
	return refine(ctx, s.reg, err)
}

// Close implements io.Closer.
func (s *Stream) Close() error {
	s.once.Do(func() { s.g.remove(s.reg) })
	return s.Stream.Close()
}
