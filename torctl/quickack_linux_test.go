package torctl

import (
	"io"
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"socksd/internal/sockopttest"
)

func quickAck(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	return sockopttest.Int(t, c, unix.IPPROTO_TCP, unix.TCP_QUICKACK)
}

// Every read from a TCP control connection leaves it acknowledging at once
// (TCP_QUICKACK set again), even after the kernel went back to delayed
// ACKs (pingpong mode, forced here with TCP_QUICKACK 0).
func TestAckingReaderSetsQuickAck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	defer sc.Close()
	c := cc.(*net.TCPConn)
	r := ackingReader(c)
	if _, ok := r.(*quickAckReader); !ok {
		t.Fatalf("ackingReader(*net.TCPConn) = %T, want *quickAckReader", r)
	}
	for i := range 3 {
		rc, _ := c.SyscallConn()
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 0) })
		if v := quickAck(t, c); v != 0 {
			t.Fatalf("round %d: TCP_QUICKACK %d after clearing it", i, v)
		}
		if _, err := sc.Write([]byte("650 X\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		if _, err := io.ReadFull(r, buf[:7]); err != nil {
			t.Fatal(err)
		}
		if v := quickAck(t, c); v != 1 {
			t.Fatalf("round %d: TCP_QUICKACK %d after a read, want 1", i, v)
		}
	}
	// Other transports are read as they are.
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if r := ackingReader(p1); r != io.Reader(p1) {
		t.Errorf("ackingReader(net.Pipe) = %T, want the conn itself", r)
	}
}
