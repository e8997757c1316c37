package resolve

import (
	"errors"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"socksd/internal/backoff"
	"socksd/internal/ratelog"
)

// tcpListener is the listener miekg/dns's TCP server accepts from. miekg's
// accept loop retries a temporary error (EMFILE) at once, so out of file
// descriptors it spins a core on accept4 without a word; here Accept
// itself backs off, counts and logs, and miekg only ever sees a
// connection or the listener's end. It also bounds the bridge's live TCP
// connections (Config.MaxTCPConns): one beyond is closed at once, so DNS
// over TCP cannot take the descriptors the SOCKS side needs.
type tcpListener struct {
	net.Listener
	b     *Bridge
	slots chan struct{} // the bridge's: one token per live connection
	done  chan struct{}
	once  sync.Once
	errs  ratelog.Limiter
	full  ratelog.Limiter
}

func (b *Bridge) newTCPListener(ln net.Listener) *tcpListener {
	return &tcpListener{
		Listener: ln, b: b,
		slots: b.tcpSlots,
		done:  make(chan struct{}),
		errs:  ratelog.Limiter{Every: 10 * time.Second},
		full:  ratelog.Limiter{Every: 30 * time.Second},
	}
}

func (l *tcpListener) Accept() (net.Conn, error) {
	var wait backoff.Accept
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case <-l.done:
				return nil, err
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			l.b.metrics.tcpAcceptErrors.Inc()
			d := wait.Next()
			l.errs.Log(l.b.log, zapcore.WarnLevel, "dns tcp accept failed; backing off",
				zap.Stringer("listen", l.Addr()), zap.Error(err), zap.Duration("backoff", d))
			if !backoff.Sleep(d, l.done) {
				return nil, net.ErrClosed
			}
			continue
		}
		select {
		case l.slots <- struct{}{}:
			return &tcpConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
		}
		c.Close()
		l.b.metrics.tcpOverLimit.Inc()
		l.full.Log(l.b.log, zapcore.WarnLevel, "dns tcp connection limit reached; new connections are closed at once (raise dns.max_tcp_connections, or find the client holding them)",
			zap.Int("max_tcp_connections", cap(l.slots)))
	}
}

// Close ends Accept, including one sleeping in its backoff.
func (l *tcpListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// tcpConn gives its slot back on the first Close.
type tcpConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *tcpConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
