package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"go.uber.org/zap"

	"socksd/httpguard"
	"socksd/isolation"
	"socksd/socks4"
	"socksd/socks5"
	"socksd/socksproto"
)

// Handshake failures that are not protocol errors.
var (
	errTooLarge       = errors.New("dispatch: handshake does not fit the buffer")
	errUnknownProto   = errors.New("dispatch: first byte is neither SOCKS nor HTTP")
	errNoResolver     = errors.New("dispatch: no resolver configured")
	errHandshakeShort = errors.New("dispatch: client closed during the handshake")
)

// String is a Protocol's metric label and isolation.Input.Protocol.
func (p Protocol) String() string {
	switch p {
	case ProtoSOCKS4:
		return "socks4"
	case ProtoSOCKS4a:
		return "socks4a"
	case ProtoSOCKS5:
		return "socks5"
	case ProtoHTTPConnect:
		return "http-connect"
	case ProtoHTTP:
		return "http"
	}
	return "unknown"
}

func (s *Server) serveConn(ss *session, lc *ListenerConfig, st *Settings, shown string) {
	c := ss.client
	start := time.Now()
	// One deadline for the whole handshake, reads and writes alike; it is
	// cleared once the request is complete.
	c.SetDeadline(start.Add(st.HandshakeTimeout))

	r := newReader(c)
	release := r.release
	defer release()

	req, early, proto, err := s.handshake(r, shown, st)
	if err != nil {
		s.metrics.connection(proto.String(), handshakeOutcome(err)).Inc()
		switch {
		case errors.Is(err, errWarningPage):
			s.warnings.warn(s.log, &s.warnings.httpOnSOCKS,
				"a client sent a plain HTTP request to the SOCKS port and got the warning page: configure it to use this port as a SOCKS proxy (or an HTTP CONNECT proxy), not as a web proxy",
				zap.String("listen", lc.Addr))
		case errors.Is(err, errForeignHost):
			s.warnings.warn(s.log, &s.warnings.foreignHost,
				"closed a plain HTTP request without an answer because its Host header does not name this machine: a web page may be probing the SOCKS port through DNS rebinding, or a client uses this port as a web proxy for other sites (configure it as a SOCKS or HTTP CONNECT proxy)",
				zap.String("listen", lc.Addr))
		case errors.Is(err, errHTTPStreamOptions):
			s.warnings.warn(s.log, &s.warnings.httpStreamOptions,
				"refused an HTTP CONNECT whose Tor-Stream-Options header is repeated or not valid stream options (answered 400, the reason in Tor-Request-Failed): see the README for the keys and values",
				zap.String("listen", lc.Addr))
			s.log.Debug("handshake failed", zap.String("protocol", proto.String()), zap.Error(err))
		default:
			s.log.Debug("handshake failed", zap.String("protocol", proto.String()), zap.Error(err))
		}
		return
	}
	s.metrics.handshake(proto.String()).Observe(time.Since(start).Seconds())
	c.SetDeadline(time.Time{})
	req.ClientAddr = c.RemoteAddr()
	req.Listener = lc.Addr

	if err := applyStreamOptions(req, lc); err != nil {
		s.warnings.warn(s.log, &s.warnings.streamOptions,
			"refused a stream whose pt-spec arguments (the SOCKS username and password of a pt_args listener) are not valid stream options: see the README for the keys and values",
			zap.String("protocol", req.Protocol.String()), zap.String("listen", lc.Addr))
		s.log.Debug("stream options refused", zap.Error(err))
		s.finish(c, req, st, err, netip.Addr{}, "", outcomeRejected)
		return
	}
	if err := checkOnionOnly(req); err != nil {
		s.logRequest(req, st, "refused", err)
		s.finish(c, req, st, err, netip.Addr{}, "", outcomeRejected)
		return
	}
	if err := checkPolicy(req, st, s.opt.IsVirtual); err != nil {
		if errors.Is(err, ErrUnsafeSOCKS) {
			s.warnings.warn(s.log, &s.warnings.unsafeSOCKS,
				"refused an IP-only request (safe_socks): the application resolved the name itself, which leaks DNS outside Tor; use socks4a or socks5h (remote DNS), or the DNS bridge",
				zap.String("protocol", req.Protocol.String()), zap.String("listen", lc.Addr))
		}
		s.logRequest(req, st, "refused", err)
		s.finish(c, req, st, err, netip.Addr{}, "", outcomeRejected)
		return
	}
	literalHost(req)
	s.fillKey(req, lc, c)
	growStack() // before the deep upstream calls, see handshakeStack
	if req.Command.Lookup() {
		s.resolve(c, req, st)
	} else {
		s.connect(ss, req, early, st, release)
	}
}

