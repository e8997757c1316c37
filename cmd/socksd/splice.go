package main

import (
	"io"
	"net"

	"socksd/dispatch"
)

// The stream wrappers below embed the dispatch.Stream interface, which
// hides the ReadFrom/WriteTo of the *chain.Stream underneath: without
// these the dispatcher's io.Copy falls back to 32 KiB user-space copies
// instead of splice (test/bench measured 0 splice calls, 2.3x the CPU per
// GB and +8 KiB RSS per idle connection).

func readFrom(s dispatch.Stream, r io.Reader) (int64, error) {
	if rf, ok := s.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{s}, r)
}

func writeTo(s dispatch.Stream, w io.Writer) (int64, error) {
	if wt, ok := s.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{s})
}

func (s *trackedStream) ReadFrom(r io.Reader) (int64, error) { return readFrom(s.Stream, r) }
func (s *trackedStream) WriteTo(w io.Writer) (int64, error)  { return writeTo(s.Stream, w) }
func (s *pinnedStream) ReadFrom(r io.Reader) (int64, error)  { return readFrom(s.Stream, r) }
func (s *pinnedStream) WriteTo(w io.Writer) (int64, error)   { return writeTo(s.Stream, w) }

// rawStream is what the dispatcher's relay looks for to splice by itself
// without holding a pipe while idle (dispatch/relay_linux.go).
type rawStream interface {
	Conn() net.Conn
	Rest() []byte
}

func rawConn(s dispatch.Stream) net.Conn {
	if r, ok := s.(rawStream); ok {
		return r.Conn()
	}
	return nil
}

func rawRest(s dispatch.Stream) []byte {
	if r, ok := s.(rawStream); ok {
		return r.Rest()
	}
	return nil
}

func (s *trackedStream) Conn() net.Conn { return rawConn(s.Stream) }
func (s *trackedStream) Rest() []byte   { return rawRest(s.Stream) }
func (s *pinnedStream) Conn() net.Conn  { return rawConn(s.Stream) }
func (s *pinnedStream) Rest() []byte    { return rawRest(s.Stream) }
