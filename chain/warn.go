package chain

import (
	"errors"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"socksd/internal/ratelog"
	"socksd/socks5"
)

// upstreamWarnInterval is how often one upstream fault is logged at
// warning level. Each fault fails every stream with 0x01 (general failure)
// until the user fixes it; the first one is logged at once, repeats once
// per interval with the count in between (Tor's ratelim_t habit).
const upstreamWarnInterval = time.Minute

// fault is a reason every stream fails that the user can fix: it lies in
// the configuration or in Tor, not in one destination. Per-destination
// failures (Tor's own refusal codes) stay at debug level, where the
// destination may be logged.
type fault uint8

const (
	faultNone fault = iota
	// The SocksPort cannot be connected to.
	faultUnreachable
	// The server speaks SOCKS5 but refuses username/password: not Tor.
	faultNotTor
	// The server does not speak SOCKS5 the way Tor does.
	faultNotSOCKS5
	// The server closed the connection before it replied.
	faultClosed
	nFaults
)

// faultMessages say what is wrong and what to do, without a destination,
// a username or the isolation credentials.
var faultMessages = [nFaults]string{
	faultUnreachable: "cannot reach Tor's SocksPort: every stream fails with SOCKS reply 0x01 until it can. Is tor running, does [tor] socks name its SocksPort, and may socksd open it (group debian-tor for a unix socket)?",
	faultNotTor:      "the upstream SOCKS server refused username/password authentication: it is not a Tor SocksPort. socksd passes each stream's isolation key as SOCKS5 credentials, which Tor and Arti accept on every SocksPort; point [tor] socks at Tor's SocksPort. Every stream fails with SOCKS reply 0x01 until then",
	faultNotSOCKS5:   "the upstream does not answer as a SOCKS5 server: it is not a Tor SocksPort (an HTTP or control port, or another protocol?); point [tor] socks at Tor's SocksPort. Every stream fails with SOCKS reply 0x01 until then",
	faultClosed:      "Tor's SocksPort closed the connection before replying: tor is restarting or shutting down, or refuses socksd (SocksPolicy, or out of file descriptors); streams fail with SOCKS reply 0x01 meanwhile",
}

// classify names the fault behind err, faultNone for anything else (a
// refusal by Tor for one destination, a timeout, a cancelled request).
func classify(err error) fault {
	switch {
	case err == nil:
		return faultNone
	case errors.Is(err, ErrDial):
		return faultUnreachable
	case errors.Is(err, socks5.ErrUpstreamNoMethod), errors.Is(err, socks5.ErrUpstreamAuth):
		return faultNotTor
	case errors.Is(err, socks5.ErrUpstreamVersion), errors.Is(err, socks5.ErrUpstreamMethod),
		errors.Is(err, socks5.ErrUpstreamMalformed), errors.Is(err, socks5.ErrUpstreamUnknownReply):
		return faultNotSOCKS5
	case errors.Is(err, ErrUpstreamClosed), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return faultClosed
	}
	return faultNone
}

// upstreamWarnings rate-limits each fault on its own, so a second cause
// is never hidden behind the first.
type upstreamWarnings struct {
	log  *zap.Logger
	addr string
	lim  [nFaults]ratelog.Limiter
}

func newUpstreamWarnings(log *zap.Logger, addr string, every time.Duration, now func() time.Time) *upstreamWarnings {
	w := &upstreamWarnings{log: log, addr: addr}
	for i := range w.lim {
		w.lim[i] = ratelog.Limiter{Every: every, Now: now}
	}
	return w
}

// note logs err's fault, if it has one, and returns err unchanged. A nil
// receiver logs nothing (an Upstream built without New).
func (w *upstreamWarnings) note(err error) error {
	if w == nil {
		return err
	}
	f := classify(err)
	if f == faultNone {
		return err
	}
	if w.log != nil {
		w.lim[f].Log(w.log, zapcore.WarnLevel, faultMessages[f], zap.String("socks", w.addr), zap.Error(err))
	}
	return err
}
