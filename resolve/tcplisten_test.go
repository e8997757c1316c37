package resolve

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"socksd/internal/testutil"
)

// emfileListener fails Accept with EMFILE, as the kernel does when the
// process is out of descriptors, fails times, then hands out conns.
type emfileListener struct {
	net.Listener
	fails atomic.Int32
	calls atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestTCPAcceptBacksOff: out of descriptors, the DNS/TCP accept loop
// sleeps 5 ms, 10 ms, 20 ms … between tries (miekg's own loop retries at
// once and spins a core), counts every failure and logs once.
func TestTCPAcceptBacksOff(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	b, err := New(testConfig(newClock()), newFakeTor(), zap.New(core), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &emfileListener{Listener: inner}
	fl.fails.Store(6)
	l := b.newTCPListener(fl)
	defer l.Close()

	go func() {
		if c, err := net.Dial("tcp", inner.Addr().String()); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	start := time.Now()
	c, err := l.Accept()
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if n := fl.calls.Load(); n != 7 {
		t.Errorf("%d accept calls for 6 failures, want 7 (no busy retry)", n)
	}
	if min := 315 * time.Millisecond; took < min { // 5+10+20+40+80+160 ms
		t.Errorf("6 failures took %v, want at least %v of backoff", took, min)
	}
	if got := counterValue(t, b.metrics.tcpAcceptErrors); got != 6 {
		t.Errorf("tcp_accept_errors_total = %v, want 6", got)
	}
	if n := logs.FilterMessageSnippet("dns tcp accept failed").Len(); n != 1 {
		t.Errorf("%d log entries for 6 failures within 10 s, want 1", n)
	}

	// Close ends an Accept that is sleeping in its backoff.
	fl.fails.Store(1 << 20)
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }()
	testutil.WaitFor(t, "8 accept failures (Accept then sleeps in its backoff)", func() bool {
		return counterValue(t, b.metrics.tcpAcceptErrors) >= 8
	})
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still sleeping 5 s after Close")
	}
}

// TestTCPConnectionBound: beyond MaxTCPConns live DNS/TCP connections a
// new one is closed at once and counted; a freed slot serves again.
func TestTCPConnectionBound(t *testing.T) {
	cfg := testConfig(newClock())
	cfg.MaxTCPConns = 2
	b, _, tcp := startBridge(t, cfg, newFakeTor())
	defer b.Close()

	query := func(c *dns.Conn) error {
		q := new(dns.Msg)
		q.SetQuestion("example.test.", dns.TypeA)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.WriteMsg(q); err != nil {
			return err
		}
		_, err := c.ReadMsg()
		return err
	}
	var held []*dns.Conn
	for range 2 {
		c, err := dns.Dial("tcp", tcp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := query(c); err != nil { // the connection is live and counted
			t.Fatal(err)
		}
		held = append(held, c)
	}
	extra, err := dns.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if err := query(extra); err == nil {
		t.Fatal("a third connection was served with max_tcp_connections = 2")
	}
	if got := counterValue(t, b.metrics.tcpOverLimit); got != 1 {
		t.Errorf("tcp_over_limit_total = %v, want 1", got)
	}
	held[0].Close()
	// The server sees the close on its next read; retry until the slot is
	// back (bounded).
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dns.Dial("tcp", tcp)
		if err != nil {
			t.Fatal(err)
		}
		err = query(c)
		c.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed 5 s after a close: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTCPIdleTimeout: a connection that stops asking is closed after
// Config.TCPIdle, and its slot is freed.
func TestTCPIdleTimeout(t *testing.T) {
	cfg := testConfig(newClock())
	cfg.TCPIdle = 200 * time.Millisecond
	b, _, tcp := startBridge(t, cfg, newFakeTor())
	defer b.Close()
	c, err := dns.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := new(dns.Msg)
	q.SetQuestion("example.test.", dns.TypeA)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.ReadMsg(); err == nil {
		t.Fatal("read a message nobody sent")
	}
	if took := time.Since(start); took < 150*time.Millisecond || took > 4*time.Second {
		t.Fatalf("idle connection closed after %v, want about 200ms", took)
	}
	// The slot is given back just after the close the client saw.
	if !testutil.Poll(2*time.Second, time.Millisecond, func() bool { return len(b.tcpSlots) == 0 }) {
		t.Fatalf("%d slots held 2 s after the idle close, want 0", len(b.tcpSlots))
	}
}

// TestServeInherited: sockets bound elsewhere (systemd's) are served with
// the bridge's own TCP listener, so they share the connection bound, and
// Close closes them.
func TestServeInherited(t *testing.T) {
	cfg := testConfig(newClock())
	cfg.MaxTCPConns = 1
	b, err := New(cfg, newFakeTor(), nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(nil, nil); err == nil {
		t.Fatal("Serve before Start succeeded")
	}
	if err := b.Start(); err != nil { // no Listen: nothing of its own
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(pc, ln); err != nil {
		t.Fatal(err)
	}
	q := new(dns.Msg)
	q.SetQuestion("example.test.", dns.TypeA)
	if m, _, err := (&dns.Client{Net: "udp", Timeout: 5 * time.Second}).Exchange(q, pc.LocalAddr().String()); err != nil || m.Rcode != dns.RcodeSuccess {
		t.Fatalf("UDP on the inherited socket: %v %v", m, err)
	}
	held, err := dns.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	held.SetDeadline(time.Now().Add(5 * time.Second))
	if err := held.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	if _, err := held.ReadMsg(); err != nil {
		t.Fatalf("TCP on the inherited socket: %v", err)
	}
	extra, err := dns.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetDeadline(time.Now().Add(5 * time.Second))
	extra.WriteMsg(q)
	if _, err := extra.ReadMsg(); err == nil {
		t.Fatal("a second TCP connection was served with max_tcp_connections = 1")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("the inherited TCP socket still accepts after Close")
	}
}
