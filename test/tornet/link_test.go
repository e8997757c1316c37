package tornet

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"socksd/internal/testutil"
)

// testLink puts a Link with shape s in front of target and closes it at
// the end of the test, checking that its goroutines are gone.
func testLink(t *testing.T, target string, s Shape, udp bool) *Link {
	t.Helper()
	before := runtime.NumGoroutine()
	l, err := newLink("test", "127.0.0.1:0", target, s, udp)
	if err != nil {
		t.Fatal(err)
	}
	l.Addr = l.ln.Addr().String()
	t.Cleanup(func() {
		l.close()
		// +2: the echo servers' accept loops.
		if !testutil.Poll(5*time.Second, 10*time.Millisecond, func() bool { return runtime.NumGoroutine() <= before+2 }) {
			t.Errorf("%d goroutines after close, %d before", runtime.NumGoroutine(), before)
		}
	})
	return l
}

func dialLink(t *testing.T, l *Link) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp4", l.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// waitOpen waits (bounded) until the link has registered n open
// connections: the node behind it may accept before the link has.
func waitOpen(t *testing.T, l *Link, n int) {
	t.Helper()
	if !testutil.Poll(5*time.Second, time.Millisecond, func() bool { return l.Stats().Open == n }) {
		t.Fatalf("link has %d open connections, want %d", l.Stats().Open, n)
	}
}

// roundTrip writes msg and reads it back, returning how long that took.
func roundTrip(t *testing.T, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	t0 := time.Now()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo %q, want %q", got, msg)
	}
	return time.Since(t0)
}

func TestLinkLatency(t *testing.T) {
	l := testLink(t, testutil.EchoServer(t, "", "").String(), Shape{Latency: 40 * time.Millisecond}, false)
	c := dialLink(t, l)
	for i := range 3 {
		// One way each direction: at least 80 ms; the upper bound only
		// catches a delay applied many times over.
		if d := roundTrip(t, c, []byte("ping")); d < 80*time.Millisecond || d > 2*time.Second {
			t.Fatalf("round trip %d took %v, want 80 ms and a little", i, d)
		}
	}
	if s := l.Stats(); s.Conns != 1 || s.Open != 1 || s.Bytes != 24 {
		t.Fatalf("stats %+v, want 1 conn open and 24 bytes", s)
	}
}

// Jitter must not reorder bytes, and the delay must apply to a chunk, not
// serialise chunks: 8 MiB through a 50 ms link takes ~0.1 s, where 32 KiB
// chunks one after the other would take 256 x 50 ms = 12.8 s.
func TestLinkJitterKeepsOrderAndBandwidth(t *testing.T) {
	l := testLink(t, testutil.EchoServer(t, "", "").String(), Shape{Latency: 50 * time.Millisecond, Jitter: 40 * time.Millisecond}, false)
	c := dialLink(t, l)
	want := Pattern(8 << 20)
	for i := range want {
		want[i] ^= byte(i >> 8) // not periodic in 256, so a swapped chunk shows
	}
	t0 := time.Now()
	go func() {
		// Small writes: many chunks, each with its own jittered delay.
		for b := want; len(b) > 0; {
			k := min(len(b), 1000)
			if _, err := c.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
		}
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(t0)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, not the %d sent in order", len(got), len(want))
	}
	if d < 20*time.Millisecond || d > 6*time.Second {
		t.Fatalf("8 MiB echoed in %v: want at least one 2x10 ms trip, far below 12.8 s", d)
	}
	t.Logf("8 MiB echoed through a 50±40 ms link in %v", d)
}

func TestLinkStall(t *testing.T) {
	l := testLink(t, testutil.EchoServer(t, "", "").String(), Shape{}, false)
	c := dialLink(t, l)
	roundTrip(t, c, []byte("warm"))
	l.Stall(300 * time.Millisecond)
	if d := roundTrip(t, c, []byte("held")); d < 250*time.Millisecond {
		t.Fatalf("round trip during a 300 ms stall took %v", d)
	}
	if d := roundTrip(t, c, []byte("free")); d > 250*time.Millisecond {
		t.Fatalf("round trip after the stall took %v", d)
	}
}

func TestLinkPeriodicStall(t *testing.T) {
	s := Shape{StallEvery: time.Second, StallFor: 400 * time.Millisecond}
	l := testLink(t, testutil.EchoServer(t, "", "").String(), s, false)
	now := l.epoch.Add(3*time.Second + 100*time.Millisecond) // 100 ms into a stall
	if got := l.holdUntil(now, s); !got.Equal(now.Add(300 * time.Millisecond)) {
		t.Fatalf("hold until +%v, want +300ms", got.Sub(now))
	}
	now = l.epoch.Add(3*time.Second + 500*time.Millisecond) // between stalls
	if got := l.holdUntil(now, s); !got.Equal(now) {
		t.Fatalf("hold until +%v between stalls", got.Sub(now))
	}
}