// handshake sniffs the protocol from the first byte and runs its parser
// until the request is complete, under the one Step contract of
// socksproto.Action. It returns the request, the optimistic data that
// followed it (aliasing r's buffer) and the protocol as far as it is known
// (for metrics, also on failure).
func (s *Server) handshake(r *reader, shown string, st *Settings) (*Request, []byte, Protocol, error) {
	if err := r.more(); err != nil {
		return nil, nil, ProtoUnknown, err
	}
	h := clientHandshake{http: httpHandshake{shown: shown, connect: st.HTTPConnect}}
	switch b := r.buf[0]; {
	case b == 4:
		h.proto, h.s4 = ProtoSOCKS4, new(socks4.Handshake)
	case b == 5:
		h.proto, h.s5 = ProtoSOCKS5, new(socks5.Handshake)
	case httpguard.IsHTTP(b):
		h.proto = ProtoHTTP
	default:
		return nil, nil, ProtoUnknown, errUnknownProto
	}
	for {
		if len(r.buf) == 0 {
			if err := r.more(); err != nil {
				return nil, nil, h.proto, err
			}
		}
		a, err := h.step(r.buf)
		if errors.Is(err, socksproto.ErrShortBuffer) {
			if err := r.more(); err != nil {
				if errors.Is(err, errTooLarge) && h.proto == ProtoHTTP && isConnectLine(r.buf) {
					r.c.Write(httpguard.AppendConnectError(nil, 431, "", 0))
				}
				return nil, nil, h.proto, err
			}
			continue
		}
		if len(a.Reply) > 0 {
			if _, werr := r.c.Write(a.Reply); werr != nil && err == nil {
				return nil, nil, h.proto, werr
			}
		}
		if err != nil {
			if code, ok := rejectCode(err); ok {
				s.countReply(h.proto.String(), code)
			}
			return nil, nil, h.proto, err
		}
		if a.Done {
			req := h.request()
			return req, r.buf[a.Consumed:], req.Protocol, nil
		}
		// Drop the message: the parsers keep copies of what they need,
		// so the next one starts at the front of the buffer.
		r.buf = r.buf[:copy(r.buf, r.buf[a.Consumed:])]
	}
}

// clientHandshake is the parser of the protocol the first byte chose;
// only that one is allocated.
type clientHandshake struct {
	proto Protocol // ProtoSOCKS4, ProtoSOCKS5 or ProtoHTTP until request
	s4    *socks4.Handshake
	s5    *socks5.Handshake
	http  httpHandshake
}

func (h *clientHandshake) step(in []byte) (socksproto.Action, error) {
	switch h.proto {
	case ProtoSOCKS4:
		return h.s4.Step(in)
	case ProtoSOCKS5:
		return h.s5.Step(in)
	}
	return h.http.step(in)
}

// request is the finished parser's request in dispatch's terms; the
// credentials are copied out of the parser and the connection's buffer.
func (h *clientHandshake) request() *Request {
	switch h.proto {
	case ProtoSOCKS4:
		sr := h.s4.Request()
		req := &Request{Protocol: ProtoSOCKS4, Command: sr.Command, Port: sr.Port, IP: sr.IP}
		if sr.Is4a() {
			req.Protocol, req.IP, req.Host = ProtoSOCKS4a, netip.Addr{}, sr.Host
		}
		if len(sr.UserID) > 0 {
			req.HasAuth = true
			req.Username = append([]byte(nil), sr.UserID...)
		}
		return req
	case ProtoSOCKS5:
		sr := h.s5.Request()
		req := &Request{Protocol: ProtoSOCKS5, Command: sr.Command, Port: sr.Port, IP: sr.IP, Host: string(sr.Host),
			extAuth: sr.ExtAuth, opts: sr.Options}
		if sr.HasAuth {
			req.HasAuth = true
			req.Username = append([]byte(nil), sr.Username...)
			req.Password = append([]byte(nil), sr.Password...)
		}
		return req
	}
	head := &h.http.head
	req := &Request{Protocol: ProtoHTTPConnect, Command: CmdConnect, Host: head.Host, Port: head.Port, opts: h.http.opts}
	httpIdentity(req, head)
	return req
}

// rejectCode is the reply code a handshake failure sent, for the replies
// metric: a SOCKS5 code, or SOCKS4's 0x5B; nothing for HTTP or a close.
func rejectCode(err error) (byte, bool) {
	var r5 *socks5.ReplyError
	if errors.As(err, &r5) {
		return byte(r5.Code), true
	}
	var r4 *socks4.ReplyError
	if errors.As(err, &r4) {
		return byte(r4.Code), true
	}
	return 0, false
}

