// Package chain is a dispatch.Upstream and dispatch.Resolver that forwards
// every stream to a SOCKS5 server — Tor's SocksPort — over its own
// connection, sending the stream's isolation key as SOCKS5 credentials
// (username "<torS0X>0", password = the key: proposal 351 format 0, which
// Tor 0.4.9 accepts and isolates on with IsolateSOCKSAuth, on by default).
//
// It never resolves a name locally and never dials a destination: the only
// address it dials is the configured SOCKS5 server. When that server is
// unreachable the stream fails closed with reply 0x01 (general failure).
package chain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"socksd/dispatch"
	"socksd/internal/endpoint"
	"socksd/socks5"
	"socksd/socksproto"
)

// Sentinel errors of this package, wrapped in *socks5.ReplyError.
var (
	// ErrDial: the upstream SOCKS5 server could not be reached.
	ErrDial = errors.New("chain: cannot reach upstream SOCKS server")
	// ErrUpstreamClosed: the upstream closed before a complete reply.
	ErrUpstreamClosed = errors.New("chain: upstream closed before replying")
)

// Upstream chains streams to one SOCKS5 server.
type Upstream struct {
	// Addr is the SOCKS5 server: "ip:port" or "unix:/path".
	Addr string
	// DialTimeout bounds connecting to Addr (default 10s); the caller's
	// context bounds it too.
	DialTimeout time.Duration
	// OnConnect, if set, is called after the connection to Addr is up and
	// before the request is written, with the local address Tor will see as
	// the stream's SOURCE_ADDR (control-spec §4.1.2). A stream attacher uses
	// it to map Tor's STREAM events back to req (and req.Key).
	OnConnect func(local net.Addr, req *dispatch.Request)
	// Log receives debug lines; nil = no logging.
	Log *zap.Logger

	// warn reports faults that fail every stream (not Tor, unreachable)
	// at warning level; nil without New.
	warn *upstreamWarnings
}

// New returns an Upstream chaining to addr ("ip:port" or "unix:/path").
func New(addr string, log *zap.Logger) *Upstream {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("chain")
	return &Upstream{Addr: addr, Log: log, warn: newUpstreamWarnings(log, addr, upstreamWarnInterval, nil)}
}

var (
	_ dispatch.Upstream = (*Upstream)(nil)
	_ dispatch.Resolver = (*Upstream)(nil)
)

// credentials returns the SOCKS5 username/password carrying req's
// isolation key. The key's string form is a hex digest, never a credential
// of the client.
func credentials(req *dispatch.Request) (user, pass string) {
	return socksproto.TorIsolationUsername, req.Key.String()
}

func (u *Upstream) dial(ctx context.Context, req *dispatch.Request) (net.Conn, error) {
	network, address := endpoint.Split(u.Addr)
	to := u.DialTimeout
	if to <= 0 {
		to = 10 * time.Second
	}
	// Tor's SocksPort is on this host: TCP keep-alive probes would find
	// nothing a closed socket does not already report, and enabling them
	// costs most of the setsockopt calls of a connection (test/bench).
	d := net.Dialer{KeepAlive: -1}
	dctx, cancel := dialContext(ctx, time.Now().Add(to), network, address)
	defer cancel()
	c, err := d.DialContext(dctx, network, address)
	if err != nil {
		// Fail closed: Tor unavailable is a general failure, never a
		// reason to try anything else.
		return nil, u.warn.note(&socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: fmt.Errorf("%w: %w", ErrDial, err)})
	}
	if u.OnConnect != nil {
		u.OnConnect(c.LocalAddr(), req)
	}
	return c, nil
}

// deadlineCtx is ctx with an earlier deadline that is enforced by the
// socket, not by a timer of its own: net's connect sets the context's
// deadline as the socket's write deadline and watches Done (here the
// parent's) for cancellation. It saves the timer, the cancel context and
// the parent registration of a context.WithTimeout per stream (3 % of
// socksd's CPU at C=64 in test/bench's profile). Use it only for
// Dialer.DialContext with an address literal: its Done does not close at
// its deadline.
type deadlineCtx struct {
	context.Context
	deadline time.Time
}