// isReset reports whether err says the peer reset the connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func TestLinkReset(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := testLink(t, ln.Addr().String(), Shape{Latency: 5 * time.Millisecond}, false)
	c := dialLink(t, l)
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitOpen(t, l, 1)
	if n := l.Reset(); n != 1 {
		t.Fatalf("Reset reset %d connections, want 1", n)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("client read after Reset: %v, want connection reset", err)
	}
	if _, err := s.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("server read after Reset: %v, want connection reset", err)
	}
	if st := l.Stats(); st.Resets != 1 {
		t.Fatalf("stats %+v, want 1 reset", st)
	}
}

func TestLinkResetEvery(t *testing.T) {
	l := testLink(t, testutil.EchoServer(t, "", "").String(), Shape{ResetEvery: 50 * time.Millisecond}, false)
	c := dialLink(t, l)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if !isReset(err) {
		t.Fatalf("read: %v, want a reset within 5 s", err)
	}
	if st := l.Stats(); st.Resets < 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A FIN crosses the link in order, and the other direction stays open.
func TestLinkHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := testLink(t, ln.Addr().String(), Shape{Latency: 10 * time.Millisecond}, false)
	srv := make(chan error, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			srv <- err
			return
		}
		defer s.Close()
		req, err := io.ReadAll(s) // until the client's FIN
		if err != nil {
			srv <- err
			return
		}
		s.Write([]byte(strings.ToUpper(string(req))))
		srv <- nil
	}()
	c := dialLink(t, l)
	c.Write([]byte("request"))
	c.CloseWrite()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "REQUEST" {
		t.Fatalf("reply %q, %v", got, err)
	}
	if err := <-srv; err != nil {
		t.Fatal(err)
	}
}

func TestLinkOrigin(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := testLink(t, ln.Addr().String(), Shape{}, false)
	c := dialLink(t, l)
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitOpen(t, l, 1)
	o, ok := l.originOf(s.RemoteAddr().String())
	if !ok || o != c.LocalAddr().String() {
		t.Fatalf("origin of %s = %q %v, want %s", s.RemoteAddr(), o, ok, c.LocalAddr())
	}
	if _, ok := l.originOf(c.LocalAddr().String()); ok {
		t.Fatal("a client address maps to an origin")
	}
}

// The target is not listening: the client's connection is reset, as a
// refused connect would be.
func TestLinkTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	l := testLink(t, target, Shape{}, false)
	c, err := net.Dial("tcp4", l.Addr)
	if err == nil { // the reset may come before or after connect returns
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if !isReset(err) {
		t.Fatalf("%v, want connection reset", err)
	}
}

func TestLinkUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(bytes.ToUpper(buf[:n]), from)
		}
	}()
	l := testLink(t, pc.LocalAddr().String(), Shape{Latency: 30 * time.Millisecond}, true)
	c, err := net.Dial("udp4", l.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, msg := range []string{"query one", "query two"} {
		t0 := time.Now()
		c.Write([]byte(msg))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d < 60*time.Millisecond {
			t.Fatalf("UDP round trip %v through a 30 ms link", d)
		}
		if got := string(buf[:n]); got != strings.ToUpper(msg) {
			t.Fatalf("reply %q", got)
		}
	}
}

func TestProfiles(t *testing.T) {
	t.Setenv("TORNET_PROFILE", "")
	if p, err := ProfileByName(""); err != nil || p.Name != "zero" || !p.Direct {
		t.Fatalf("default profile %+v, %v", p, err)
	}
	t.Setenv("TORNET_PROFILE", "real")
	p, err := ProfileByName("")
	if err != nil || p.Name != "real" || p.Direct || p.shapeFor("exit0").Latency != 30*time.Millisecond {
		t.Fatalf("$TORNET_PROFILE=real gave %+v, %v", p, err)
	}
	if _, err := ProfileByName("fast"); err == nil || !strings.Contains(err.Error(), "zero, flat, real, lossy") {
		t.Fatalf("unknown profile: %v", err)
	}
	lossy, _ := ProfileByName("lossy")
	if s := lossy.shapeFor(lossy.Slow); s.StallFor == 0 || s.ResetEvery == 0 || lossy.shapeFor("exit0") != p.Link {
		t.Fatalf("lossy: slow %+v, others %+v", s, lossy.shapeFor("exit0"))
	}
}

func TestRelayTorrcPorts(t *testing.T) {
	if got := relayTorrc("exit0", 20006, 0); !strings.Contains(got, "ORPort 127.0.0.1:20006\n") || strings.Contains(got, "NoListen") {
		t.Fatalf("direct relay:\n%s", got)
	}
	got := relayTorrc("exit0", 20006, 20046)
	if !strings.Contains(got, "ORPort 127.0.0.1:20006 NoListen\nORPort 127.0.0.1:20046 NoAdvertise\n") {
		t.Fatalf("relay behind a link:\n%s", got)
	}
}
