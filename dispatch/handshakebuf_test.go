package dispatch

import (
	"bytes"
	"errors"
	"net"
	"testing"
)

// TestReaderGrows: the handshake buffer starts small, grows through the
// pooled sizes keeping every byte,
// and stops at the largest with errTooLarge.
func TestReaderGrows(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	want := make([]byte, bufSizes[len(bufSizes)-1])
	for i := range want {
		want[i] = byte(i * 7)
	}
	go func() {
		client.Write(want)
		client.Write([]byte{1}) // one byte too many
	}()
	r := newReader(server)
	if cap(r.buf) != bufSizes[0] {
		t.Fatalf("first buffer %d B, want %d", cap(r.buf), bufSizes[0])
	}
	var caps []int
	for len(r.buf) < len(want) {
		if err := r.more(); err != nil {
			t.Fatal(err)
		}
		if len(caps) == 0 || caps[len(caps)-1] != cap(r.buf) {
			caps = append(caps, cap(r.buf))
		}
	}
	if len(caps) != len(bufSizes) {
		t.Fatalf("buffer sizes %v, want each of %v", caps, bufSizes)
	}
	if !bytes.Equal(r.buf, want) {
		t.Fatal("bytes changed while growing")
	}
	if err := r.more(); !errors.Is(err, errTooLarge) {
		t.Fatalf("past the largest size: %v, want errTooLarge", err)
	}
	r.release()
	r.release() // twice is harmless
	if r.buf != nil {
		t.Fatal("buffer still held after release")
	}
}
