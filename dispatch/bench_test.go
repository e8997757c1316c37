package dispatch_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"socksd/chain"
	"socksd/dispatch"
	"socksd/isolation"
)

// fastUpstream is a minimal SOCKS5 upstream for benchmarks: it reads the
// pipelined greeting+auth+request (one write from chain), answers success
// and discards until EOF.
func fastUpstream(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	reply := []byte{5, 2, 1, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				if _, err := c.Read(buf); err != nil {
					return
				}
				c.Write(reply)
				io.Copy(io.Discard, c)
			}()
		}
	}()
	b.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func benchServer(b *testing.B) string {
	up := chain.New(fastUpstream(b), nil)
	srv, err := dispatch.New(dispatch.Options{Upstream: up, Resolver: up})
	if err != nil {
		b.Fatal(err)
	}
	st := testSettings()
	st.MaxConnections = 1 << 20
	if err := srv.Configure(st, []dispatch.ListenerConfig{{Addr: "127.0.0.1:0", Policy: isolation.Policy{Fields: isolation.Default | isolation.SessionGroup, SessionGroup: "b"}}}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv.Addrs()["127.0.0.1:0"].String()
}

// oneConnect is a full client SOCKS5 CONNECT (hostname, user/pass) through
// socksd: greeting+auth+request in one write, all replies read.
func oneConnect(b *testing.B, addr string, msg, buf []byte) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		b.Fatal(err)
	}
	// 05 02 | 01 00 | 05 00 00 01 00000000 0000
	if _, err := io.ReadFull(c, buf[:14]); err != nil {
		b.Fatal(err)
	}
	if buf[5] != 0 {
		b.Fatalf("reply %x", buf[:14])
	}
}

var benchMsg = append(hexb("05 01 02 01 05 616c696365 02 7077"), socks5ConnectHost("example.com", 80)...)

// BenchmarkSOCKS5Connect: complete client handshakes per second, one at a
// time: accept, sniff, SOCKS5 parse, isolation key, upstream dial +
// pipelined request, upstream reply, client reply, relay teardown.
// allocs/op counts both socksd and the test's client and fake upstream.
func BenchmarkSOCKS5Connect(b *testing.B) {
	addr := benchServer(b)
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		oneConnect(b, addr, benchMsg, buf)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}

// BenchmarkSOCKS5ConnectParallel: the same with GOMAXPROCS concurrent
// clients.
func BenchmarkSOCKS5ConnectParallel(b *testing.B) {
	addr := benchServer(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 64)
		for pb.Next() {
			oneConnect(b, addr, benchMsg, buf)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}
