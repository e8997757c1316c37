package dispatch_test

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"socksd/dispatch"
)

// TestIdleHandshakeHeap: connections parked in their handshake hold a
// buffer sized to what they sent, not one for the largest handshake
// (16 KiB each: 4,096 idle handshakes were 64 MiB of heap). Each client
// here finished its SOCKS5 greeting (the server's method reply proves the
// server read it into its buffer) and then says nothing more.
func TestIdleHandshakeHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 4,096 connections")
	}
	const n = 4096
	h := newHarness(t, hopt{settings: func(s *dispatch.Settings) {
		s.MaxConnections = n + 16
		s.HandshakeTimeout = time.Minute
	}})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	reply := make([]byte, 2)
	for range n {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte{5, 1, 0}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, reply); err != nil || reply[0] != 5 || reply[1] != 0 {
			t.Fatalf("greeting reply %x, %v", reply, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use for %d idle handshakes (both ends of each connection in this process): %.1f MiB, %d B per connection",
		n, float64(grew)/(1<<20), grew/n)
	// The client end, the server's session and the parsers take about
	// 1-2 KiB a connection; a 16 KiB buffer each would be over 64 MiB.
	if limit := int64(n * 4 << 10); grew > limit {
		t.Fatalf("%d idle handshakes grew the heap by %.1f MiB, want under %.1f MiB", n, float64(grew)/(1<<20), float64(limit)/(1<<20))
	}
}