func (c deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// dialContext bounds ctx by deadline for dialling address: with a
// deadlineCtx when net enforces it (ctx can be cancelled, so net's
// connect watches it, and address needs no name lookup), otherwise with
// context.WithDeadline.
func dialContext(ctx context.Context, deadline time.Time, network, address string) (context.Context, context.CancelFunc) {
	if pd, ok := ctx.Deadline(); ok && !deadline.Before(pd) {
		return ctx, func() {}
	}
	literal := network == "unix"
	if host, _, err := net.SplitHostPort(address); err == nil && network == "tcp" {
		_, err := netip.ParseAddr(host)
		literal = err == nil
	}
	if ctx.Done() == nil || !literal {
		return context.WithDeadline(ctx, deadline)
	}
	return deadlineCtx{ctx, deadline}, func() {}
}

// Open dials the upstream and writes greeting, authentication, request and
// early in ONE write, without waiting for any answer: with Tor this costs
// no round trip before the client's optimistic data is on its way
// (proposal 181 / socks-extensions "optimistic data").
func (u *Upstream) Open(ctx context.Context, req *dispatch.Request, early []byte) (dispatch.Stream, error) {
	if req.Command != dispatch.CmdConnect {
		return nil, &socks5.ReplyError{Code: socks5.ReplyCommandUnsupported}
	}
	c, err := u.dial(ctx, req)
	if err != nil {
		return nil, err
	}
	user, pass := credentials(req)
	msg, err := encodeRequest(nil, user, pass, socksproto.CmdConnect, req.Host, req.IP, req.Port, early)
	if err != nil {
		c.Close()
		return nil, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: err}
	}
	if _, err := c.Write(msg); err != nil {
		c.Close()
		return nil, u.warn.note(&socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: err})
	}
	return newStream(c, u.warn), nil
}

// Resolve asks the upstream for req.Host's address with Tor's RESOLVE
// (0xF0, socks-extensions.txt §2), under req's isolation credentials.
func (u *Upstream) Resolve(ctx context.Context, req *dispatch.Request) (netip.Addr, error) {
	r, err := u.roundTrip(ctx, req, socksproto.CmdResolve)
	if err != nil {
		return netip.Addr{}, err
	}
	if !r.addr.IsValid() {
		return netip.Addr{}, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: fmt.Errorf("%w: RESOLVE answer without an address", socks5.ErrUpstreamMalformed)}
	}
	return r.addr, nil
}

// ResolvePTR asks the upstream for req.IP's name with Tor's RESOLVE_PTR
// (0xF1).
func (u *Upstream) ResolvePTR(ctx context.Context, req *dispatch.Request) (string, error) {
	r, err := u.roundTrip(ctx, req, socksproto.CmdResolvePTR)
	if err != nil {
		return "", err
	}
	if r.host == "" {
		return "", &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: fmt.Errorf("%w: RESOLVE_PTR answer without a name", socks5.ErrUpstreamMalformed)}
	}
	return r.host, nil
}

func (u *Upstream) roundTrip(ctx context.Context, req *dispatch.Request, cmd socksproto.Command) (reply, error) {
	c, err := u.dial(ctx, req)
	if err != nil {
		return reply{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	user, pass := credentials(req)
	msg, err := encodeRequest(nil, user, pass, cmd, req.Host, req.IP, 0, nil)
	if err != nil {
		return reply{}, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: err}
	}
	if _, err := c.Write(msg); err != nil {
		return reply{}, u.warn.note(&socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: err})
	}
	var buf [600]byte
	r, _, err := readReply(c, cmd, buf[:0])
	if err != nil {
		return reply{}, u.warn.note(ctxErr(ctx, err))
	}
	return r, nil
}

// ctxErr turns a failure caused by ctx's end into a TTL-expired reply, the
// code Tor gives a stream that timed out.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &socks5.ReplyError{Code: socks5.ReplyTTLExpired, Err: ctx.Err()}
	}
	return err
}
