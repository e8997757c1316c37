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
	if !ss.setUp(up) { // Shutdown's force-close raced with Open
		up.Close()
		return
	}
	defer func() {
		if !handedOff {
			up.Close()
		}
	}()

	upDone := make(chan int64, 1)
	go func() {
		n, err := copyUp(up, c)
		if err != nil && !isEOF(err) {
			// The client is gone (reset): abort both directions.
			up.Close()
			c.Close()
		} else {
			up.CloseWrite()
		}
		upDone <- n
	}()

	err = up.Await(ctx)
	s.metrics.UpstreamSeconds.WithLabelValues(upstreamOutcome(err)).Observe(time.Since(t0).Seconds())
	s.logRequest(req, st, "connect", err)
	if err != nil {
		s.finish(c, req, st, err, netip.Addr{}, "", outcomeFailed)
		up.Close()
		c.Close() // ends the client→upstream copy
		s.metrics.Bytes.WithLabelValues("up").Add(float64(nEarly + int(<-upDone)))
		return
	}
	out, code := appendReply(nil, req, nil, netip.Addr{}, "", st.ExtendedErrors)
	s.countReply(req.Protocol.String(), byte(code))
	if _, err := c.Write(out); err != nil {
		up.Close()
		c.Close()
		<-upDone
		s.metrics.Connections.WithLabelValues(req.Protocol.String(), outcomeClosed).Inc()
		return
	}
	s.metrics.Connections.WithLabelValues(req.Protocol.String(), outcomeOK).Inc()
	cancel() // the upstream answered: no timer for the rest of the stream
	handedOff = true
	ss.relay = func() {
		defer up.Close()
		s.relayDown(c, up, upDone, nEarly)
	}
}

func (s *Server) relayDown(c net.Conn, up Stream, upDone chan int64, nEarly int) {
	down, err := copyDown(c, up)
	if err != nil && !isEOF(err) {
		up.Close()
		c.Close()
	} else {
		closeWrite(c)
	}
	n := <-upDone
	s.metrics.Bytes.WithLabelValues("up").Add(float64(nEarly) + float64(n))
	s.metrics.Bytes.WithLabelValues("down").Add(float64(down))
	if ce := s.log.Check(zap.DebugLevel, "stream closed"); ce != nil {
		ce.Write(zap.Int64("up", int64(nEarly)+n), zap.Int64("down", down))
	}
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
