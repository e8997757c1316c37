package dispatch

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// connect opens the upstream stream and relays.
//
// Optimistic data (socks-extensions.txt §5, proposal 181): early — what
// the client sent with its request — goes to Upstream.Open, which writes
// it with the request, and the client→upstream copy starts right away,
// BEFORE the upstream's answer. Bytes are never dropped (early is written
// first, the socket is read only afterwards, by one goroutine) and never
// reordered. The client gets its reply only after Await succeeded, then the
// upstream→client copy starts.
func (s *Server) connect(ss *session, req *Request, early []byte, st *Settings, release func()) {
	c := ss.client
	ctx, cancel := context.WithTimeout(context.Background(), st.UpstreamTimeout)
	handedOff := false
	defer func() {
		if !handedOff {
			cancel()
		}
	}()
	t0 := time.Now()
	up, err := s.opt.Upstream.Open(ctx, req, early)
	nEarly := len(early)
	release() // early aliased the handshake buffer; Open has copied it
	if err != nil {
		s.metrics.UpstreamSeconds.WithLabelValues("fail").Observe(time.Since(t0).Seconds())
		s.logRequest(req, st, "open failed", err)
		s.finish(c, req, st, err, netip.Addr{}, "", outcomeFailed)
		return
	}
	rl := newRelayConn(c, up)
	// Shutdown's force-close closes the stream through this wrapper, which
	// then wakes directions parked with no goroutine to notice the close.
	if !ss.setUp(kickOnClose{up, rl}) { // Shutdown's force-close raced with Open
		up.Close()
		return
	}
	defer func() {
		if !handedOff {
			up.Close()
		}
	}()

	upDone := make(chan int64, 1)
	rl.startUp(func(n int64, err error) {
		if err != nil && !isEOF(err) {
			rl.abort() // the client is gone (reset): abort both directions
		} else {
			up.CloseWrite()
		}
		upDone <- n
	})

	err = up.Await(ctx)
	s.metrics.UpstreamSeconds.WithLabelValues(upstreamOutcome(err)).Observe(time.Since(t0).Seconds())
	s.logRequest(req, st, "connect", err)
	if err != nil {
		s.finish(c, req, st, err, netip.Addr{}, "", outcomeFailed)
		rl.abort() // ends the client→upstream copy
		s.metrics.Bytes.WithLabelValues("up").Add(float64(nEarly + int(<-upDone)))
		return
	}
	out, code := appendReply(nil, req, nil, netip.Addr{}, "", extendedErrors(req, st))
	s.countReply(req.Protocol.String(), byte(code))
	if _, err := c.Write(out); err != nil {
		rl.abort()
		<-upDone
		s.metrics.Connections.WithLabelValues(req.Protocol.String(), outcomeClosed).Inc()
		return
	}
	s.metrics.Connections.WithLabelValues(req.Protocol.String(), outcomeOK).Inc()
	cancel() // the upstream answered: no timer for the rest of the stream
	handedOff = true
	ss.relay = func() {
		defer up.Close()
		s.relayDown(rl, upDone, nEarly)
	}
}

// relayDown runs upstream→client and waits for both directions. While
// both are parked (park_linux.go) this goroutine, blocked on channels with
// a shallow stack, is all an idle connection keeps running.
func (s *Server) relayDown(rl *relayConn, upDone chan int64, nEarly int) {
	downDone := make(chan int64, 1)
	rl.startDown(func(down int64, err error) {
		if err != nil && !isEOF(err) {
			rl.abort()
		} else {
			closeWrite(rl.c)
		}
		downDone <- down
	})
	down := <-downDone
	n := <-upDone
	s.metrics.Bytes.WithLabelValues("up").Add(float64(nEarly) + float64(n))
	s.metrics.Bytes.WithLabelValues("down").Add(float64(down))
	if ce := s.log.Check(zap.DebugLevel, "stream closed"); ce != nil {
		ce.Write(zap.Int64("up", int64(nEarly)+n), zap.Int64("down", down))
	}
}

// abort closes both sockets and wakes what is parked on them.
func (r *relayConn) abort() {
	r.up.Close()
	r.c.Close()
	r.kick()
}

// kickOnClose is the Stream Shutdown's force-close sees.
type kickOnClose struct {
	Stream
	rl *relayConn
}

func (k kickOnClose) Close() error {
	err := k.Stream.Close()
	k.rl.kick()
	return err
}

func upstreamOutcome(err error) string {
	if err != nil {
		return "fail"
	}
	return "ok"
}

// closeWrite half-closes the client: the upstream finished sending, the
// client may still be sending.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// isEOF reports a clean or expected end of a copy: EOF, our own close, or
// the peer resetting after it is done.
func isEOF(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
