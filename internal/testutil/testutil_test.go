package testutil

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

func TestUnhex(t *testing.T) {
	got := Unhex(t, "05 01 00 03 0b 'example.com' 0050")
	want := append([]byte{5, 1, 0, 3, 11}, "example.com\x00\x50"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("Unhex = %x, want %x", got, want)
	}
}

func TestChunks(t *testing.T) {
	if c := Chunks(nil, 10, 64); len(c) != 1 || c[0] != 10 {
		t.Fatalf("no split: %v", c)
	}
	sum := 0
	for _, c := range Chunks([]byte{0, 200, 7}, 100, 64) {
		if c < 1 || c > 64 {
			t.Fatalf("chunk %d outside 1..64", c)
		}
		sum += c
	}
	if sum < 100 {
		t.Fatalf("chunks cover %d of 100", sum)
	}
}

func TestEchoServer(t *testing.T) {
	ap := EchoServer(t, "", "|eof")
	c, err := net.Dial("tcp", ap.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "ping|eof" {
		t.Fatalf("echo = %q, %v", b, err)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if !Poll(time.Second, time.Millisecond, func() bool { n++; return n == 3 }) || n != 3 {
		t.Fatalf("Poll stopped after %d calls", n)
	}
	if Poll(10*time.Millisecond, time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll held a condition that never held")
	}
}
