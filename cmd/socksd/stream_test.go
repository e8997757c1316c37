package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"socksd/chain"
	"socksd/dispatch"
	"socksd/torup"
)

// TestStreamLayersAreRaw: every layer of the stream a CONNECT gets
// (tracker → DNS-bridge pin → torup → chain) offers dispatch.RawStream,
// so the relay keeps its splice and parking path whichever layers a
// configuration stacks.
func TestStreamLayersAreRaw(t *testing.T) {
	inner := &torup.Stream{Stream: &chain.Stream{}}
	for name, s := range map[string]dispatch.Stream{
		"chain":   &chain.Stream{},
		"torup":   inner,
		"tracked": &trackedStream{StreamWrapper: dispatch.StreamWrapper{Stream: inner}},
		"pinned":  &pinnedStream{StreamWrapper: dispatch.StreamWrapper{Stream: inner}},
		"tracked(pinned)": &trackedStream{StreamWrapper: dispatch.StreamWrapper{
			Stream: &pinnedStream{StreamWrapper: dispatch.StreamWrapper{Stream: inner}}}},
	} {
		if _, ok := s.(dispatch.RawStream); !ok {
			t.Errorf("%s (%T) is not a dispatch.RawStream", name, s)
		}
	}
}

// TestStreamWrapperForwards: through two wrappers, Conn and Rest are the
// innermost stream's, and ReadFrom/WriteTo are its own (not a copy loop
// around its Read and Write).
func TestStreamWrapperForwards(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	raw := &rawFake{conn: a, rest: []byte("early")}
	var s dispatch.Stream = &trackedStream{StreamWrapper: dispatch.StreamWrapper{
		Stream: &pinnedStream{StreamWrapper: dispatch.StreamWrapper{Stream: raw}}}}
	rs := s.(dispatch.RawStream)
	if rs.Conn() != a {
		t.Error("Conn is not the innermost stream's socket")
	}
	if string(rs.Rest()) != "early" {
		t.Error("Rest is not the innermost stream's")
	}
	if _, err := rs.ReadFrom(strings.NewReader("up")); err != nil || raw.readFrom != 1 {
		t.Errorf("ReadFrom: err %v, inner ReadFrom called %d times, want 1", err, raw.readFrom)
	}
	if _, err := rs.WriteTo(io.Discard); err != nil || raw.writeTo != 1 {
		t.Errorf("WriteTo: err %v, inner WriteTo called %d times, want 1", err, raw.writeTo)
	}
}

// Without RawStream underneath, the wrapper still copies every byte and
// reports no socket.
func TestStreamWrapperFallback(t *testing.T) {
	p := &plainFake{}
	s := &pinnedStream{StreamWrapper: dispatch.StreamWrapper{Stream: p}}
	n, err := s.ReadFrom(strings.NewReader("hello"))
	if err != nil || n != 5 || string(p.buf) != "hello" {
		t.Fatalf("ReadFrom = %d, %v; buffer %q", n, err, p.buf)
	}
	if s.Conn() != nil || s.Rest() != nil {
		t.Error("a plain stream reports a socket or early bytes")
	}
}

// plainFake is a dispatch.Stream with nothing more.
type plainFake struct{ buf []byte }

func (p *plainFake) Read([]byte) (int, error)    { return 0, io.EOF }
func (p *plainFake) Write(b []byte) (int, error) { p.buf = append(p.buf, b...); return len(b), nil }
func (p *plainFake) Close() error                { return nil }
func (p *plainFake) CloseWrite() error           { return nil }
func (p *plainFake) Await(context.Context) error { return nil }

// rawFake is a dispatch.RawStream that counts its own ReadFrom/WriteTo.
type rawFake struct {
	plainFake
	conn              net.Conn
	rest              []byte
	readFrom, writeTo int
}

func (r *rawFake) ReadFrom(src io.Reader) (int64, error) {
	r.readFrom++
	return io.Copy(io.Discard, src)
}
func (r *rawFake) WriteTo(io.Writer) (int64, error) { r.writeTo++; return 0, nil }
func (r *rawFake) Conn() net.Conn                   { return r.conn }
func (r *rawFake) Rest() []byte                     { return r.rest }
