package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"socksd/chain"
	"socksd/dispatch"
)

// The wrappers must keep the splice path of the *chain.Stream they wrap:
// the dispatcher's io.Copy uses ReaderFrom/WriterTo only when the outer
// value has them.
func TestWrappedStreamsKeepSplice(t *testing.T) {
	var inner dispatch.Stream = &chain.Stream{}
	if _, ok := inner.(io.ReaderFrom); !ok {
		t.Fatal("*chain.Stream lost ReadFrom: the wrappers have nothing to forward")
	}
	for name, s := range map[string]dispatch.Stream{
		"trackedStream": &trackedStream{Stream: inner},
		"pinnedStream":  &pinnedStream{Stream: inner},
		"both":          &trackedStream{Stream: &pinnedStream{Stream: inner}},
	} {
		if _, ok := s.(io.ReaderFrom); !ok {
			t.Errorf("%s hides ReadFrom", name)
		}
		if _, ok := s.(io.WriterTo); !ok {
			t.Errorf("%s hides WriteTo", name)
		}
	}
}

// Without a ReaderFrom underneath, the forwarders still copy every byte.
func TestWrappedStreamFallbackCopies(t *testing.T) {
	p := &pipeStream{}
	s := &pinnedStream{Stream: p}
	n, err := s.ReadFrom(strings.NewReader("hello"))
	if err != nil || n != 5 || string(p.buf) != "hello" {
		t.Fatalf("ReadFrom = %d, %v; buffer %q", n, err, p.buf)
	}
}

// pipeStream is a dispatch.Stream with no ReaderFrom/WriterTo of its own.
type pipeStream struct{ buf []byte }

func (p *pipeStream) Read([]byte) (int, error)        { return 0, io.EOF }
func (p *pipeStream) Write(b []byte) (int, error)     { p.buf = append(p.buf, b...); return len(b), nil }
func (p *pipeStream) Close() error                    { return nil }
func (p *pipeStream) CloseWrite() error               { return nil }
func (p *pipeStream) Await(ctx context.Context) error { return nil }
