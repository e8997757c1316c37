package dispatch

import (
	"io"
	"net"
)

// RawStream is what a Stream offers so the relay moves its bytes without
// going through the Stream's Read and Write. Every Stream an Upstream
// returns should be one, and every layer that wraps a Stream (cmd/socksd's
// tracker and DNS-bridge pin, torup's refining Stream, all over
// *chain.Stream) must forward all of it: a wrapper that only embeds the
// Stream interface hides these methods, and the relay falls back to 32 KiB
// user-space copies (test/bench measured no splice calls, 2.3x the CPU per
// GB and +8 KiB of memory per idle connection). Embed StreamWrapper to
// forward them.
type RawStream interface {
	Stream
	// ReadFrom and WriteTo let io.Copy splice between the client socket
	// and the upstream's (the relay outside Linux, and the fallbacks).
	io.ReaderFrom
	io.WriterTo
	// Conn is the upstream socket (*net.TCPConn or *net.UnixConn); on
	// Linux the relay reads and splices it itself and parks an idle
	// direction without a goroutine (relay_linux.go). nil: no socket.
	Conn() net.Conn
	// Rest returns, once, the upstream bytes that arrived with the reply;
	// the relay sends them to the client before anything read from Conn.
	Rest() []byte
}

// StreamWrapper wraps a Stream and forwards RawStream's methods to it (or,
// when the wrapped Stream lacks one, does what io.Copy would). A wrapper
// embeds it and overrides what it changes, usually Await or Close.
type StreamWrapper struct{ Stream }

// ReadFrom implements io.ReaderFrom.
func (w StreamWrapper) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := w.Stream.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w.Stream}, r)
}

// WriteTo implements io.WriterTo.
func (w StreamWrapper) WriteTo(dst io.Writer) (int64, error) {
	if wt, ok := w.Stream.(io.WriterTo); ok {
		return wt.WriteTo(dst)
	}
	return io.Copy(dst, struct{ io.Reader }{w.Stream})
}

// Conn is the wrapped Stream's upstream socket, nil if it has none.
func (w StreamWrapper) Conn() net.Conn {
	if r, ok := w.Stream.(RawStream); ok {
		return r.Conn()
	}
	return nil
}

// Rest is the wrapped Stream's Rest, nil if it has none.
func (w StreamWrapper) Rest() []byte {
	if r, ok := w.Stream.(RawStream); ok {
		return r.Rest()
	}
	return nil
}

var _ RawStream = StreamWrapper{}