func handshakeOutcome(err error) string {
	switch {
	case errors.Is(err, errWarningPage):
		return outcomeWarningPage
	case errors.Is(err, errForeignHost):
		return outcomeForeignHost
	case errors.Is(err, errOptionsAnswered):
		return outcomeOptions
	case errors.Is(err, errHTTPStreamOptions):
		return outcomeRejected
	case errors.Is(err, errUnknownProto):
		return outcomeUnknownProtocol
	case errors.Is(err, os.ErrDeadlineExceeded):
		return outcomeTimeout
	case errors.Is(err, errHandshakeShort), errors.Is(err, net.ErrClosed):
		return outcomeClosed
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return outcomeTimeout
	}
	if isEOF(err) {
		return outcomeClosed
	}
	return outcomeHandshakeError
}

// fillKey derives req.Key from the listener's policy.
func (s *Server) fillKey(req *Request, lc *ListenerConfig, c net.Conn) {
	in := isolation.Input{
		Protocol: req.Protocol.String(),
		HasAuth:  req.HasAuth,
		Username: req.Username,
		Password: req.Password,
		DestHost: req.Host,
		DestIP:   req.IP,
		DestPort: req.Port,
		Epoch:    s.currentEpoch(),
	}

	switch a := req.ClientAddr.(type) {
	case *net.TCPAddr:
		// Not via String and ParseAddrPort: an allocation and a parse
		// per connection for the same result.
		in.ClientAddr = a.AddrPort().Addr().Unmap()
	case nil:
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			in.ClientAddr = ap.Addr().Unmap()
		}
	}
	if lc.AppLookup != nil && lc.Policy.Fields&isolation.ClientApp != 0 {
		app, err := lc.AppLookup(c)
		if err == nil && app.Known {
			in.App = app
			s.metrics.AppLookups.WithLabelValues("found").Inc()
		} else {
			s.metrics.AppLookups.WithLabelValues("unknown").Inc()
			s.log.Debug("client application not identified; using the unknown-application identity", zap.Error(err))
		}
	}
	// Per-username and per-application renewals (NewUserEpoch,
	// NewAppEpoch) move only the keys they name.
	in.Epoch = s.renewals.epoch(in.Epoch, req.HasAuth, req.Username, in.App)
	if req.opts.Fresh {
		in.Fresh = s.fresh.Add(1)
	}
	req.Key = lc.Policy.Key(in)
	req.KeepAlive = req.opts.KeepAlive.Or(lc.Policy.KeepAlive)
}

// resolve answers RESOLVE and RESOLVE_PTR. An address literal given to
// RESOLVE is echoed without asking anyone, as Tor does.
func (s *Server) resolve(c net.Conn, req *Request, st *Settings) {
	var (
		addr netip.Addr
		host string
		err  error
	)
	switch {
	case req.Command == CmdResolve && req.Host == "":
		addr = req.IP
	case s.opt.Resolver == nil:
		err = &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: errNoResolver}
	default:
		ctx, cancel := context.WithTimeout(context.Background(), st.UpstreamTimeout)
		if req.Command == CmdResolve {
			addr, err = s.opt.Resolver.Resolve(ctx, req)
		} else {
			host, err = s.opt.Resolver.ResolvePTR(ctx, req)
		}
		cancel()
	}
	s.logRequest(req, st, "resolve", err)
	outcome := outcomeOK
	if err != nil {
		outcome = outcomeFailed
	}
	s.finish(c, req, st, err, addr, host, outcome)
}

// finish writes the final reply of a request that is not relayed and
// counts it.
func (s *Server) finish(c net.Conn, req *Request, st *Settings, err error, addr netip.Addr, host string, outcome string) {
	out, code := appendReply(nil, req, err, addr, host, extendedErrors(req, st))
	c.SetWriteDeadline(time.Now().Add(st.HandshakeTimeout))
	c.Write(out)
	s.countReply(req.Protocol.String(), byte(code))
	s.metrics.connection(req.Protocol.String(), outcome).Inc()
}

func (s *Server) countReply(proto string, code byte) {
	s.metrics.reply(proto, code).Inc()
}

// logRequest logs a request's destination at debug level only, scrubbed
// under safe_logging: a destination at info or above would be a privacy
// leak in every shipped log.
func (s *Server) logRequest(req *Request, st *Settings, what string, err error) {
	if ce := s.log.Check(zap.DebugLevel, what); ce != nil {
		dest := "[scrubbed]"
		if !st.SafeLogging {
			dest = destString(req)
		}
		ce.Write(zap.String("protocol", req.Protocol.String()), zap.String("dest", dest), zap.Error(err))
	}
}

func destString(req *Request) string {
	h := req.Host
	if h == "" {
		h = req.IP.String()
	}
	return fmt.Sprintf("%s:%d", h, req.Port)
}
