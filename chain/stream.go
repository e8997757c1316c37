package chain

import (
	"context"
	"io"
	"net"
	"sync"
	"time"

	"socksd/dispatch"
	"socksd/socksproto"
)

// Stream is one upstream connection whose request has been written. Its
// Write path is live at once (optimistic data); Read is valid after Await
// returned nil. It delegates ReadFrom/WriteTo to the underlying
// *net.TCPConn (or *net.UnixConn) so io.Copy between it and a client
// socket uses splice(2) on Linux.
type Stream struct {
	conn net.Conn
	// rest holds upstream bytes that arrived with the reply, delivered
	// before anything read from conn.
	rest []byte

	awaitOnce sync.Once
	awaitErr  error
	warn      *upstreamWarnings
}

var _ dispatch.RawStream = (*Stream)(nil)

func newStream(c net.Conn, w *upstreamWarnings) *Stream { return &Stream{conn: c, warn: w} }

// Await reads the upstream's method selection, authentication status and
// reply. A refusal is a *socks5.ReplyError with the upstream's code; a
// context end while waiting is reply 0x06 (TTL expired).
func (s *Stream) Await(ctx context.Context) error {
	s.awaitOnce.Do(func() {
		stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Unix(1, 0)) })
		var buf [600]byte
		_, rest, err := readReply(s.conn, socksproto.CmdConnect, buf[:0])
		if !stop() {
			// ctx ended: the deadline may be set under our feet, so the
			// stream fails as timed out. (When stop wins, no deadline
			// was set and there is nothing to clear.)
			s.conn.SetReadDeadline(time.Time{})
			if err == nil {
				err = ctx.Err()
			}
		}
		if err != nil {
			s.awaitErr = s.warn.note(ctxErr(ctx, err))
			return
		}
		if len(rest) > 0 {
			s.rest = append([]byte(nil), rest...)
		}
	})
	return s.awaitErr
}

// Read reads upstream data; call only after Await returned nil.
func (s *Stream) Read(p []byte) (int, error) {
	if len(s.rest) > 0 {
		n := copy(p, s.rest)
		s.rest = s.rest[n:]
		return n, nil
	}
	return s.conn.Read(p)
}

// Write sends data upstream; valid from Open on.
func (s *Stream) Write(p []byte) (int, error) { return s.conn.Write(p) }

// Close closes the upstream connection.
func (s *Stream) Close() error { return s.conn.Close() }

// CloseWrite half-closes the upstream connection: the client finished
// sending, the answer may still come.
func (s *Stream) CloseWrite() error {
	if cw, ok := s.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return s.conn.Close()
}

// TCPConn returns the upstream socket when it is TCP, for callers that
// want to splice themselves; nil for a Unix socket.
func (s *Stream) TCPConn() *net.TCPConn {
	tc, _ := s.conn.(*net.TCPConn)
	return tc
}

// LocalAddr is the stream's source address as the upstream sees it.
func (s *Stream) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// ReadFrom copies r upstream; with r a TCP or Unix socket the kernel
// splices.
func (s *Stream) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := s.conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{s.conn}, r)
}

// WriteTo copies upstream data to w, first what arrived with the reply.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if len(s.rest) > 0 {
		m, err := w.Write(s.rest)
		n += int64(m)
		s.rest = s.rest[m:]
		if err != nil {
			return n, err
		}
	}
	var m int64
	var err error
	if wt, ok := s.conn.(io.WriterTo); ok {
		m, err = wt.WriteTo(w)
	} else {
		m, err = io.Copy(w, struct{ io.Reader }{s.conn})
	}
	return n + m, err
}

// Rest returns and forgets the upstream bytes that arrived with the reply.
func (s *Stream) Rest() []byte { r := s.rest; s.rest = nil; return r }

// Conn returns the upstream socket (*net.TCPConn or *net.UnixConn), for
// callers that splice themselves; call Rest first.
func (s *Stream) Conn() net.Conn { return s.conn }
